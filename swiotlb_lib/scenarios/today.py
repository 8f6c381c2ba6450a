"""Experiments of the chapter "SWIOTLB beyond the RFC": dma-iommu's sub-granule bouncing,
padding slots, ``SWIOTLB_ANY``, restricted DMA pools, and "swiotlb buffer is full".

Every number comes from the model run here: :mod:`swiotlb_lib.iommu` (the bounce decision
of ``drivers/iommu/dma-iommu.c``), :mod:`swiotlb_lib.restricted` (``swiotlb_alloc()``),
the v6.11 allocator (:class:`~swiotlb_lib.swiotlb.IoTlbMem`), the memory layouts of
:mod:`swiotlb_lib.memory` and the boot of :class:`~swiotlb_lib.boot.Machine`.  All of it is
deterministic; no experiment takes a seed.
"""
from __future__ import annotations

from ..boot import Machine, coco_swiotlb_size
from ..constants import (DMA_TO_DEVICE, IO_TLB_SHIFT, IO_TLB_SIZE, KiB,
                         MiB)
from ..device import Device, nvme, pci32
from ..iommu import decide, iommu_dma_map_page
from ..memory import layout_for
from ..report import mib, text_table
from ..gfp import get_order
from ..restricted import rmem_swiotlb_device_init, swiotlb_alloc, swiotlb_free
from ..swiotlb import DmaMappingError, IoTlbMem
from . import Experiment, register

#: Where the small test pools of this chapter start (page- and 64 KiB-aligned, in RAM).
POOL_BASE = 0x1000000

# ============================================================ 1. IOMMU sub-granule bouncing

#: The cases of the IOMMU experiment and the chapter's main widget:
#: label -> (granule, phys, size, untrusted, min_align_mask).
IOMMU_CASES = {
    "trusted NIC: 256 B at 0x1234, 4 KiB granule": (4096, 0x1234, 0x100, False, 0),
    "untrusted: 8 KiB at 0x3000, 4 KiB granule": (4096, 0x3000, 0x2000, True, 0),
    "untrusted: 256 B at 0x1234, 4 KiB granule": (4096, 0x1234, 0x100, True, 0),
    "untrusted NVMe: 256 B at 0x1a00, 4 KiB granule": (4096, 0x1A00, 0x100, True, 0xFFF),
    "untrusted: 1500 B at 0x10040, 16 KiB granule": (16384, 0x10040, 1500, True, 0),
    "untrusted: 256 B at 0x1234, 64 KiB granule": (65536, 0x1234, 0x100, True, 0),
    "untrusted NVMe: 256 B at 0x1a00, 64 KiB granule": (65536, 0x1A00, 0x100, True, 0xFFF),
}
IOMMU_KEYS = tuple(IOMMU_CASES)


def fresh_pool(nslabs: int = 512, nareas: int = 1, profile: str = "v6.11") -> IoTlbMem:
    """A v6.11 allocator with one pool of ``nslabs`` slots at :data:`POOL_BASE`."""
    mem = IoTlbMem(profile, nr_cpus=max(1, nareas))
    mem.init_pool(POOL_BASE, nslabs, nareas)
    return mem


def iommu_case(label: str) -> dict:
    """One case of :data:`IOMMU_CASES` mapped through ``iommu_dma_map_page()`` on a fresh
    512-slot v6.11 pool, then unmapped: the decision, the slots taken, the slots freed."""
    if label not in IOMMU_CASES:
        raise ValueError(f"label: unknown case {label!r}; choose one of {list(IOMMU_CASES)}")
    granule, phys, size, untrusted, mam = IOMMU_CASES[label]
    mem = fresh_pool()
    dev = Device("dev", min_align_mask=mam, driver="nvme" if mam else "")
    dev.dma_io_tlb_mem = mem
    m = iommu_dma_map_page(mem, dev, phys, size, granule, untrusted=untrusted, dir=DMA_TO_DEVICE)
    d = m.decision
    used = mem.mem_used()
    freed = mem.tbl_unmap_single(dev, m.phys, size, DMA_TO_DEVICE) if d.bounce else 0
    return {"label": label, "granule": granule, "phys": phys, "size": size, "untrusted": untrusted,
            "min_align_mask": mam, "bounce": d.bounce, "reason": d.reason,
            "alloc_align_mask": d.alloc_align_mask, "alloc_size": d.alloc_size, "nslots": d.nslots,
            "pad_slots": d.pad_slots, "tlb_offset": d.tlb_offset, "pre_zero": d.pre_zero,
            "post_zero": d.post_zero, "warns_align": d.warns_align, "tlb_addr": m.phys if d.bounce else None,
            "first_slot": m.first_slot, "data_slot": m.data_slot, "used_after_map": used,
            "freed_at_unmap": freed, "log": list(mem.log.lines)}


