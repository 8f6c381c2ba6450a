"""dma-iommu's sub-granule bouncing through SWIOTLB: what decides it and what it asks.

A device behind an IOMMU is mapped a whole IOMMU granule at a time.  When the buffer does
not start and end on granule boundaries, the rest of the first and last granule (other
kernel data) would become visible to the device as well.  For an *untrusted* device
(``pci_dev->untrusted``: external Thunderbolt/USB4 ports) ``dma-iommu`` therefore copies
such a buffer into a SWIOTLB bounce buffer that owns its granules whole, and zeroes the
padding around it.

Modelled from ``drivers/iommu/dma-iommu.c@afd81d914f6f`` (6.11-rc1):

* ``dev_is_untrusted()`` / ``dev_use_swiotlb()``: untrusted, or a kmalloc buffer that a
  non-coherent device cannot map safely (``dma_kmalloc_needs_bounce()``, a parameter here);
* ``iommu_dma_map_page()``: bounce when ``dev_use_swiotlb()`` and
  ``iova_offset(iovad, phys | size)`` is not 0; call ``swiotlb_tbl_map_single(dev, phys,
  size, iova_mask(iovad), dir, attrs)``; for an untrusted device zero the pre-padding
  (from ``iova_align_down(virt)`` to the buffer) and the post-padding (from the buffer's
  end to ``iova_align()`` of it).

A later change (release not established: read in linux-next) moved the same steps into
``iommu_dma_map_swiotlb()`` (Christoph Hellwig, "iommu/dma:
Factor out a iommu_dma_map_swiotlb helper",
bff462aa256da76ff11439f58c7f9e1e376d7f2d.1744825142.git.leon@kernel.org) and named the
test ``iova_unaligned()``; read at ``ColinIanKing/linux-next
drivers/iommu/dma-iommu.c@01cfe5417a83``.  The arithmetic is unchanged, so one model
serves both.

The size and alignment SWIOTLB then allocates are its own (``swiotlb_tbl_map_single()``
at ``kernel/dma/swiotlb.c@afd81d914f6f``): ``offset = orig & min_align_mask &
(alloc_align_mask | 2047)``, ``size = ALIGN(mapping_size + offset, alloc_align_mask + 1)``,
``offset >> 11`` padding slots in front.  Only the v6.11 profile has that arithmetic
(``pad_slots``, af133562d5af); the model refuses other profiles.

Out of scope, and said where it matters: the IOMMU's page tables and IOVA allocator
(``__iommu_dma_map()``), the IOTLB flush queue, scatterlists, and the non-coherent
``dma_kmalloc_needs_bounce()`` rule itself.
"""
from __future__ import annotations

from dataclasses import dataclass

from .constants import IO_TLB_SHIFT, IO_TLB_SIZE, PAGE_SIZE, U64
from .swiotlb import DmaMappingError, IoTlbMem

#: IOMMU granules the model accepts (the smallest page size of ``pgsize_bitmap``).
GRANULES = (4096, 16384, 65536)


def _check_granule(granule) -> int:
    if type(granule) is not int or granule not in GRANULES:
        raise ValueError(f"granule: must be one of {', '.join(map(str, GRANULES))} bytes, got {granule!r}")
    return granule


def iova_mask(granule: int) -> int:
    """``iova_mask()`` (``include/linux/iova.h``): ``granule - 1``."""
    return _check_granule(granule) - 1


def iova_offset(granule: int, x: int) -> int:
    """``iova_offset()``: the bits of ``x`` below the granule."""
    return x & iova_mask(granule)


def iova_align(granule: int, x: int) -> int:
    """``iova_align()``: ``x`` rounded up to the granule."""
    m = iova_mask(granule)
    return (x + m) & ~m


def iova_align_down(granule: int, x: int) -> int:
    """``iova_align_down()``: ``x`` rounded down to the granule."""
    return x & ~iova_mask(granule)


