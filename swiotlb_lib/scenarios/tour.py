"""Experiments of the appendix "SWIOTLB's structures, its history and later kernels".

The concern of this module is what the allocator's bookkeeping costs and how the newest
kernels differ from the ones the book models:

* :func:`struct_rows`: the fields of ``struct io_tlb_slot``, ``struct io_tlb_area`` and
  ``struct io_tlb_pool`` with their C types, sizes and offsets on x86_64, laid out by
  :func:`layout` with the C rules (each field at a multiple of its alignment, the struct
  padded to a multiple of its largest alignment).  The definitions are those of
  ``kernel/dma/swiotlb.c`` and ``include/linux/swiotlb.h`` as of gregkh/linux
  ``kernel/dma/swiotlb.c@0219b72f5c20`` (the newest stored) and v6.9 onwards
  (``pad_slots``, af133562d5af); before v6.9 ``list`` was an ``unsigned int`` and the slot
  had the same 24 bytes.
* :func:`slot_overhead`: what the slot and area arrays cost for a pool, allocated the way
  each path allocates them: ``memblock_alloc()`` of ``PAGE_ALIGN(array_size(...))`` at boot
  (``swiotlb_init_remap()``), whole buddy blocks of ``get_order(...)`` pages for late and
  dynamic pools (``swiotlb_init_late()``, ``swiotlb_alloc_pool()``).
* :func:`zone_choice`: the zone modifier ``swiotlb_alloc_tlb()`` asks for, with the 6.11
  test (``phys_limit <= DMA_BIT_MASK(zone_dma_bits)``) and the 6.12 one
  (``phys_limit <= zone_dma_limit``, ba0fb44aed47).

Model assumptions, stated where the numbers depend on them: x86_64 (LP64, 64-bit
``phys_addr_t``), 4 KiB pages, and ``spinlock_t`` of 4 bytes (no lock debugging or lockdep;
with ``CONFIG_DEBUG_SPINLOCK`` or ``CONFIG_DEBUG_LOCK_ALLOC`` it is larger).
"""
from __future__ import annotations

from ..constants import GiB, IO_TLB_SHIFT, IO_TLB_SIZE, KiB, MiB, PAGE_SIZE
from ..gfp import get_order
from ..report import text_table
from . import Experiment, register

#: C types on x86_64 (LP64): (size, alignment) in bytes.  ``spinlock_t`` is the model's
#: assumption of a kernel without lock debugging.
CTYPES = {
    "phys_addr_t": (8, 8), "size_t": (8, 8), "unsigned long": (8, 8), "u64": (8, 8),
    "unsigned int": (4, 4), "unsigned short": (2, 2), "u8": (1, 1), "bool": (1, 1),
    "pointer": (8, 8), "spinlock_t": (4, 4),
    "struct list_head": (16, 8), "struct rcu_head": (16, 8),
}

#: The structures, field by field: (field, C type as the source writes it, layout type,
#: what it is for, in the book's words).
STRUCTS = {
    "io_tlb_slot": (
        ("orig_addr", "phys_addr_t", "phys_addr_t",
         "physical address of the original buffer for the bytes in this slot; INVALID_PHYS_ADDR when free "
         "(also in padding slots)"),
        ("alloc_size", "size_t", "size_t",
         "bytes from this slot to the end of the allocation: swiotlb_bounce() clamps a sync with it"),
        ("list", "unsigned short", "unsigned short",
         "free-run counter: free slots from here to the end of the 128-slot segment, 0 when used"),
        ("pad_slots", "unsigned short", "unsigned short",
         "padding slots before this one (6.9+, only in the first slot holding data); unmap steps back by it"),
    ),
    "io_tlb_area": (
        ("used", "unsigned long", "unsigned long", "slots in use in this area"),
        ("index", "unsigned int", "unsigned int", "where the next search in this area starts (relative to the area)"),
        ("lock", "spinlock_t", "spinlock_t", "protects used, index and the area's slots during map and unmap"),
    ),
    "io_tlb_pool": (
        ("start", "phys_addr_t", "phys_addr_t", "first byte of the bounce memory: the range test of swiotlb_find_pool()"),
        ("end", "phys_addr_t", "phys_addr_t", "one past the last byte"),
        ("vaddr", "void *", "pointer", "kernel address of the bounce memory (remapped when decrypted)"),
        ("nslabs", "unsigned long", "unsigned long", "number of 2 KiB slots"),
        ("late_alloc", "bool", "bool", "allocated from the page allocator, not memblock"),
        ("nareas", "unsigned int", "unsigned int", "number of areas (each with its own lock)"),
        ("area_nslabs", "unsigned int", "unsigned int", "slots per area"),
        ("areas", "struct io_tlb_area *", "pointer", "the area array"),
        ("slots", "struct io_tlb_slot *", "pointer", "the slot array, one io_tlb_slot per 2 KiB slot"),
        ("node", "struct list_head", "struct list_head", "CONFIG_SWIOTLB_DYNAMIC: entry in mem->pools or dev->dma_io_tlb_pools"),
        ("rcu", "struct rcu_head", "struct rcu_head", "CONFIG_SWIOTLB_DYNAMIC: frees the pool after an RCU grace period"),
        ("transient", "bool", "bool", "CONFIG_SWIOTLB_DYNAMIC: a one-mapping pool, freed at its unmap"),
    ),
}

