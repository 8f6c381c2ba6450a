"""Restricted DMA pools (swiotlb_lib.restricted), hand-worked from
kernel/dma/swiotlb.c@afd81d914f6f: swiotlb_alloc(), rmem_swiotlb_device_init()."""
import pytest

from swiotlb_lib.device import Device
from swiotlb_lib.gfp import get_order
from swiotlb_lib.restricted import rmem_swiotlb_device_init, swiotlb_alloc, swiotlb_free


def test_alloc_aligns_to_its_order_and_frees():
    mem = rmem_swiotlb_device_init(0x1000000, 1 << 20)
    assert (mem.defpool.nslabs, mem.defpool.nareas, mem.for_alloc, mem.force_bounce) == (512, 1, True, True)
    dev = Device("wifi")
    dev.dma_io_tlb_mem = mem
    # 4 KiB: order 0, slots 0-1.  12 KiB: get_order = 2 -> 16 KiB alignment; slot 2 (0x1001000)
    # is not 16 KiB-aligned, the first aligned free slot is 8 (0x1004000); 6 slots.
    a = swiotlb_alloc(mem, dev, 4096)
    b = swiotlb_alloc(mem, dev, 12288)
    assert (a, b) == (0x1000000, 0x1004000) and get_order(12288) == 2
    assert mem.mem_used() == 8
    assert swiotlb_free(mem, dev, b) == 6 and swiotlb_free(mem, dev, a) == 2
    assert mem.mem_used() == 0


def test_full_pool_returns_none_and_bad_input():
    mem = rmem_swiotlb_device_init(0x1000000, 64 * 1024)      # 32 slots
    dev = Device("d")
    dev.dma_io_tlb_mem = mem
    assert swiotlb_alloc(mem, dev, 65536) == 0x1000000
    assert swiotlb_alloc(mem, dev, 4096) is None
    with pytest.raises(ValueError, match="base"):
        rmem_swiotlb_device_init(0x1000800, 1 << 20)
    with pytest.raises(ValueError, match="tlb_addr"):
        swiotlb_free(mem, dev, 0)