def iova_unaligned(granule: int, phys: int, size: int) -> int:
    """``iova_unaligned()`` (linux-next @01cfe5417a83): ``iova_offset(phys | size)``, non-zero when the buffer
    does not start or does not end on a granule boundary (6.11 writes the same test inline
    in ``iommu_dma_map_page()``)."""
    return iova_offset(granule, phys | size)


def dev_use_swiotlb(untrusted: bool, kmalloc_needs_bounce: bool = False) -> bool:
    """``dev_use_swiotlb()`` with ``CONFIG_SWIOTLB=y``: ``dev_is_untrusted(dev) ||
    dma_kmalloc_needs_bounce(dev, size, dir)``.  The second test (a small kmalloc buffer
    on a non-coherent device) is taken as given here, not modelled."""
    return bool(untrusted) or bool(kmalloc_needs_bounce)


@dataclass(frozen=True)
class BounceDecision:
    """What ``iommu_dma_map_page()`` (6.11) / ``iommu_dma_map_swiotlb()`` (linux-next @01cfe5417a83) decide for
    one buffer, and what ``swiotlb_tbl_map_single()`` (v6.11) makes of the request."""

    granule: int
    phys: int
    size: int
    min_align_mask: int
    untrusted: bool
    #: ``dev_use_swiotlb() && iova_unaligned()``
    bounce: bool
    #: why, in one line
    reason: str
    #: ``iova_mask(iovad)`` passed as ``alloc_align_mask`` (0 when no bounce)
    alloc_align_mask: int = 0
    #: ``swiotlb_align_offset(dev, alloc_align_mask, phys)``
    offset: int = 0
    #: ``ALIGN(size + offset, alloc_align_mask + 1)``: bytes of slots allocated
    alloc_size: int = 0
    #: ``nr_slots(alloc_size)``
    nslots: int = 0
    #: ``offset >> IO_TLB_SHIFT``: padding slots in front of the data (6.9+)
    pad_slots: int = 0
    #: ``offset & (IO_TLB_SIZE - 1)``: where the data starts in its first slot
    tlb_offset: int = 0
    #: bytes dma-iommu zeroes before and after the data (untrusted devices only)
    pre_zero: int = 0
    post_zero: int = 0
    #: ``alloc_align_mask > ~PAGE_MASK``: swiotlb warns once that the largest mappings may fail
    warns_align: bool = False