#: ``struct io_tlb_mem`` (include/linux/swiotlb.h): field, type, purpose.  Its size depends
#: on ``work_struct`` and debug options, so the tour lists it without sizes.
IO_TLB_MEM_FIELDS = (
    ("defpool", "struct io_tlb_pool", "the pool made at boot (or the restricted pool), embedded"),
    ("nslabs", "unsigned long", "slots in all pools together (debugfs io_tlb_nslabs)"),
    ("debugfs", "struct dentry *", "its debugfs directory"),
    ("force_bounce", "bool", "bounce every mapping (swiotlb=force, confidential guests, restricted pools)"),
    ("for_alloc", "bool", "restricted DMA pool: coherent allocations come from it too (swiotlb_alloc())"),
    ("can_grow", "bool", "CONFIG_SWIOTLB_DYNAMIC: more pools may be added"),
    ("phys_limit", "u64", "CONFIG_SWIOTLB_DYNAMIC: highest physical address a grown pool may use"),
    ("lock", "spinlock_t", "CONFIG_SWIOTLB_DYNAMIC: protects the pool list on growth"),
    ("pools", "struct list_head", "CONFIG_SWIOTLB_DYNAMIC: all pools, searched under RCU"),
    ("dyn_alloc", "struct work_struct", "CONFIG_SWIOTLB_DYNAMIC: the growth worker, swiotlb_dyn_alloc()"),
    ("total_used, used_hiwater", "atomic_long_t", "CONFIG_DEBUG_FS: debugfs io_tlb_used and io_tlb_used_hiwater"),
    ("transient_nslabs", "atomic_long_t", "CONFIG_DEBUG_FS and DYNAMIC: slots in transient pools"),
)


