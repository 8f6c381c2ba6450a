"""The named systems: the three systems of the RFC cover letter and two storage loads.

The concern of this module is the seeded systems the book runs on every kernel profile
(chapters 4, 5, 7, 9, 10 and 11, and the ``scenario`` and ``compare`` commands): each
builds a machine, drives its devices through the DMA API (``dma_map_single``,
``dma_map_sgtable``, ``dma_unmap_single``) and returns a :class:`ScenarioResult` that can
print its own answers (the OSTEP-simulator habit).  Each system is split into the machine
it boots (``*_machine``) and the traffic it drives (:func:`rpi4_display`,
:func:`coco_traffic`, :func:`virtio_blk_requests`), so that other experiments (chapter 7's
footprint) run the same systems with their own :class:`Recorder`.

=================  ==========================================================================
``rpi4-fullhd``    Raspberry Pi 4: v3d exports a FullHD XRGB8888 framebuffer (8 294 400 B),
                   vc4 (1 GiB bus limit) imports it: a scatter-gather map whose segments are
                   the buffer's physically contiguous runs.  One failing segment fails the
                   whole import (cover letter; raspberrypi/linux#5524, #5926).
``rpi4-4k``        the same with the RFC's 34 MiB 4K buffer.
``coco-guest``     confidential x86 guest (memory encryption): every DMA bounces; the pool is
                   6 % of RAM; virtio block and network traffic with the size mix measured in
                   a confidential VM (58 % <= 2 KiB, 91 % <= 4 KiB, none above 512 KiB).
``arm-board-oom``  a 512 MiB Arm board whose DMA masters reach only 256 MiB: applications need
                   memory, and the fixed 64 MiB pool is what they lack.
``nvme``           NVMe (``min_align_mask`` 0xfff) in a confidential guest: O_DIRECT I/O with
                   512-byte aligned buffers, requests capped at ``dma_max_mapping_size``.
``storage``        virtio-blk with ``swiotlb=force`` and a queue depth, structured like the
                   requests traced in ``data/realkernel/`` (header, data, status, indirect).
=================  ==========================================================================

Defaults per profile: ``rfc-v1`` runs with ``swiotlb=dynamic`` added (its point), and the
``arm-board-oom`` scenario gives profiles that can grow a small pool (``swiotlb=512``),
because that is the configuration the RFC argues for; ``--cmdline`` overrides both.
"""
from __future__ import annotations

import copy
import inspect
import json
import math
import random
from dataclasses import dataclass, field

from ..boot import Machine
from ..constants import (DMA_ATTR_MAY_SLEEP, DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL,
                         DMA_FROM_DEVICE, DMA_TO_DEVICE, PAGE_SIZE, KiB, MiB)
from ..debug import CAUSES, TRACEPOINTS
from ..device import Device
from ..dynamic import Grower
from ..page_alloc import GFP_KERNEL
from ..swiotlb import DmaMappingError
from ..versions import get_profile


