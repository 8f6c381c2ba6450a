"""dma-direct: the bounce decision and the streaming DMA API on top of SWIOTLB.

Models ``kernel/dma/direct.h`` at 07410559f383 (v6.0-v6.4 form; the later
``dma_direct_map_phys`` differs only in checks the model does not need) and
``kernel/dma/direct.c``: ``dma_capable``, ``dma_direct_map_page``/``unmap_page``,
``dma_direct_sync_single_for_{cpu,device}``, ``dma_direct_map_sg``/``unmap_sg`` and
``dma_direct_max_mapping_size``.  The model's DMA addresses equal physical addresses
(no ``dma_range_map`` offsets, no encryption bit).
"""
from __future__ import annotations

from dataclasses import dataclass

from .constants import DMA_ATTR_SKIP_CPU_SYNC, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, U64
from .checks import DMA_DIRS, MAX_SIZE, UNKNOWN_ATTRS, check_addr, check_attrs, check_dir, check_size
from .swiotlb import DmaMappingError, check_map_args

SIZE_MAX = U64


def dma_capable(dev, addr: int, size: int, is_ram: bool = True) -> bool:
    """``dma_capable()`` (``include/linux/dma-direct.h``, v6.3-rc to v6.11): the last byte must not exceed
    ``min_not_zero(*dev->dma_mask, dev->bus_dma_limit)``; ``DMA_MAPPING_ERROR`` never is."""
    if addr == DMA_MAPPING_ERROR:
        return False
    end = addr + size - 1
    return end <= dev.reach


def is_swiotlb_force_bounce(dev) -> bool:
    """``is_swiotlb_force_bounce()`` (v6.3-rc to v6.11): the device's allocator forces bouncing."""
    mem = dev.dma_io_tlb_mem
    return mem is not None and mem.force_bounce


def is_swiotlb_active(dev) -> bool:
    """``is_swiotlb_active()`` (v6.3-rc to v6.11): the device's allocator has slots."""
    mem = dev.dma_io_tlb_mem
    return mem is not None and mem.nslabs > 0


def dma_max_mapping_size(dev) -> int:
    """``dma_direct_max_mapping_size()`` (v6.3-rc to v6.11): ``swiotlb_max_mapping_size`` when SWIOTLB is
    active and the device is addressing-limited or forced to bounce, else ``SIZE_MAX``."""
    mem = dev.dma_io_tlb_mem
    if is_swiotlb_active(dev) and (is_swiotlb_force_bounce(dev) or dev.reach < U64):
        return mem.max_mapping_size(dev)
    return SIZE_MAX


@dataclass
class Mapping:
    """What ``dma_map_single`` returned: where the device must look, and whether it bounced."""

    dma_addr: int
    size: int
    dir: int
    bounced: bool