def layout(name: str) -> tuple[list[tuple[str, int, int]], int]:
    """C layout of ``struct name`` on x86_64: ``[(field, offset, size), ...]`` and
    ``sizeof``, with each field at a multiple of its alignment and the struct padded to a
    multiple of its largest alignment."""
    try:
        fields = STRUCTS[name]
    except KeyError:
        raise ValueError(f"name: expected one of {', '.join(STRUCTS)}, got {name!r}") from None
    out, off, align_max = [], 0, 1
    for field, _ctype, ltype, _why in fields:
        size, align = CTYPES[ltype]
        off = -(-off // align) * align
        out.append((field, off, size))
        off += size
        align_max = max(align_max, align)
    return out, -(-off // align_max) * align_max


def sizeof(name: str) -> int:
    """``sizeof(struct name)`` on x86_64 (see :func:`layout`)."""
    return layout(name)[1]


STRUCT_HEADER = ("struct", "field", "C type", "offset", "bytes", "what it is for")


def struct_rows() -> list[tuple]:
    """One row per field of the three structures, then a ``sizeof`` row for each."""
    rows = []
    for name, fields in STRUCTS.items():
        offs, total = layout(name)
        for (field, ctype, _lt, why), (_f, off, size) in zip(fields, offs):
            rows.append((name, field, ctype, off, size, why))
        rows.append((name, "sizeof (with padding)", "", "", total, ""))
    return rows


def _alloc_bytes(nbytes: int, how: str) -> int:
    """Bytes the kernel takes for an array of ``nbytes``: ``memblock`` rounds to a page,
    the page allocator to a power-of-two block of pages."""
    if how == "memblock":
        return -(-nbytes // PAGE_SIZE) * PAGE_SIZE
    return PAGE_SIZE << get_order(nbytes)


#: The pools of the overhead table: (label, slots, areas, how the slot array is allocated).
POOLS = (
    ("default pool at boot (64 MiB, 4 CPUs)", 64 * MiB // IO_TLB_SIZE, 4, "memblock"),
    ("confidential guest at boot (1 GiB, 16 CPUs)", GiB // IO_TLB_SIZE, 16, "memblock"),
    ("grown pool (4 MiB, the largest swiotlb_alloc_pool() makes)", 4 * MiB // IO_TLB_SIZE, 4, "pages"),
    ("transient pool for one 256 KiB mapping", 256 * KiB // IO_TLB_SIZE, 1, "pages"),
)

OVERHEAD_HEADER = ("pool", "slots", "slot array B", "allocated B", "areas", "area array B",
                   "overhead % of pool")


def slot_overhead(nslabs: int, nareas: int, how: str = "memblock") -> dict:
    """Bookkeeping of one pool of ``nslabs`` slots and ``nareas`` areas: the slot array
    (``nslabs * sizeof(struct io_tlb_slot)``), what its allocation takes (``how``:
    ``"memblock"`` at boot, ``"pages"`` for late and dynamic pools), the area array, and
    both as a percentage of the pool's bounce memory."""
    if not isinstance(nslabs, int) or nslabs <= 0:
        raise ValueError(f"nslabs: expected a positive number of slots, got {nslabs!r}")
    if not isinstance(nareas, int) or nareas <= 0:
        raise ValueError(f"nareas: expected a positive number of areas, got {nareas!r}")
    if how not in ("memblock", "pages"):
        raise ValueError(f"how: expected 'memblock' or 'pages', got {how!r}")
    slot_bytes = nslabs * sizeof("io_tlb_slot")
    allocated = _alloc_bytes(slot_bytes, how)
    area_bytes = nareas * sizeof("io_tlb_area")
    pool_bytes = nslabs << IO_TLB_SHIFT
    return {"nslabs": nslabs, "pool_bytes": pool_bytes, "slot_array_bytes": slot_bytes,
            "slot_array_allocated": allocated, "nareas": nareas, "area_array_bytes": area_bytes,
            "overhead_pct": round(100 * (allocated + area_bytes) / pool_bytes, 3)}


def overhead_rows() -> list[tuple]:
    """:func:`slot_overhead` for the pools of :data:`POOLS`, as table rows."""
    rows = []
    for label, nslabs, nareas, how in POOLS:
        o = slot_overhead(nslabs, nareas, how)
        rows.append((label, nslabs, o["slot_array_bytes"], o["slot_array_allocated"], nareas,
                     o["area_array_bytes"], o["overhead_pct"]))
    return rows


ZONE_DMA_BITS_X86 = 24


def zone_choice(phys_limit: int, zone_dma_limit: int, rule: str) -> str:
    """The zone modifier ``swiotlb_alloc_tlb()`` first asks for a grown pool whose device
    reaches ``phys_limit``: ``"GFP_DMA"``, ``"GFP_DMA32"`` or ``"none"``.

    ``rule="6.11"``: ``phys_limit <= DMA_BIT_MASK(zone_dma_bits)``, with ``zone_dma_bits``
    the bits of ``zone_dma_limit`` rounded down, at most 32 on arm64 before 6.12 (the model
    takes ``zone_dma_limit`` as it would be and derives the bits);  ``rule="6.12"``:
    ``phys_limit <= zone_dma_limit`` (ba0fb44aed47).  Both then test ``DMA_BIT_MASK(32)``.
    """
    if rule not in ("6.11", "6.12"):
        raise ValueError(f"rule: expected '6.11' or '6.12', got {rule!r}")
    if rule == "6.12":
        dma_top = zone_dma_limit
    else:
        bits = min((zone_dma_limit + 1).bit_length() - 1, 32)
        dma_top = (1 << bits) - 1
    if phys_limit <= dma_top:
        return "GFP_DMA"
    if phys_limit <= 0xFFFFFFFF:
        return "GFP_DMA32"
    return "none"


#: Machines and devices for :func:`zone_rows`: (machine, zone_dma_limit, device, phys_limit).
#: The arm64 server is an example: RAM starting above 4 GiB and ZONE_DMA up to the smallest
#: ``dma-ranges`` end, here 512 GiB, which 3be9b846896d ("arm64: support DMA zone above 4GB")
#: allows from 6.12.
ZONE_CASES = (
    ("x86_64", (1 << ZONE_DMA_BITS_X86) - 1, "32-bit PCI card", 0xFFFFFFFF),
    ("x86_64", (1 << ZONE_DMA_BITS_X86) - 1, "36-bit device", (1 << 36) - 1),
    ("Raspberry Pi 4 (ZONE_DMA 1 GiB)", GiB - 1, "30-bit (the SoC's DMA window)", GiB - 1),
    ("arm64, RAM above 4 GiB, ZONE_DMA to 512 GiB (example)", (1 << 39) - 1, "40-bit device", (1 << 40) - 1),
    ("arm64, RAM above 4 GiB, ZONE_DMA to 512 GiB (example)", (1 << 39) - 1, "36-bit device", (1 << 36) - 1),
)

ZONE_HEADER = ("machine", "device", "phys_limit", "6.11: zone_dma_bits", "6.12: zone_dma_limit")


def zone_rows() -> list[tuple]:
    """:func:`zone_choice` under both rules for :data:`ZONE_CASES`."""
    return [(m, dev, f"{lim:#x}", zone_choice(lim, zdl, "6.11"), zone_choice(lim, zdl, "6.12"))
            for m, zdl, dev, lim in ZONE_CASES]


for _exp in (
    Experiment("struct-sizes", struct_rows, "fields, offsets and sizeof of io_tlb_slot, io_tlb_area, io_tlb_pool",
               chapter="appendix", seeded=False, lines=lambda r: text_table(STRUCT_HEADER[:5], [x[:5] for x in r]).splitlines()),
    Experiment("slot-overhead", overhead_rows, "slot and area arrays of a 64 MiB, a 1 GiB and grown pools",
               chapter="appendix", seeded=False, lines=lambda r: text_table(OVERHEAD_HEADER, r).splitlines()),
    Experiment("dyn-pool-zone", zone_rows, "the zone a grown pool is asked from, 6.11 vs 6.12 (zone_dma_limit)",
               chapter="appendix", seeded=False, lines=lambda r: text_table(ZONE_HEADER, r).splitlines()),
):
    register(_exp)
