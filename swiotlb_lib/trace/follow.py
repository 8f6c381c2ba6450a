"""Replay that follows the recording: the model judged on the kernel's own state, mapping by mapping.

A kprobe trace records the kernel's decisions: the bounce address ``map_ret`` returned for
every ``swiotlb_tbl_map_single`` (or ``DMA_MAPPING_ERROR``) and every unmap.  :class:`Follow`
replays such a trace without letting the model's choices feed back:

* each recorded mapping is attempted once, as the kernel attempted it (the kernel's own
  retries after ``BLK_STS_RESOURCE`` are the trace's later mappings, not something to
  simulate again);
* the model makes its own decision (``swiotlb_tbl_map_single``,
  ``kernel/dma/swiotlb.c@af133562d5af: swiotlb_search_pool_area()``) on the state built from
  the kernel's earlier decisions, area indexes included; its address is compared with the
  kernel's (``slot_agreement``), its failures with the kernel's (``failure_agreement``);
* then the model's allocation is undone, the area indexes restored, and the kernel's
  decision is applied instead: the buffer is placed at the recorded address (the search
  starts at that slot in its area, so the index afterwards is the kernel's:
  ``area->index = wrap_area_index(mem, index + nslots)``); a recorded failure leaves the
  state as it is (a failed search moves no index).  One race between two CPUs, which a
  sequential replay cannot order, therefore stays one disagreement instead of a cascade.

Two kinds of inconsistency are told apart: a recorded address inside a buffer the model
still holds means that buffer's unmap event was lost (the kprobe missed it,
``data/realkernel-nvme/README.md``, "Lost unmap events"): the buffer is released and
counted (``lost_unmaps``); a recorded address outside every pool of the model means the
configuration given is not the recording's: :class:`ValueError`, naming the line.  A
buffer still held when the trace ends is counted as a lost unmap too (the model's
assumption: recordings end with the workload complete and the pool empty).

:func:`infer_min_align_mask` reads the device's ``min_align_mask`` from a kprobe trace
when the bounce addresses keep the original's low bits (``swiotlb_align_offset()``).
"""
from __future__ import annotations

from ..constants import IO_TLB_SHIFT, IO_TLB_SIZE, PAGE_SIZE
from ..swiotlb import DmaMappingError
from .engine import Engine
from .read import TLB_FAILED


def infer_min_align_mask(trace) -> int:
    """The ``min_align_mask`` a kprobe trace shows, or 0.

    With a ``min_align_mask``, ``swiotlb_tbl_map_single`` returns a bounce address with the
    original's bits under the mask (``kernel/dma/swiotlb.c@af133562d5af:
    swiotlb_align_offset()``; NVMe: ``dma_set_min_align_mask(dev, NVME_CTRL_PAGE_SIZE - 1)``).
    The answer is ``2**k - 1`` for the highest bit ``k - 1`` (below ``PAGE_SIZE``) that some
    original sets and that every recorded bounce address keeps; 0 when no original sets
    such a bit (page-aligned buffers, as in ``data/realkernel-nvme/``: the trace cannot
    tell, give the device preset) or when the low bits are not kept (virtio-blk)."""
    agree = PAGE_SIZE - 1
    seen = 0
    for mp in trace.mappings:
        tlb = mp.tlb
        if tlb is None or tlb == TLB_FAILED:
            continue
        diff = (tlb ^ mp.orig) & agree
        if diff:
            agree &= (diff & -diff) - 1                 # only the bits below the lowest difference
            if not agree:
                return 0
        seen |= mp.orig
    seen &= agree
    return (1 << seen.bit_length()) - 1 if seen else 0


def follows(trace) -> bool:
    """Whether the trace records the kernel's decisions (``map_ret`` events) and unmaps."""
    return trace.counts["map_ret"] > 0 and trace.has_unmaps


def recorded_fit(trace, pools) -> tuple[int, int]:
    """``(inside, outside)``: recorded bounce addresses inside and outside ``pools``."""
    inside = outside = 0
    for mp in trace.mappings:
        if mp.tlb is None or mp.tlb == TLB_FAILED:
            continue
        if any(p.start <= mp.tlb < p.end for p in pools):
            inside += 1
        else:
            outside += 1
    return inside, outside


