"""dma-iommu's bounce decision and its swiotlb request (swiotlb_lib.iommu), with values
worked by hand from drivers/iommu/dma-iommu.c@afd81d914f6f: iommu_dma_map_page() and
kernel/dma/swiotlb.c@afd81d914f6f: swiotlb_tbl_map_single(), swiotlb_release_slots()."""
import pytest

from swiotlb_lib.device import Device
from swiotlb_lib.iommu import decide, iommu_dma_map_page, iova_align, iova_unaligned
from swiotlb_lib.swiotlb import DmaMappingError, IoTlbMem


def pool(profile="v6.11", nslabs=512):
    mem = IoTlbMem(profile)
    mem.init_pool(0x1000000, nslabs, 1)
    return mem


def test_hand_worked_4k_granule():
    # granule 4 KiB: iova_mask = 0xfff.  iova_offset(0x1234 | 0x100) = 0x1334 & 0xfff = 0x334 != 0
    # -> bounce.  No min_align_mask: swiotlb_align_offset = 0x1234 & 0 & ... = 0, so
    # size = ALIGN(0x100 + 0, 0xfff + 1) = 0x1000 = 4096 bytes = 2 slots, no padding slot.
    # Post-padding zeroed: the buffer ends at 0x100 into its granule: 0x1000 - 0x100 = 3840.
    d = decide(4096, 0x1234, 0x100)
    assert d.bounce and d.alloc_align_mask == 0xFFF and d.alloc_size == 4096
    assert (d.nslots, d.pad_slots, d.tlb_offset, d.pre_zero, d.post_zero) == (2, 0, 0, 0, 3840)


def test_trusted_and_aligned_do_not_bounce():
    assert not decide(4096, 0x1234, 0x100, untrusted=False).bounce
    # 0x3000 | 0x2000 = 0x3000: no bits below 0x1000
    assert not decide(4096, 0x3000, 0x2000).bounce
    assert iova_unaligned(4096, 0x3000, 0x2000) == 0
    assert iova_align(65536, 0x10001) == 0x20000


def test_nvme_offset_needs_a_padding_slot():
    # min_align_mask 0xfff: offset = 0x1a00 & 0xfff & (0xfff | 0x7ff) = 0xa00 = 2560;
    # pad_slots = 0xa00 >> 11 = 1, in-slot offset 0xa00 & 0x7ff = 0x200;
    # size = ALIGN(0x100 + 0xa00, 0x1000) = 0x1000 -> 2 slots.  Zeroed: 0xa00 before,
    # 0x1000 - 0xb00 = 0x500 = 1280 after.
    d = decide(4096, 0x1A00, 0x100, min_align_mask=0xFFF)
    assert (d.offset, d.pad_slots, d.tlb_offset, d.alloc_size) == (0xA00, 1, 0x200, 0x1000)
    assert (d.pre_zero, d.post_zero) == (2560, 1280)


def test_64k_granule_takes_32_slots_and_warns():
    # ALIGN(0x100, 0x10000) = 65536 bytes = 32 slots; 0xffff > PAGE_SIZE - 1: the warning
    d = decide(65536, 0x1234, 0x100)
    assert d.nslots == 32 and d.warns_align


def test_map_on_pool_pads_zeroes_and_unmap_finds_the_padding():
    mem = pool()
    dev = Device("nvme", min_align_mask=0xFFF)
    dev.dma_io_tlb_mem = mem
    mem.memory.fill(0x1000000, 0x1000, 0xAA)            # stale bytes in the first granule
    m = iommu_dma_map_page(mem, dev, 0x1A00, 0x100, 4096)
    # empty pool: first slot 0 (granule-aligned), data in slot 1 at +0x200 -> 0x1000a00
    assert (m.first_slot, m.data_slot, m.phys) == (0, 1, 0x1000A00)
    assert mem.defpool.pad_slots[1] == 1
    assert mem.memory.read(0x1000000, 0xA00) == bytes(0xA00)     # pre-padding zeroed
    # release: index = (0x1000a00 - 0x200 - start) >> 11 = 1, minus pad_slots[1] = 0;
    # nslots = nr_slots(alloc_size[0] + 0x200) = nr_slots(0xe00 + 0x200) = 2
    assert mem.tbl_unmap_single(dev, m.phys, 0x100) == 2
    assert mem.mem_used() == 0


def test_inactive_swiotlb_fails_and_bad_input():
    mem = IoTlbMem("v6.11")
    dev = Device("d")
    dev.dma_io_tlb_mem = mem
    with pytest.raises(DmaMappingError):
        iommu_dma_map_page(mem, dev, 0x1234, 0x100, 4096)
    assert any("DMA bounce buffers are inactive" in ln for ln in mem.log.lines)
    with pytest.raises(ValueError, match="granule"):
        decide(8192, 0, 1)
    with pytest.raises(ValueError, match="kernel"):
        iommu_dma_map_page(pool("v6.6"), dev, 0x1234, 0x100, 4096)