class DmaApi:
    """The streaming DMA API of one machine (``dma_map_single`` and friends).

    Keeps the live direct (non-bounced) mappings too, so that unmapping an address that
    was never mapped, or twice, is an error instead of silent corruption.
    """

    def __init__(self, memory, log) -> None:
        self.memory = memory
        self.log = log
        self.direct: dict[tuple[int, int], int] = {}
        self.mapped = 0
        self.bounced = 0

    # -- single ------------------------------------------------------------------
    def map_single(self, dev, paddr: int, size: int, dir: int, attrs: int = 0, cpu: int = 0) -> int:
        """``dma_map_single_attrs`` -> ``dma_direct_map_page`` (v6.3-rc to v6.11): bounce if forced or if the
        buffer is beyond the device's reach (and SWIOTLB is active), else map directly.
        Returns the DMA address; raises :class:`DmaMappingError` on failure."""
        mem = dev.dma_io_tlb_mem
        check_map_args(mem, "paddr", paddr, size, dir, attrs, cpu)
        if mem.force_bounce:
            dma = mem.swiotlb_map_checked_args(dev, paddr, size, dir, attrs, cpu)
            self.bounced += 1
        elif paddr + size - 1 > dev.reach:                  # !dma_capable()
            if mem.nslabs:
                dma = mem.swiotlb_map_checked_args(dev, paddr, size, dir, attrs, cpu)
                self.bounced += 1
            else:
                self.log.once(("DMA addr", dev.name),
                              f"{dev.dev_name}: DMA addr {paddr:#018x}+{size} overflow (mask "
                              f"{dev.dma_mask:x}, bus limit {dev.bus_dma_limit:x}).")
                raise DmaMappingError("out_of_reach", f"{paddr:#x}+{size} is beyond the device's "
                                      "reach and there is no SWIOTLB pool")
        else:
            dma = paddr
            key = (id(dev), dma)
            self.direct[key] = self.direct.get(key, 0) + 1
        self.mapped += 1
        return dma

    def _is_bounce(self, dev, dma_addr: int) -> bool:
        mem = dev.dma_io_tlb_mem
        return mem is not None and mem.is_swiotlb_buffer(dev, dma_addr)

    def unmap_single(self, dev, dma_addr: int, size: int, dir: int, attrs: int = 0) -> None:
        """``dma_direct_unmap_page`` (v6.3-rc to v6.11): sync for the CPU unless ``SKIP_CPU_SYNC``, then
        ``swiotlb_tbl_unmap_single`` with ``SKIP_CPU_SYNC`` added, so the copy back
        happens exactly once."""
        if not (type(dma_addr) is type(size) is type(dir) is type(attrs) is int and 0 <= dma_addr < U64
                and 0 < size <= MAX_SIZE and dir in DMA_DIRS and not attrs & UNKNOWN_ATTRS):
            check_addr("dma_addr", dma_addr)
            check_size("size", size)
            check_dir(dir)
            check_attrs(attrs)
        mem = dev.dma_io_tlb_mem
        if mem is not None and mem.is_swiotlb_buffer(dev, dma_addr):
            buf = mem.live.get(dma_addr)
            if buf is None or buf.dev is not dev:
                buf = mem.lookup(dev, dma_addr, "dma_addr")       # raises, naming dma_addr
            if not attrs & DMA_ATTR_SKIP_CPU_SYNC and dir != DMA_TO_DEVICE:
                if size <= buf.mapping_size:
                    # dma_direct_sync_single_for_cpu -> swiotlb_bounce(FROM_DEVICE) of the
                    # whole buffer from its start: no check can fire, copy directly
                    self.memory.copy_unchecked(buf.orig_addr, dma_addr, size)
                    mem.bytes_copied += size
                else:
                    mem.bounce(dev, dma_addr, size, DMA_FROM_DEVICE, buf.pool)
            mem.unmap_checked_args(dev, buf, size, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC)
            return
        key = (id(dev), dma_addr)
        n = self.direct.get(key, 0)
        if not n:
            raise ValueError(f"dma_addr: {dma_addr:#x} is not mapped for {dev.name} "
                             "(never mapped, or already unmapped)")
        if n == 1:
            del self.direct[key]
        else:
            self.direct[key] = n - 1

    def sync_single_for_cpu(self, dev, dma_addr: int, size: int, dir: int) -> None:
        """``dma_direct_sync_single_for_cpu`` (v6.3-rc to v6.11): copy back from the bounce buffer if any."""
        check_addr("dma_addr", dma_addr)
        if self._is_bounce(dev, dma_addr):
            dev.dma_io_tlb_mem.sync_single_for_cpu(dev, dma_addr, size, dir)
        else:
            check_dir(dir)

    def sync_single_for_device(self, dev, dma_addr: int, size: int, dir: int) -> None:
        """``dma_direct_sync_single_for_device`` (v6.3-rc to v6.11): refresh the bounce buffer if any."""
        check_addr("dma_addr", dma_addr)
        if self._is_bounce(dev, dma_addr):
            dev.dma_io_tlb_mem.sync_single_for_device(dev, dma_addr, size, dir)
        else:
            check_dir(dir)

    # -- scatter-gather ------------------------------------------------------------
    def map_sg(self, dev, sgl, dir: int, attrs: int = 0, cpu: int = 0) -> list:
        """``dma_direct_map_sg`` (v6.3-rc to v6.11): map entry by entry; if one fails, unmap the ones already
        mapped (with ``SKIP_CPU_SYNC``) and raise.  Returns ``[(dma_addr, len), ...]``."""
        check_dir(dir)
        out = []
        try:
            for paddr, length in sgl:
                out.append((self.map_single(dev, paddr, length, dir, attrs, cpu), length))
        except DmaMappingError:
            for dma, length in out:
                self.unmap_single(dev, dma, length, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC)
            raise
        return out

    def unmap_sg(self, dev, mapped, dir: int, attrs: int = 0) -> None:
        """``dma_direct_unmap_sg`` (v6.3-rc to v6.11): unmap every entry."""
        for dma, length in mapped:
            self.unmap_single(dev, dma, length, dir, attrs)


def sg_for_device(dev, paddr: int, length: int, page_runs=None) -> list:
    """The scatter-gather list a block driver builds for ``dev``: segments capped at
    ``min(dma_get_max_seg_size(dev), dma_max_mapping_size(dev))`` (virtio-blk and NVMe
    limit their segment size by ``dma_max_mapping_size``)."""
    return sg_from_buffer(paddr, length, min(dev.max_seg_size, dma_max_mapping_size(dev)), page_runs)


def sg_from_buffer(paddr: int, length: int, max_seg_size: int, page_runs=None) -> list:
    """Build a scatter-gather list for a buffer the way the block layer does: split at
    physically discontiguous page boundaries (``page_runs``: list of ``(paddr, len)``
    runs; default one contiguous run) and at ``max_seg_size``.  Returns ``[(paddr, len)]``."""
    check_size("length", length)
    check_size("max_seg_size", max_seg_size, 1, U64)
    runs = page_runs if page_runs is not None else [(paddr, length)]
    out = []
    for start, n in runs:
        while n > 0:
            k = min(n, max_seg_size)
            out.append((start, k))
            start += k
            n -= k
    return out