def decide(granule: int, phys: int, size: int, *, untrusted: bool = True, min_align_mask: int = 0,
           kmalloc_needs_bounce: bool = False) -> BounceDecision:
    """The bounce decision and the SWIOTLB request for one ``dma_map_page()`` through
    dma-iommu (see the module docstring for the sources).  Pure arithmetic: no pool.

    The zeroed padding is computed as the kernel computes it, from the bounce buffer's
    address, which is ``tlb_offset`` bytes into a granule-aligned slot run (the slots are
    ``alloc_align_mask``-aligned): ``pre_zero = tlb_offset + pad_slots * 2048`` and
    ``post_zero = iova_align(end) - end`` for ``end = tlb_offset' + size``.
    """
    _check_granule(granule)
    if type(phys) is not int or not 0 <= phys < U64:
        raise ValueError(f"phys: must be a physical address in 0..2**64-1, got {phys!r}")
    if type(size) is not int or not 0 < size <= 1 << 30:
        raise ValueError(f"size: must be an integer in 1..2**30 bytes, got {size!r}")
    if type(min_align_mask) is not int or min_align_mask & (min_align_mask + 1) or not 0 <= min_align_mask <= 0xFFFFFFFF:
        raise ValueError(f"min_align_mask: must be 2**n - 1 (32 bits), got {min_align_mask!r}")
    use = dev_use_swiotlb(untrusted, kmalloc_needs_bounce)
    unaligned = iova_unaligned(granule, phys, size)
    common = dict(granule=granule, phys=phys, size=size, min_align_mask=min_align_mask, untrusted=untrusted)
    if not use:
        return BounceDecision(**common, bounce=False,
                              reason="trusted device: the IOMMU maps the buffer's granules in place")
    if not unaligned:
        return BounceDecision(**common, bounce=False,
                              reason=f"phys and size are multiples of the {granule // 1024} KiB granule: "
                                     "nothing else shares those granules")
    mask = iova_mask(granule)
    offset = phys & min_align_mask & (mask | (IO_TLB_SIZE - 1))       # swiotlb_align_offset()
    alloc_size = -(-(size + offset) // (mask + 1)) * (mask + 1)        # ALIGN(size + offset, mask + 1)
    pad = offset >> IO_TLB_SHIFT
    tlb_off = offset & (IO_TLB_SIZE - 1)
    start = (pad << IO_TLB_SHIFT) + tlb_off     # bounce address, relative to the granule-aligned run
    end = start + size
    pre = (start - iova_align_down(granule, start)) if untrusted else 0
    post = (iova_align(granule, end) - end) if untrusted else 0
    return BounceDecision(**common, bounce=True,
                          reason=f"untrusted device and iova_offset(phys | size) = {unaligned:#x}: "
                                 "bounce through swiotlb" if untrusted else
                                 f"kmalloc buffer on a non-coherent device, unaligned by {unaligned:#x}",
                          alloc_align_mask=mask, offset=offset, alloc_size=alloc_size,
                          nslots=alloc_size >> IO_TLB_SHIFT, pad_slots=pad, tlb_offset=tlb_off,
                          pre_zero=pre, post_zero=post, warns_align=mask > PAGE_SIZE - 1)


@dataclass(frozen=True)
class IommuMapping:
    """One mapping made by :func:`iommu_dma_map_page`: the decision, and where it landed."""

    decision: BounceDecision
    #: the physical address handed to the IOMMU (the bounce buffer, or ``phys`` unchanged)
    phys: int
    #: first allocated slot (padding included) and the slot holding the data; -1 without bounce
    first_slot: int = -1
    data_slot: int = -1


def iommu_dma_map_page(mem: IoTlbMem, dev, phys: int, size: int, granule: int, *, untrusted: bool = True,
                       dir: int = 0, attrs: int = 0, cpu: int = 0) -> IommuMapping:
    """``iommu_dma_map_page()`` (6.11) / ``iommu_dma_map_swiotlb()`` (linux-next @01cfe5417a83) on the model's
    allocator ``mem``, up to the IOMMU mapping (not modelled): decide; if bouncing, check
    ``is_swiotlb_active()``, call ``swiotlb_tbl_map_single()`` with
    ``alloc_align_mask = iova_mask(iovad)`` and, for an untrusted device, zero the pre- and
    post-padding in the model's memory.  Raises
    :class:`~swiotlb_lib.swiotlb.DmaMappingError` where the kernel returns
    ``DMA_MAPPING_ERROR``.  Only the ``v6.11`` profile (see the module docstring)."""
    if not mem.profile.pad_slots:
        raise ValueError(f"kernel: dma-iommu's swiotlb path is modelled on v6.11 only, got {mem.profile.name!r}")
    d = decide(granule, phys, size, untrusted=untrusted, min_align_mask=dev.min_align_mask)
    if not d.bounce:
        return IommuMapping(d, phys)
    if not mem.nslabs:
        mem.log.once(("iommu-inactive", dev.name), f"{dev.dev_name}: DMA bounce buffers are inactive, "
                     "unable to map unaligned transaction.")
        raise DmaMappingError("no_pool", "DMA bounce buffers are inactive")
    tlb = mem.tbl_map_single(dev, phys, size, alloc_align_mask=d.alloc_align_mask, dir=dir, attrs=attrs, cpu=cpu)
    if untrusted:
        mem.memory.fill(iova_align_down(granule, tlb), tlb - iova_align_down(granule, tlb), 0)
        end = tlb + size
        mem.memory.fill(end, iova_align(granule, end) - end, 0)
    buf = mem.live[tlb]
    return IommuMapping(d, tlb, first_slot=buf.first_slot, data_slot=(tlb - buf.pool.start) >> IO_TLB_SHIFT)
