"""Restricted DMA pools: a per-device ``io_tlb_mem`` that serves both streaming and
coherent DMA.

A device-tree ``reserved-memory`` node compatible with ``"restricted-dma-pool"`` gives
one or more devices a private bounce pool; the device may then reach only that memory.
Modelled from ``kernel/dma/swiotlb.c@afd81d914f6f`` (6.11-rc1, ``CONFIG_DMA_RESTRICTED_POOL``):

* ``rmem_swiotlb_device_init()``: the first device creates an ``io_tlb_mem`` whose pool is
  the whole region in **one area**, with ``force_bounce`` and ``for_alloc`` set; later
  devices share it (:func:`rmem_swiotlb_device_init`);
* ``swiotlb_alloc()``: what ``dma_direct_alloc()`` calls instead of the page allocator when
  ``is_swiotlb_for_alloc(dev)`` (``kernel/dma/direct.c: dma_direct_alloc_swiotlb()``): a slot
  search with ``orig_addr = 0`` and ``alloc_align_mask = (1 << (get_order(size) +
  PAGE_SHIFT)) - 1``, so the buffer is aligned to its own power-of-two page order; a result
  that is not page-aligned is released with a warning (:func:`swiotlb_alloc`);
* ``swiotlb_free()``: ``swiotlb_release_slots()`` of the buffer (:func:`swiotlb_free`).

The model's limits: the reserved-memory parsing (``rmem_swiotlb_setup()`` refuses
``reusable``, ``no-map`` and the CMA defaults), ``set_memory_decrypted()`` and the
``dma_coherent_ok()`` re-check are not modelled; the pool lies where the caller says.
"""
from __future__ import annotations

from .constants import IO_TLB_SHIFT, PAGE_SHIFT, PAGE_SIZE
from .gfp import get_order
from .memory import PhysMemory
from .pool import nr_slots, pool_find_slots, release_slots
from .swiotlb import IoTlbMem


def rmem_swiotlb_device_init(base: int, size: int, profile="v6.11", *, name: str = "restricted",
                             memory: PhysMemory | None = None) -> IoTlbMem:
    """The ``io_tlb_mem`` of a restricted pool at ``[base, base + size)``: one pool, one
    area, ``force_bounce`` and ``for_alloc`` (``rmem_swiotlb_device_init()``, the first
    device's branch).  Attach devices by setting their ``dma_io_tlb_mem`` to it."""
    if type(base) is not int or base < 0 or base & (PAGE_SIZE - 1):
        raise ValueError(f"base: must be a page-aligned physical address, got {base!r}")
    if type(size) is not int or size < PAGE_SIZE or size & (PAGE_SIZE - 1):
        raise ValueError(f"size: must be a positive multiple of {PAGE_SIZE} bytes, got {size!r}")
    mem = IoTlbMem(profile, memory=memory, force_bounce=True, for_alloc=True, name=name)
    mem.init_pool(base, size >> IO_TLB_SHIFT, 1)
    return mem


def swiotlb_alloc(mem: IoTlbMem, dev, size: int, cpu: int = 0) -> int | None:
    """``swiotlb_alloc()`` (v6.11): slots for a coherent buffer of ``size`` bytes, aligned to
    ``PAGE_SIZE << get_order(size)``.  Returns the buffer's physical address, or ``None``
    where the kernel returns ``NULL``.  Counts the slots in ``mem.total_used`` as
    ``swiotlb_search_pool_area()`` does (``inc_used_and_hiwater``)."""
    if not mem.for_alloc:
        raise ValueError("mem: swiotlb_alloc() serves restricted pools only (is_swiotlb_for_alloc)")
    pool = mem.defpool
    align = (1 << (get_order(size) + PAGE_SHIFT)) - 1
    index = pool_find_slots(pool, dev, 0, size, align, cpu)
    if index < 0:
        return None
    nslots = nr_slots(size)
    mem.total_used += nslots
    mem.used_hiwater = max(mem.used_hiwater, mem.total_used)
    tlb_addr = pool.start + (index << IO_TLB_SHIFT)
    if tlb_addr & (PAGE_SIZE - 1):
        mem.log.once(("rmem-align", dev.name), f"{dev.dev_name}: Cannot allocate pages from non "
                     f"page-aligned swiotlb addr {tlb_addr:#x}.")
        mem.total_used -= release_slots(pool, tlb_addr, dev.min_align_mask)
        return None
    return tlb_addr


def swiotlb_free(mem: IoTlbMem, dev, tlb_addr: int) -> int:
    """``swiotlb_free()``: release the slots of a buffer from :func:`swiotlb_alloc`.
    Returns the number of slots freed; ``ValueError`` for an address outside the pool."""
    pool = mem.defpool
    if pool is None or not pool.start <= tlb_addr < pool.end:
        raise ValueError(f"tlb_addr: {tlb_addr!r} is not in the restricted pool")
    freed = release_slots(pool, tlb_addr, dev.min_align_mask)
    mem.total_used -= freed
    return freed