@dataclass
class ScenarioResult:
    """What a scenario did, with the keys of ``python -m swiotlb_lib scenario --json``."""

    scenario: str
    kernel: str
    cmdline: str
    seed: int
    attempted: int = 0
    mapped: int = 0
    bounced: int = 0
    failed: int = 0
    failures: dict = field(default_factory=lambda: {c: 0 for c in CAUSES})
    peak_used_slots: int = 0
    peak_bounce_bytes: int = 0
    end_bounce_bytes: int = 0
    transient_pools: int = 0
    pools_added: int = 0
    oom_events: int = 0
    costs: dict = field(default_factory=dict)
    log: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("scenario", "kernel", "cmdline", "seed", "attempted", "mapped",
                                           "bounced", "failed", "failures", "peak_used_slots",
                                           "peak_bounce_bytes", "end_bounce_bytes", "transient_pools",
                                           "pools_added", "oom_events", "costs", "log")}
        d.update(self.extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    def summary_lines(self) -> list[str]:
        f = ", ".join(f"{k} {v}" for k, v in self.failures.items() if v) or "none"
        lines = [f"scenario {self.scenario} on {self.kernel} (cmdline {self.cmdline!r}, seed {self.seed})",
                 f"  mappings attempted {self.attempted}, mapped {self.mapped} ({self.bounced} bounced), "
                 f"failed {self.failed}: {f}",
                 f"  peak slots used {self.peak_used_slots}; bytes held for bouncing: peak "
                 f"{self.peak_bounce_bytes / MiB:.2f} MiB, end {self.end_bounce_bytes / MiB:.2f} MiB",
                 f"  transient pools {self.transient_pools}, pools added {self.pools_added}, "
                 f"OOM events {self.oom_events}"]
        for k, v in self.extra.items():
            lines.append(f"  {k}: {v}")
        costs = {k: v for k, v in self.costs.items() if k != "area_locks"}
        lines.append("  costs: " + ", ".join(f"{k}={v}" for k, v in costs.items()))
        return lines


class Recorder:
    """Drives a machine's DMA API and keeps the scenario's tallies."""

    def __init__(self, m: Machine, res: ScenarioResult, progress=None) -> None:
        self.m = m
        self.res = res
        self.step = 1e-4          # model seconds per operation (advances the worker's clock)
        self.progress = progress  # called with (done, total) per unit of the workload
        self.total = 0

    def tick(self, done: int, total: int) -> None:
        """Report progress: ``done`` of the workload's ``total`` units (requests, frames)."""
        if self.progress is not None:
            self.total = total
            self.progress(done, total)

    def _sample(self) -> None:
        mem = self.m.swiotlb
        r = self.res
        r.peak_used_slots = max(r.peak_used_slots, mem.total_used)
        r.peak_bounce_bytes = max(r.peak_bounce_bytes, self.m.bounce_bytes())

    def map(self, dev, paddr: int, size: int, dir: int, attrs: int = 0, cpu: int = 0):
        m, r = self.m, self.res
        m.advance(self.step)
        r.attempted += 1
        before = m.dma.bounced
        try:
            dma = m.dma.map_single(dev, paddr, size, dir, attrs, cpu)
        except DmaMappingError as e:
            r.failed += 1
            r.failures[e.cause] += 1
            self._sample()
            return None
        r.mapped += 1
        r.bounced += m.dma.bounced - before
        self._sample()
        return dma

    def unmap(self, dev, dma: int, size: int, dir: int, attrs: int = 0) -> None:
        self.m.advance(self.step)
        self.m.dma.unmap_single(dev, dma, size, dir, attrs)

    def map_sg(self, dev, sgl, dir: int, attrs: int = 0, cpu: int = 0):
        """``dma_map_sgtable``: entry by entry; one failure unmaps the rest and fails all."""
        done = []
        for paddr, n in sgl:
            dma = self.map(dev, paddr, n, dir, attrs, cpu)
            if dma is None:
                for d, k in done:
                    self.unmap(dev, d, k, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC)
                return None
            done.append((dma, n))
        return done

    def finish(self) -> ScenarioResult:
        m, r = self.m, self.res
        mem = m.swiotlb
        self._sample()
        r.end_bounce_bytes = m.bounce_bytes()
        r.costs = mem.costs()
        r.transient_pools = r.costs.get("transient_pools", 0)
        r.pools_added = r.costs.get("pools_added", 0)
        r.log = [l for l in m.log.lines if "Command line" not in l]
        if self.progress is not None and self.total:
            self.progress(self.total, self.total)
        return r


# ------------------------------------------------------------------ helpers ------------

def _machine(kernel, cmdline: str, default_cmdline: str, rfc_dynamic: bool = True, **kw) -> Machine:
    prof = get_profile(kernel)
    if cmdline is None:
        cmdline = default_cmdline
        if prof.dynamic == "rfc-v1" and rfc_dynamic:
            cmdline = _add_option(cmdline, "dynamic")
    return Machine(cmdline=cmdline, kernel=prof, **kw)


def _add_option(cmdline: str, opt: str) -> str:
    words = cmdline.split()
    for i, w in enumerate(words):
        if w.startswith("swiotlb="):
            words[i] = w + "," + opt
            return " ".join(words)
    return (cmdline + " swiotlb=" + opt).strip()


def _result(name, m: Machine, seed: int) -> ScenarioResult:
    return ScenarioResult(name, m.profile.name, m.cmdline, seed)


#: Contiguous-run lengths of a GPU buffer, in pages: log-uniform from 4 pages (16 KiB) to
#: 1200 pages (4.7 MiB).  Not measured: chosen so that the runs span the failing segment
#: sizes in the Raspberry Pi bug reports (384 KiB to 4.7 MiB,
#: https://github.com/raspberrypi/linux/issues/5524 and
#: https://github.com/raspberrypi/linux/issues/5926) together with the smaller runs that map fine.
RUN_PAGES = (4, 1200)


def scattered_buffer(m: Machine, rng: random.Random, nbytes: int, owner: str = "gpu"):
    """Allocate a ``nbytes`` buffer page by page, as shmem gathers a GEM object, in
    physically contiguous runs whose lengths follow :data:`RUN_PAGES`; one page pinned by
    someone else separates consecutive runs.  Returns ``(pages, runs)``: every page to free
    later (separators included) and the runs, in buffer order, that its scatter-gather
    table holds (``sg_alloc_table_from_pages`` merges adjacent pages).  ``(None, None)``
    if memory ran out."""
    pages = m.pages
    got, runs = [], []
    need = -(-nbytes // PAGE_SIZE)
    lo, hi = RUN_PAGES
    while need > 0:
        length = min(need, int(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
        for _ in range(length):
            p = pages.alloc_pages(GFP_KERNEL, 0, owner=owner)
            if p is None:
                for q in got:
                    pages.free_pages(q, 0)
                return None, None
            got.append(p)
            if runs and runs[-1][0] + runs[-1][1] == p:
                runs[-1][1] += PAGE_SIZE
            else:
                runs.append([p, PAGE_SIZE])
        need -= length
        sep = pages.alloc_pages(GFP_KERNEL, 0, owner="pinned")
        if sep is not None:
            got.append(sep)
    runs[-1][1] -= -nbytes % PAGE_SIZE          # the buffer may end inside its last page
    return got, [(a, n) for a, n in runs]


# ------------------------------------------------------------------ scenarios ----------

def rpi4_machine(kernel=None, cmdline=None, ram: str = "4G") -> Machine:
    """A Raspberry Pi 4 (4 CPUs, CMA): ``cmdline`` None boots the profile's default."""
    return _machine(kernel, cmdline, "", arch="arm64-rpi4", ram=ram, cpus=4)


def rpi4_display(rec: Recorder, rng: random.Random, nbytes: int, frames: int, may_sleep: bool = True,
                 frame_time: float = 1 / 60, drain: bool = False) -> dict:
    """The Raspberry Pi 4 display path on ``rec``'s machine: per frame, a ``nbytes``
    buffer from :func:`scattered_buffer`, mapped by v3d (full reach, no bounce) and
    imported by vc4 (``drm_gem_map_dma_buf``: ``dma_map_sgtable``); two frames stay on
    screen (double buffering), the older ones are unmapped and freed.  A buffer that
    cannot be allocated counts as an OOM event.  ``drain`` unmaps and frees the frames
    still on screen at the end.  Returns ``imports_ok``, ``imports_failed`` and the
    ``segments`` (sizes of every frame's contiguous runs)."""
    m = rec.m
    v3d = m.add_device("rpi4-v3d")
    vc4 = m.add_device("rpi4-vc4")
    attrs = DMA_ATTR_SKIP_CPU_SYNC | (DMA_ATTR_MAY_SLEEP if may_sleep else 0)
    live = []
    imports_ok = imports_failed = 0
    seg_sizes = []

    def retire(blocks, v3d_map, vc4_map):
        for d, k in vc4_map or []:
            rec.unmap(vc4, d, k, DMA_BIDIRECTIONAL, attrs)
        for d, k in v3d_map or []:
            rec.unmap(v3d, d, k, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
        for p in blocks:
            m.pages.free_pages(p, 0)

    for frame in range(frames):
        rec.tick(frame, frames)
        blocks, runs = scattered_buffer(m, rng, nbytes, owner="gpu")
        if blocks is None:
            rec.res.oom_events += 1
            continue
        seg_sizes += [n for _, n in runs]
        v3d_map = rec.map_sg(v3d, runs, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
        mapped = rec.map_sg(vc4, runs, DMA_BIDIRECTIONAL, attrs, cpu=frame % 4)
        if mapped is None:
            imports_failed += 1
        else:
            imports_ok += 1
        live.append((blocks, v3d_map, mapped))
        if len(live) > 2:
            retire(*live.pop(0))
        m.advance(frame_time)
    if drain:
        for frame in live:
            retire(*frame)
    return {"imports_ok": imports_ok, "imports_failed": imports_failed, "segments": seg_sizes}


def rpi4(name: str, width: int, height: int, nbytes: int, kernel=None, cmdline=None, seed: int = 1,
         frames: int = 8, may_sleep: bool = True, ram: str = "4G", progress=None) -> ScenarioResult:
    """The Raspberry Pi 4 display path (:func:`rpi4_display`), ``frames`` frames.

    The importer passes ``DMA_ATTR_SKIP_CPU_SYNC`` and, by default, ``DMA_ATTR_MAY_SLEEP``,
    as Petr Tesarik's test tree did (f42723f3-6dda-037d-3dd2-dc60ac0dcc3d@huaweicloud.com);
    ``may_sleep=False`` turns it off.  Two buffers are in flight (double buffering)."""
    rng = random.Random(seed)
    m = rpi4_machine(kernel, cmdline, ram)
    res = _result(name, m, seed)
    rec = Recorder(m, res, progress)
    shown = rpi4_display(rec, rng, nbytes, frames, may_sleep)
    seg_sizes = shown["segments"]
    res.extra = {"frame_bytes": nbytes, "resolution": f"{width}x{height}", "imports_ok": shown["imports_ok"],
                 "imports_failed": shown["imports_failed"], "may_sleep": may_sleep,
                 "segments_per_frame": round(len(seg_sizes) / max(frames, 1), 1),
                 "largest_segment": max(seg_sizes, default=0), "cma_bytes": m.cma_bytes}
    return rec.finish()


def size_mix(rng: random.Random) -> int:
    """A bounce-buffer size from the mix measured in a confidential VM (GuoRui Yu, RFC
    "cc-swiotlb", Message-ID ``20230128083254.86012-1-GuoRui.Yu@linux.alibaba.com``: about
    58 % <= 2 KiB, 91 % <= 4 KiB, none above 512 KiB)."""
    u = rng.random()
    if u < 0.58:
        return rng.choice([66, 128, 256, 512, 1024, 1514, 2048])
    if u < 0.91:
        return rng.choice([2560, 3072, 4096, 4096, 4096])
    return rng.choice([8192, 16384, 32768, 65536, 131072, 262144, 524288])


def coco_machine(kernel=None, cmdline=None, ram: str = "8G", cpus: int = 8) -> Machine:
    """A confidential x86 guest (memory encryption: every mapping bounces)."""
    return _machine(kernel, cmdline, "", ram=ram, cpus=cpus, mem_encrypt=True)


def coco_traffic(rec: Recorder, rng: random.Random, ops: int, depth: int = 32, burst_depth: int = 256,
                 cpu_per_buffer: bool = False) -> None:
    """Virtio block and network traffic of a confidential guest on ``rec``'s machine:
    ``ops`` requests with sizes from :func:`size_mix`; small ones mostly go to the network
    device, the block layer splits the others at ``dma_max_mapping_size``.  At most
    ``depth`` buffers stay in flight (``burst_depth`` in every fourth phase of 500
    requests); a random one completes first.

    Each request runs on a random CPU drawn before its buffers' addresses;
    ``cpu_per_buffer`` draws one per buffer after its address instead (the order of
    chapter 7's footprint runs, kept so that their numbers stay as published)."""
    m = rec.m
    blk = m.add_device("virtio-coco", "0000:00:03.0")
    net = m.add_device("virtio-coco", "0000:00:04.0")
    maxmap = m.swiotlb.max_mapping_size(blk) if m.swiotlb.nslabs else 256 * KiB
    inflight = []
    base = 0x10000000
    for i in range(ops):
        rec.tick(i, ops)
        limit = burst_depth if (i // 500) % 4 == 3 else depth
        size = size_mix(rng)
        dev = net if size <= 4096 and rng.random() < 0.7 else blk
        d = rng.choice([DMA_TO_DEVICE, DMA_FROM_DEVICE])
        cpu = None if cpu_per_buffer else rng.randrange(m.cpus)
        # the block layer splits at dma_max_mapping_size; the network stack does not
        pieces = [size] if dev is net else [min(maxmap, size - k) for k in range(0, size, maxmap)]
        for n in pieces:
            paddr = base + rng.randrange(1 << 16) * PAGE_SIZE
            dma = rec.map(dev, paddr, n, d, 0, rng.randrange(m.cpus) if cpu is None else cpu)
            if dma is not None:
                inflight.append((dev, dma, n, d))
        while len(inflight) > limit:
            dv, dma, n, dd = inflight.pop(rng.randrange(len(inflight)))
            rec.unmap(dv, dma, n, dd)
    for dv, dma, n, dd in inflight:
        rec.unmap(dv, dma, n, dd)


def coco_guest(kernel=None, cmdline=None, seed: int = 1, ops: int = 4000, ram: str = "8G",
               cpus: int = 8, burst_depth: int = 256, progress=None) -> ScenarioResult:
    """A confidential guest: every mapping bounces through the decrypted pool
    (:func:`coco_traffic`, 32 buffers in flight, ``burst_depth`` in bursts)."""
    rng = random.Random(seed)
    m = coco_machine(kernel, cmdline, ram, cpus)
    res = _result("coco-guest", m, seed)
    rec = Recorder(m, res, progress)
    coco_traffic(rec, rng, ops, burst_depth=burst_depth)
    res.extra = {"every_mapping_bounced": res.bounced == res.mapped}
    return rec.finish()


def arm_board_oom(kernel=None, cmdline=None, seed: int = 1, app_mib: int = 400, ram: str = "512M",
                  io_ops: int = 1500, progress=None) -> ScenarioResult:
    """A 512 MiB Arm board: applications ramp up to ``app_mib`` while an SD/MMC controller
    that reaches only the first 256 MiB of DRAM does I/O through SWIOTLB.  A failed
    application allocation is an OOM event (the OOM killer frees the largest process)."""
    rng = random.Random(seed)
    prof = get_profile(kernel)
    default = "swiotlb=512" if prof.is_dynamic else ""
    m = _machine(prof, cmdline, default, arch="arm64-board", ram=ram, cpus=4)
    res = _result("arm-board-oom", m, seed)
    rec = Recorder(m, res, progress)
    lay = m.layout
    mmc = m.add_device(Device("fe340000.mmc", bus_dma_limit=lay.zone("DMA").end - 1, driver="sdhci-iproc",
                              max_seg_size=65536))
    pages = m.pages
    apps: list[list] = [[] for _ in range(4)]
    app_pages = (app_mib * MiB) // PAGE_SIZE
    per_step = max(app_pages // io_ops, 1) * 1
    allocated = 0
    inflight = []
    kernel_blocks = []

    def complete(dma, n, d, buf, order):
        """The I/O is done: unmap; its pages stay cached (reclaimable page cache)."""
        rec.unmap(mmc, dma, n, d)
        pages.free_pages(buf, order)
        pages.alloc_pages(GFP_KERNEL, order, owner="pagecache")

    for i in range(io_ops):
        rec.tick(i, io_ops)
        # applications grow (order-0 user pages)
        for _ in range(per_step):
            if allocated >= app_pages:
                break
            a = rng.randrange(4)
            p = pages.alloc_pages(GFP_KERNEL, 0, owner="app")
            if p is None:
                res.oom_events += 1
                victim = max(apps, key=len)
                for q in victim:
                    pages.free_pages(q, 0)
                allocated -= len(victim)
                victim.clear()
                p = pages.alloc_pages(GFP_KERNEL, 0, owner="app")
                if p is None:
                    continue
            apps[a].append(p)
            allocated += 1
        if i % 50 == 0:             # the kernel's own unreclaimable allocations (slab, skbs)
            p = pages.alloc_pages(GFP_KERNEL, 4, owner="kernel")
            if p is not None:
                kernel_blocks.append(p)
        # I/O from page cache buffers above the DMA window: they bounce
        size = rng.choice([4096, 4096, 16384, 65536])
        order = max(size // PAGE_SIZE - 1, 0).bit_length()
        buf = pages.alloc_pages(GFP_KERNEL, order, owner="io")     # pinned while in flight
        if buf is None:
            res.oom_events += 1
            continue
        d = rng.choice([DMA_TO_DEVICE, DMA_FROM_DEVICE])
        dma = rec.map(mmc, buf, size, d, 0, rng.randrange(4))
        if dma is not None:
            inflight.append((dma, size, d, buf, order))
        else:
            pages.free_pages(buf, order)
        if len(inflight) > 16:
            complete(*inflight.pop(0))
    for req in inflight:
        complete(*req)
    st = pages.stats()
    res.extra = {"app_mib_wanted": app_mib, "app_mib_resident": allocated * PAGE_SIZE // MiB,
                 "free_mib_end": st["free"] // MiB}
    return rec.finish()


def nvme(kernel=None, cmdline=None, seed: int = 1, ops: int = 2000, qd: int = 32,
         respect_max_mapping: bool = True, progress=None) -> ScenarioResult:
    """NVMe in a confidential guest: ``min_align_mask`` 0xfff keeps each buffer's in-page
    offset, so the largest mapping is 252 KiB (``swiotlb_max_mapping_size``)."""
    rng = random.Random(seed)
    m = _machine(kernel, cmdline, "", ram="6G", cpus=4, mem_encrypt=True)
    res = _result("nvme", m, seed)
    rec = Recorder(m, res, progress)
    dev = m.add_device("nvme")
    limit = m.swiotlb.max_mapping_size(dev) if respect_max_mapping else 256 * KiB
    inflight = []
    over = 0
    for i in range(ops):
        rec.tick(i, ops)
        size = rng.choice([4096, 8192, 65536, 131072, 262144, 1 << 20])
        offset = rng.randrange(8) * 512
        d = rng.choice([DMA_TO_DEVICE, DMA_FROM_DEVICE])
        paddr = 0x20000000 + rng.randrange(1 << 14) * (1 << 16) + offset
        for k in range(0, size, limit):
            n = min(limit, size - k)
            over += n + (offset & 0x7FF) > 256 * KiB
            dma = rec.map(dev, paddr + k, n, d, 0, i % 4)
            if dma is not None:
                inflight.append((dma, n, d))
        while len(inflight) > qd:
            dma, n, dd = inflight.pop(0)
            rec.unmap(dev, dma, n, dd)
    for dma, n, dd in inflight:
        rec.unmap(dev, dma, n, dd)
    res.extra = {"max_mapping_size": m.swiotlb.max_mapping_size(dev), "requests_over_256k": over}
    return rec.finish()


def _blk_descriptors(rng: random.Random, segs: list, d: int):
    """The buffers of one virtio-blk request after its header, as ``(paddr, size, dir)``:
    the data segments, the status byte, the indirect table.  A generator, so a request that
    stops at a failed map draws no addresses for the rest."""
    for n in segs:
        yield 0x40000000 + rng.randrange(1 << 14) * PAGE_SIZE, n, d
    yield 0x2000000 + rng.randrange(4096) * 16 + 8, 1, DMA_FROM_DEVICE
    yield 0x3000000 + rng.randrange(1024) * 1024, 16 * (len(segs) + 2), DMA_TO_DEVICE


def virtio_blk_requests(rec: Recorder, dev, rng: random.Random, *, requests: int, qd: int,
                        cpus: int, sizes=(4096, 65536, 262144, 1 << 20), maxseg: int = 256 * KiB,
                        contiguity: float = 0.5) -> int:
    """Drive ``dev`` like virtio-blk does (``data/realkernel/README.md``, finding 13, the
    mappings of one virtio-blk request): per request a
    16-byte header (TO_DEVICE), the data segments (4 KiB pages, each segment a run of
    contiguous pages of at most ``maxseg``, extended page by page with probability
    ``contiguity``), a 1-byte status (FROM_DEVICE) and the indirect descriptor table (16 B
    per descriptor).  Up to ``qd`` requests stay in flight; the oldest completes first.  A
    request that cannot map everything gives back what it holds (``BLK_STS_RESOURCE``) and
    is dropped.  Request ``i`` runs on CPU ``i % cpus``.  Returns how many were dropped."""
    inflight = []
    requeued = 0
    for i in range(requests):
        rec.tick(i, requests)
        bs = rng.choice(sizes)
        d = rng.choice([DMA_TO_DEVICE, DMA_FROM_DEVICE])
        cpu = i % cpus
        maps = []
        hdr = rec.map(dev, 0x2000000 + rng.randrange(4096) * 16, 16, DMA_TO_DEVICE, 0, cpu)
        segs, left = [], bs
        while left:
            run = PAGE_SIZE
            while run < min(left, maxseg) and rng.random() < contiguity:
                run += PAGE_SIZE
            segs.append(min(run, left))
            left -= segs[-1]
        ok = hdr is not None
        if ok:
            maps.append((hdr, 16, DMA_TO_DEVICE))
            for paddr, n, dd in _blk_descriptors(rng, segs, d):
                dma = rec.map(dev, paddr, n, dd, 0, cpu)
                if dma is None:
                    ok = False
                    break
                maps.append((dma, n, dd))
        if not ok:                 # BLK_STS_RESOURCE: give back what the request holds
            for dma, n, dd in maps:
                rec.unmap(dev, dma, n, dd, DMA_ATTR_SKIP_CPU_SYNC)
            requeued += 1
            continue
        inflight.append(maps)
        while len(inflight) > qd:
            for dma, n, dd in inflight.pop(0):
                rec.unmap(dev, dma, n, dd)
    for req in inflight:
        for dma, n, dd in req:
            rec.unmap(dev, dma, n, dd)
    return requeued


def storage_machine(kernel=None, cmdline=None) -> Machine:
    """A 2 GiB, 2-CPU x86 guest booted with ``swiotlb=force`` unless ``cmdline`` says otherwise."""
    return _machine(kernel, cmdline, "swiotlb=force", ram="2G", cpus=2)


def storage(kernel=None, cmdline=None, seed: int = 1, requests: int = 1500, qd: int = 32,
            contiguity: float = 0.5, progress=None) -> ScenarioResult:
    """virtio-blk under ``swiotlb=force`` on a 2 GiB, 2-CPU guest, queue depth ``qd``:
    :func:`virtio_blk_requests` with 4 KiB to 1 MiB requests, segments capped at
    ``min(256 KiB, swiotlb_max_mapping_size)``."""
    rng = random.Random(seed)
    m = storage_machine(kernel, cmdline)
    res = _result("storage", m, seed)
    rec = Recorder(m, res, progress)
    dev = m.add_device("virtio-blk")
    maxseg = min(256 * KiB, m.swiotlb.max_mapping_size(dev)) if m.swiotlb.nslabs else 256 * KiB
    res.extra["requests_requeued"] = virtio_blk_requests(
        rec, dev, rng, requests=requests, qd=qd, cpus=2, maxseg=maxseg, contiguity=contiguity)
    return rec.finish()


SCENARIOS = {
    "rpi4-fullhd": (lambda **kw: rpi4("rpi4-fullhd", 1920, 1080, 1920 * 1080 * 4, **kw),
                    "Raspberry Pi 4: vc4 imports FullHD XRGB8888 framebuffers (8 294 400 B)"),
    "rpi4-4k": (lambda **kw: rpi4("rpi4-4k", 3840, 2160, 34 * MiB, **kw),
                "Raspberry Pi 4: vc4 imports 4K framebuffers (34 MiB, the RFC's figure)"),
    "coco-guest": (coco_guest, "confidential x86 guest: every DMA bounces; pool = 6 % of RAM"),
    "arm-board-oom": (arm_board_oom, "512 MiB Arm board: applications vs the fixed 64 MiB pool (OOM)"),
    "nvme": (nvme, "NVMe with min_align_mask 0xfff in a confidential guest (252 KiB max mapping)"),
    "storage": (storage, "virtio-blk under swiotlb=force with queue depth 32 (realkernel request shape)"),
}


#: The function behind each scenario, whose keyword defaults :func:`run_scenario` leaves out
#: of its cache key (the ``rpi4-*`` entries are :func:`rpi4` with the frame size bound).
_SCENARIO_DEFAULTS = {
    name: {p.name: p.default for p in inspect.signature(rpi4 if name.startswith("rpi4") else fn).parameters.values()
           if p.default is not inspect.Parameter.empty}
    for name, (fn, _) in SCENARIOS.items()}
#: Results of :func:`run_scenario` by run, for the life of the process.
_RUNS: dict = {}


def run_scenario(name: str, kernel=None, cmdline: str | None = None, seed: int = 1, **opts) -> ScenarioResult:
    """Run scenario ``name`` on profile ``kernel`` (see :data:`SCENARIOS`); ``progress``
    (in ``opts``), if given, is called with ``(done, total)`` units of the workload
    (requests, operations or frames).

    The scenarios are seeded, so each distinct run is computed once per process (a
    chapter's table, its widget and its figure ask for the same runs) and every call
    returns a fresh copy.  An option given at its default value is the same run as the
    option left out.  A run with a ``progress`` callback, or while a probe is on one of the
    model's hooks (:data:`swiotlb_lib.debug.TRACEPOINTS`), always runs, so the callback
    and the probes see every event."""
    try:
        fn, _ = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"name: unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}") from None
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    if opts.get("progress") is not None or any(tp.probes for tp in TRACEPOINTS.values()):
        return fn(kernel=kernel, cmdline=cmdline, seed=seed, **opts)
    opts.pop("progress", None)
    defaults = _SCENARIO_DEFAULTS[name]
    given = tuple(sorted((k, v) for k, v in opts.items()
                         if not (k in defaults and type(v) is type(defaults[k]) and v == defaults[k])))
    key = (name, kernel, cmdline, seed, given, Grower.WORKER_DELAY_TCG)
    try:
        res = _RUNS.get(key)
    except TypeError:                   # an option that cannot be a key: run it uncached
        return fn(kernel=kernel, cmdline=cmdline, seed=seed, **opts)
    if res is None:
        res = _RUNS[key] = fn(kernel=kernel, cmdline=cmdline, seed=seed, **opts)
    return copy.deepcopy(res)