class Follow(Engine):
    """One replay following the recording (see the module docstring).  Uses the
    :class:`Engine`'s machine, devices, tallies and timeline; replaces its loop."""

    INFER_LOST = False                                  # lost unmaps are found by following

    def run(self) -> None:
        maps = self.maps
        events = []
        for i, mp in enumerate(maps):
            events.append((mp.map_line or mp.line, 0, i))
            if mp.unmap_line is not None:
                events.append((mp.unmap_line, 1, i))
        events.sort()
        self.held: dict = {}                            # mapping index -> bounce address held
        self.model_failed = set()
        self.kernel_failed = 0
        self.agree_fail = 0
        self.same = self.compared = 0
        self.lost = 0
        self.unfollowed = 0
        self.divergence = None
        n = len(events)
        step = max(n // 200, 1)
        for k, (_, kind, i) in enumerate(events):
            if self.progress is not None and not k % step:
                self.progress(k, n)
            mp = maps[i]
            if kind:
                tlb = self.held.pop(i, None)
                if tlb is not None:
                    self._now(mp.unmap_time)
                    self.unmap_one(i, tlb)
                    self._record(self.m.log.now)
                continue
            self._now(mp.time)
            self.follow_one(i)
            self._record(self.m.log.now)
        if self.progress is not None:
            self.progress(n, n)
        # The model's assumption: a recording ends after its workload completed (the
        # recording scripts stop tracing after the last I/O and its unmaps; io_tlb_used was 0
        # at the end of every recorded boot, data/realkernel-nvme/README.md), so a buffer
        # still held here also lost its unmap event.
        self.lost_detected = self.lost
        for j, tlb in list(self.held.items()):
            self.unmap_one(j, tlb)
            self.lost += 1
        self.held.clear()
        self.tally["live_at_end"] = 0

    # -- one mapping ------------------------------------------------------------------------
    def _pool_of(self, mp):
        pool = self.mem.defpool
        if pool is None or not pool.start <= mp.tlb < pool.end:
            where = f"[{pool.start:#x}, {pool.end:#x})" if pool is not None else "none"
            raise ValueError(f"trace: line {mp.map_line or mp.line}: the kernel's bounce address "
                             f"{mp.tlb:#x} lies outside every pool of this configuration (pool "
                             f"{where}): the kernel, swiotlb= or RAM given do not match the "
                             "recording; give the recorded ones, or replay without following "
                             "(follow=False, --no-follow)")
        return pool

    def _first_addr(self, i: int, has_pad: bool) -> tuple[int, int]:
        """The address of the first slot (padding included) of the kernel's buffer of mapping
        ``i``, and its ``swiotlb_align_offset()`` (``kernel/dma/swiotlb.c@afd81d914f6f``;
        without ``pad_slots``, before 6.9, only the offset inside a slot)."""
        mp = self.maps[i]
        dev = self.devs[mp.dev_name]
        offset = mp.orig & dev.min_align_mask & ((mp.align_mask | (IO_TLB_SIZE - 1))
                                                 if has_pad else (IO_TLB_SIZE - 1))
        pad = (offset >> IO_TLB_SHIFT) << IO_TLB_SHIFT if has_pad else 0
        return mp.tlb - (offset & (IO_TLB_SIZE - 1)) - pad, offset

    def _first_slot(self, pool, i: int) -> tuple[int, int]:
        """The first slot (padding included) and slot count of the kernel's buffer of mapping ``i``."""
        addr, offset = self._first_addr(i, pool.has_pad)
        return (addr - pool.start) >> IO_TLB_SHIFT, -(-(self.maps[i].size + offset) // IO_TLB_SIZE)

    def _release_lost(self, pool, first: int, nslots: int) -> None:
        """Buffers the model holds where the kernel has just allocated: their unmaps were lost."""
        lst = pool.list
        if all(lst[k] for k in range(max(first, 0), min(first + nslots, pool.nslabs))):
            return
        for j, tlb in list(self.held.items()):
            buf = self.mem.live.get(tlb)
            if buf is not None and buf.pool is pool and buf.first_slot < first + nslots \
                    and first < buf.first_slot + buf.nslots:
                del self.held[j]
                self.unmap_one(j, tlb)
                self.lost += 1

    def follow_one(self, i: int) -> None:
        mp = self.maps[i]
        rec = mp.tlb
        if rec is None:                                 # no map_ret: judged, not followed
            self.unfollowed += 1
            r = self.map_one(i)
            if not isinstance(r, str) and r >= 0:
                self.unmap_one(i, r)
            return
        pool = None
        if rec != TLB_FAILED:
            pool = self._pool_of(mp)
            first, nslots = self._first_slot(pool, i)
            self._release_lost(pool, first, nslots)
        saved = [list(p.area_index) for p in self._pools()]
        r = self.map_one(i)                             # the model's own decision
        model_failed = isinstance(r, str)
        if model_failed:
            self.model_failed.add(i)
        if rec == TLB_FAILED:
            self.kernel_failed += 1
            self.agree_fail += model_failed
            if not model_failed:
                if r >= 0:
                    self.unmap_one(i, r)
                self._restore(saved)
                self._diverged(mp, "failed", r)
            return
        self.compared += 1
        if r == rec:
            self.same += 1
            self.held[i] = rec
            return
        self._diverged(mp, rec, r)
        if not model_failed and r >= 0:
            self.unmap_one(i, r)
        self._restore(saved)
        area = first // pool.area_nslabs
        pool.set_area_index(area, first - area * pool.area_nslabs)
        try:
            got = self.allocate(i, area)
        except DmaMappingError:
            got = None
        self._placed(i, got, rec, ": the device's min_align_mask or the kernel profile do not match "
                     "the recording; give device= (--device), or replay without following")

    def _placed(self, i: int, got, rec: int, why: str) -> None:
        """The model put the kernel's buffer ``i`` at ``got``: hold it if that is the recorded
        address ``rec``, else give it back and stop with a one-line error ending in ``why``."""
        if got != rec:
            if got is not None:
                self.unmap_one(i, got)
            mp = self.maps[i]
            raise ValueError(f"trace: line {mp.map_line or mp.line}: the model cannot place the "
                             f"kernel's buffer at {rec:#x} (size {mp.size}, orig {mp.orig:#x}){why}")
        self.held[i] = rec

    def _pools(self):
        return [self.mem.defpool] if self.mem.defpool is not None else []

    def _restore(self, saved) -> None:
        for p, idx in zip(self._pools(), saved):
            for area, index in enumerate(idx):
                p.set_area_index(area, index)

    def _diverged(self, mp, kernel, model) -> None:
        if self.divergence is None:
            self.divergence = {"line": mp.map_line or mp.line, "time": mp.time, "cpu": mp.cpu,
                               "size": mp.size,
                               "kernel": kernel if isinstance(kernel, str) else f"{kernel:#x}",
                               "model": model if isinstance(model, str) else f"{model:#x}"}

    def finish(self):
        res = super().finish()
        x = res.extra
        reqs = self.reqs
        failed_reqs = sum(any(i in self.model_failed for i in r.members) for r in reqs)
        kernel_reqs = sum(any(self.maps[i].tlb == TLB_FAILED for i in r.members) for r in reqs)
        # completed as recorded: every mapping the kernel made, none failed, not given up
        x["requests_completed"] = sum(not r.aborted and all(self.maps[i].tlb not in (None, TLB_FAILED)
                                                            for i in r.members) for r in reqs)
        for k in ("requests_requeued", "retries", "queued_behind", "gave_up",
                  "livelocked_requests", "dropped_mappings", "too_big_requests"):
            x.pop(k, None)
        x["failed_requests"] = failed_reqs
        x["kernel_failed_requests"] = kernel_reqs
        x["follow"] = True
        x["kernel_failed"] = self.kernel_failed
        x["failure_agreement"] = f"{self.agree_fail}/{self.kernel_failed}"
        x["slot_agreement"] = f"{self.same}/{self.compared}"
        x["lost_unmaps"] = self.lost
        x["lost_unmaps_reused"] = self.lost_detected
        x["not_followed"] = self.unfollowed
        x["first_divergence"] = self.divergence
        return res


def follow_note(extra: dict) -> str:
    """One line on what following measured."""
    d = extra.get("first_divergence")
    first = ("none" if d is None else
             f"line {d['line']} (CPU {d['cpu']}, {d['size']} bytes): kernel {d['kernel']}, model {d['model']}")
    return (f"following the recording: each mapping decided by the model on the kernel's state, "
            f"then the kernel's decision applied; the model failed {extra['failure_agreement']} of "
            f"the mappings the kernel failed; first divergence: {first}")