def iommu_bounce() -> list[dict]:
    """:func:`iommu_case` for every case of :data:`IOMMU_CASES`."""
    return [iommu_case(k) for k in IOMMU_KEYS]


def iommu_lines(rows) -> list[str]:
    out = [text_table(("case", "bounce", "align mask", "alloc", "slots", "pad", "zeroed"),
                      [(r["label"], "yes" if r["bounce"] else "no",
                        f"{r['alloc_align_mask']:#x}" if r["bounce"] else "-",
                        r["alloc_size"] or "-", r["nslots"] or "-", r["pad_slots"] if r["bounce"] else "-",
                        f"{r['pre_zero']}+{r['post_zero']}" if r["bounce"] else "-") for r in rows])]
    return out[0].splitlines()


# ============================================================ 2. padding slots

def pad_slots(phys: int = 0x1A00, size: int = 0x100) -> dict:
    """An NVMe-like device (``min_align_mask`` 0xfff) maps ``size`` bytes at ``phys`` with
    ``alloc_align_mask`` 0xfff (a 4 KiB IOMMU granule) on v6.6 and on v6.11, each on a
    512-slot pool that already holds one 2 KiB mapping in slot 0.  Reports the bounce
    address, the slot fields after the map, whether the granule that holds the data
    starts in a slot of this mapping, and what unmap frees."""
    out = {}
    for prof in ("v6.6", "v6.11"):
        mem = fresh_pool(profile=prof)
        other = Device("other")
        other.dma_io_tlb_mem = mem
        mem.tbl_map_single(other, 0x80000, IO_TLB_SIZE)          # slot 0 belongs to another device
        dev = nvme()
        dev.dma_io_tlb_mem = mem
        pool = mem.defpool
        # v6.6's signature still has alloc_size; the model passes iova_align(size), the
        # granule-rounded size (an assumption: the 6.6 dma-iommu call was not read at a commit)
        asize = -(-size // 4096) * 4096 if prof == "v6.6" else None
        tlb = mem.tbl_map_single(dev, phys, size, alloc_size=asize, alloc_align_mask=0xFFF)
        buf = mem.live[tlb]
        granule_start = tlb & ~0xFFF
        granule_slot = (granule_start - pool.start) >> IO_TLB_SHIFT
        slots = [{"slot": i, "list": int(pool.list[i]), "orig_addr": int(pool.orig_addr[i]),
                  "alloc_size": int(pool.alloc_size[i]), "pad_slots": int(pool.pad_slots[i])}
                 for i in range(0, 6)]
        freed = mem.tbl_unmap_single(dev, tlb, size)
        out[prof] = {"tlb_addr": tlb, "tlb_offset_in_granule": tlb & 0xFFF, "first_slot": buf.first_slot,
                     "data_slot": (tlb - pool.start) >> IO_TLB_SHIFT, "nslots": buf.nslots,
                     "granule_first_slot": granule_slot,
                     "granule_owned": granule_slot >= buf.first_slot, "slots": slots, "freed": freed}
    return {"phys": phys, "size": size, "profiles": out}


def pad_lines(r) -> list[str]:
    rows = []
    for prof, p in r["profiles"].items():
        rows.append((prof, f"{p['tlb_addr']:#x}", p["first_slot"], p["data_slot"], p["nslots"],
                     p["granule_first_slot"], "yes" if p["granule_owned"] else "no", p["freed"]))
    return text_table(("kernel", "tlb_addr", "first slot", "data slot", "slots", "granule starts in",
                       "granule all ours", "freed"), rows).splitlines()


# ============================================================ 3. SWIOTLB_ANY

def swiotlb_any(ram: str = "8G", pool_mib: int = 64) -> dict:
    """Where ``swiotlb_memblock_alloc()`` puts a ``pool_mib`` MiB boot pool on the x86_64
    layout with ``ram`` of RAM: ``memblock_alloc_low()`` (default) or ``memblock_alloc()``
    (``SWIOTLB_ANY``); then a 32-bit PCI device and an NVMe device each map 4 KiB through a
    pool at each place (``swiotlb_map()``, whose ``dma_capable()`` re-check refuses a bounce
    buffer the device cannot reach)."""
    from ..memory import parse_size
    lay = layout_for("x86_64", parse_size(ram, "ram"))
    out = {"ram": ram, "pool_bytes": pool_mib * MiB, "places": {}}
    for name, anywhere in (("default (memblock_alloc_low)", False), ("SWIOTLB_ANY (memblock_alloc)", True)):
        start = lay.place_boot_pool(pool_mib * MiB, anywhere=anywhere)
        mem = IoTlbMem("v6.11")
        mem.init_pool(start, (pool_mib * MiB) >> IO_TLB_SHIFT, 1)
        res = {}
        for dev in (pci32(), nvme()):
            dev.dma_io_tlb_mem = mem
            try:
                tlb = mem.swiotlb_map(dev, 0x10000, 4096)
                res[dev.driver] = f"bounced at {tlb:#x}"
            except DmaMappingError as e:
                res[dev.driver] = f"DMA_MAPPING_ERROR ({e.cause})"
        out["places"][name] = {"start": start, "end": start + pool_mib * MiB,
                               "below_4g": start + pool_mib * MiB <= 1 << 32, "maps": res,
                               "log": [ln for ln in mem.log.lines if "overflow" in ln]}
    return out


def any_lines(r) -> list[str]:
    rows = [(k, f"{v['start']:#x}", "yes" if v["below_4g"] else "no", v["maps"]["pci32"], v["maps"]["nvme"])
            for k, v in r["places"].items()]
    return text_table(("placement", "pool start", "below 4 GiB", "32-bit card", "NVMe"), rows).splitlines()


# ============================================================ 4. restricted DMA pools

#: The requests of the restricted-pool experiment: (kind, bytes).  ``alloc`` is
#: ``dma_alloc_coherent()`` (``swiotlb_alloc()``), ``map`` a streaming ``dma_map_single()``.
RESTRICTED_SEQUENCE = (("alloc", 4 * KiB), ("alloc", 12 * KiB), ("map", 1500), ("alloc", 8 * KiB),
                       ("alloc", 64 * KiB), ("map", 4 * KiB))


def restricted_alloc(pool_kib: int = 1024) -> dict:
    """A ``pool_kib`` KiB restricted pool (one area) serving a Wi-Fi-like device: the
    :data:`RESTRICTED_SEQUENCE` of coherent allocations and streaming maps, then 64 KiB
    coherent allocations until ``swiotlb_alloc()`` returns ``NULL``; finally everything
    is freed."""
    mem = rmem_swiotlb_device_init(POOL_BASE, pool_kib * KiB)
    dev = Device("wifi", driver="wlan")
    dev.dma_io_tlb_mem = mem
    pool = mem.defpool
    steps, held = [], []
    for kind, nbytes in RESTRICTED_SEQUENCE:
        if kind == "alloc":
            addr = swiotlb_alloc(mem, dev, nbytes)
            align = 4096 << get_order(nbytes)
            held.append(("alloc", addr, nbytes))
        else:
            addr = mem.swiotlb_map(dev, 0x80000 + 0x123, nbytes)
            align = None
            held.append(("map", addr, nbytes))
        steps.append({"kind": kind, "bytes": nbytes, "addr": addr, "slot": (addr - pool.start) >> IO_TLB_SHIFT,
                      "slots": -(-nbytes // IO_TLB_SIZE), "align": align, "used": mem.mem_used()})
    free_slots = pool.nslabs - mem.mem_used()
    more = 0
    while (a := swiotlb_alloc(mem, dev, 64 * KiB)) is not None:
        held.append(("alloc", a, 64 * KiB))
        more += 1
    left_free = pool.nslabs - mem.mem_used()
    for kind, addr, nbytes in reversed(held):
        if kind == "alloc":
            swiotlb_free(mem, dev, addr)
        else:
            mem.tbl_unmap_single(dev, addr, nbytes)
    return {"pool_bytes": pool_kib * KiB, "nslabs": pool.nslabs, "nareas": pool.nareas,
            "force_bounce": mem.force_bounce, "for_alloc": mem.for_alloc, "steps": steps,
            "free_before_fill": free_slots, "extra_64k_allocs": more, "free_after_fill": left_free,
            "used_after_free_all": mem.mem_used()}


def restricted_lines(r) -> list[str]:
    rows = [(s["kind"], mib(s["bytes"]), f"{s['addr']:#x}", s["slot"], s["slots"],
             mib(s["align"]) if s["align"] else "-", s["used"]) for s in r["steps"]]
    out = text_table(("request", "size", "address", "first slot", "slots", "aligned to", "used"), rows).splitlines()
    out.append(f"then {r['extra_64k_allocs']} more 64 KiB allocations before NULL; "
               f"{r['free_after_fill']} slots left free of {r['nslabs']}")
    return out


# ============================================================ 5. "swiotlb buffer is full"

def full_pool_size(sizes=(512, 2048, 32768), nbytes: int = 64 * KiB) -> list[dict]:
    """How many ``nbytes`` streaming mappings a pool of each size holds at once before the
    next ``swiotlb_tbl_map_single()`` fails (v6.11, one area, a plain 64-bit device)."""
    out = []
    for n in sizes:
        mem = fresh_pool(n)
        dev = Device("dev")
        dev.dma_io_tlb_mem = mem
        held = 0
        try:
            while True:
                mem.swiotlb_map(dev, 0x100000 + held * nbytes, nbytes)
                held += 1
        except DmaMappingError:
            pass
        out.append({"nslabs": n, "pool_bytes": n << IO_TLB_SHIFT, "mapped": held,
                    "line": [ln for ln in mem.log.lines if "is full" in ln][0]})
    return out


def pool_size_lines(rows) -> list[str]:
    return text_table(("pool", "slots", "64 KiB mappings held"),
                      [(mib(r["pool_bytes"]), r["nslabs"], r["mapped"]) for r in rows]).splitlines() + \
        [rows[0]["line"]]


def full_fragmentation(nslabs: int = 512) -> dict:
    """Fill a pool with 2 KiB mappings, unmap every second one, then ask for 4 KiB: half the
    pool is free, no two adjacent slots are, and the request fails."""
    mem = fresh_pool(nslabs)
    dev = Device("dev")
    dev.dma_io_tlb_mem = mem
    addrs = [mem.swiotlb_map(dev, 0x100000 + i * 4096, IO_TLB_SIZE) for i in range(nslabs)]
    for a in addrs[1::2]:
        mem.tbl_unmap_single(dev, a, IO_TLB_SIZE)
    used = mem.mem_used()
    try:
        mem.swiotlb_map(dev, 0x900000, 4096)
        ok = True
    except DmaMappingError:
        ok = False
    return {"nslabs": nslabs, "used": used, "free": nslabs - used, "largest_free_run": int(mem.defpool.list[:nslabs].max()),
            "request_4k_ok": ok, "line": [ln for ln in mem.log.lines if "is full" in ln]}


def full_cap() -> list[dict]:
    """The 256 KiB cap: single mappings on an empty 32768-slot pool, for a plain device and
    an NVMe-like device (``min_align_mask`` 0xfff), at two sizes and in-page offsets each;
    with ``swiotlb_max_mapping_size()`` of each device."""
    cases = (("plain", 0, 0x200000, 256 * KiB), ("plain", 0, 0x200000, 256 * KiB + 1),
             ("NVMe", 0xFFF, 0x200000, 256 * KiB), ("NVMe", 0xFFF, 0x200200, 256 * KiB),
             ("NVMe", 0xFFF, 0x2007FF, 256 * KiB - 4 * KiB))
    out = []
    for name, mam, phys, size in cases:
        mem = fresh_pool(32768)
        dev = Device("dev", min_align_mask=mam)
        dev.dma_io_tlb_mem = mem
        try:
            mem.swiotlb_map(dev, phys, size)
            res = "mapped"
        except DmaMappingError as e:
            res = f"fails ({e.cause})"
        out.append({"device": name, "phys": phys, "size": size, "max_mapping_size": mem.max_mapping_size(dev),
                    "slots_needed": -(-(size + (phys & mam & (IO_TLB_SIZE - 1))) // IO_TLB_SIZE),
                    "result": res, "line": [ln for ln in mem.log.lines if "is full" in ln]})
    return out


def cap_lines(rows) -> list[str]:
    return text_table(("device", "phys", "size", "slots", "max_mapping_size", "result"),
                      [(r["device"], f"{r['phys']:#x}", r["size"], r["slots_needed"], r["max_mapping_size"],
                        r["result"]) for r in rows]).splitlines()


def full_leak(nslabs: int = 1024, requests: int = 6000, leak_every: int = 10, step: int = 250) -> dict:
    """A driver maps 4 KiB per request and unmaps it again, except every ``leak_every``-th
    mapping, which it forgets.  ``io_tlb_used`` after every ``step`` requests, and the
    request at which the first map fails."""
    mem = fresh_pool(nslabs)
    dev = Device("leaky", driver="leaky")
    dev.dma_io_tlb_mem = mem
    series, first_fail = [(0, 0)], None
    for i in range(1, requests + 1):
        try:
            tlb = mem.swiotlb_map(dev, 0x100000 + (i % 64) * 4096, 4096)
        except DmaMappingError:
            if first_fail is None:
                first_fail = i
        else:
            if i % leak_every:
                mem.tbl_unmap_single(dev, tlb, 4096)
        if i % step == 0:
            series.append((i, mem.mem_used()))
    return {"nslabs": nslabs, "requests": requests, "leak_every": leak_every, "series": series,
            "first_fail": first_fail, "hiwater": mem.used_hiwater,
            "line": next((ln for ln in mem.log.lines if "is full" in ln), "")}


#: RAM sizes of the confidential-guest sizing experiment.
COCO_RAM = ("1G", "2G", "4G", "8G", "16G", "32G", "64G")


def full_coco(cpus: int = 8) -> dict:
    """The default pool of a confidential guest (``mem_encrypt_setup_arch()``: 6 % of
    ``memblock_phys_mem_size()`` clamped to [64 MiB, 1 GiB], then ``swiotlb_adjust_size()``
    and the area rounding) per RAM size, booted on the model; and the same 8 GiB guest
    with ``swiotlb=131072`` on the command line, which ``swiotlb_adjust_size()`` leaves
    alone."""
    rows = []
    for ram in COCO_RAM:
        m = Machine(ram=ram, cpus=cpus, mem_encrypt=True)
        rows.append({"ram": ram, "total_ram": m.layout.total_ram, "six_percent_clamped": coco_swiotlb_size(m.layout.total_ram),
                     "pool_bytes": m.swiotlb.nslabs << IO_TLB_SHIFT, "pool_start": m.swiotlb.defpool.start})
    m = Machine(ram="8G", cpus=cpus, mem_encrypt=True, cmdline="swiotlb=131072")
    return {"cpus": cpus, "rows": rows,
            "explicit": {"cmdline": "swiotlb=131072", "pool_bytes": m.swiotlb.nslabs << IO_TLB_SHIFT,
                         "lines": m.swiotlb_lines()}}


def coco_lines(r) -> list[str]:
    out = text_table(("RAM", "6 % clamped", "pool built"),
                     [(x["ram"], mib(x["six_percent_clamped"]), mib(x["pool_bytes"])) for x in r["rows"]]).splitlines()
    out.append(f"8G with {r['explicit']['cmdline']}: {mib(r['explicit']['pool_bytes'])}")
    return out


# ============================================================ registration

register(Experiment("iommu-bounce", iommu_bounce, "dma-iommu: bounce or not, and the slots swiotlb gives it",
                    chapter="ch12", seeded=False, lines=iommu_lines))
register(Experiment("pad-slots", pad_slots, "a min_align_mask offset over 2 KiB with a 4 KiB alloc_align_mask, v6.6 vs v6.11",
                    chapter="ch12", seeded=False, lines=pad_lines))
register(Experiment("swiotlb-any", swiotlb_any, "boot pool placement with and without SWIOTLB_ANY",
                    chapter="ch12", seeded=False, lines=any_lines))
register(Experiment("restricted-alloc", restricted_alloc, "a restricted DMA pool serving swiotlb_alloc() and maps",
                    chapter="ch12", seeded=False, lines=restricted_lines))
register(Experiment("full-pool-size", full_pool_size, "64 KiB mappings held per pool size",
                    chapter="ch12", seeded=False, lines=pool_size_lines))
register(Experiment("full-fragmentation", full_fragmentation, "half the pool free and a 4 KiB map fails",
                    chapter="ch12", seeded=False))
register(Experiment("full-cap", full_cap, "the 256 KiB cap per device and offset",
                    chapter="ch12", seeded=False, lines=cap_lines))
register(Experiment("full-leak", full_leak, "a driver that forgets one unmap in ten",
                    chapter="ch12", seeded=False))
register(Experiment("full-coco", full_coco, "a confidential guest's default pool per RAM size",
                    chapter="ch12", seeded=False, lines=coco_lines))

__all__ = ["IOMMU_CASES", "IOMMU_KEYS", "iommu_case", "iommu_bounce", "pad_slots", "swiotlb_any",
           "restricted_alloc", "full_pool_size", "full_fragmentation", "full_cap", "full_leak", "full_coco",
           "decide"]
