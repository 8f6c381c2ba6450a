"""Every public entry point rejects bad input with an error naming the parameter, and
leaves the allocator (and memory) exactly as it was."""

import numpy as np
import pytest

from swiotlb_lib.boot import Machine
from swiotlb_lib.constants import DMA_BIDIRECTIONAL, DMA_NONE, DMA_TO_DEVICE
from swiotlb_lib.device import DMA_BIT_MASK, Device
from swiotlb_lib.memory import parse_size
from swiotlb_lib.swiotlb import DmaMappingError


def state(m):
    mem = m.swiotlb
    pools = [(p.list.copy(), p.orig_addr.copy(), p.alloc_size.copy(), p.pad_slots.copy(),
              list(p.area_index), list(p.area_used)) for p in mem.pools]
    return (pools, mem.total_used, mem.used_hiwater, dict(mem.live), dict(m.dma.direct),
            {k: bytes(v) for k, v in m.memory.pages.items()})


def same(a, b):
    pa, pb = a[0], b[0]
    assert len(pa) == len(pb)
    for x, y in zip(pa, pb):
        for u, v in zip(x, y):
            if isinstance(u, np.ndarray):
                assert np.array_equal(u, v)
            else:
                assert u == v
    assert a[1:] == b[1:]


@pytest.fixture
def busy():
    m = Machine(ram="2G", cpus=2, cmdline="swiotlb=force", kernel="v6.11")
    dev = m.add_device("virtio-blk")
    m.cpu_write(0x10000000, b"keep me" * 100)
    live = [m.dma.map_single(dev, 0x10000000 + k * 0x1000, 700 + k, DMA_BIDIRECTIONAL) for k in range(5)]
    return m, dev, live


BAD_MAPS = [
    (dict(paddr=-1), "paddr"), (dict(paddr=1 << 64), "paddr"), (dict(paddr="0x10"), "paddr"),
    (dict(size=0), "size"), (dict(size=-5), "size"), (dict(size=1 << 60), "size"),
    (dict(dir=DMA_NONE), "dir"), (dict(dir=7), "dir"), (dict(attrs=1 << 20), "attrs"),
    (dict(cpu=2), "cpu"), (dict(cpu=-1), "cpu"), (dict(paddr=0x7FFFF000, size=0x100000), "paddr"),
]


@pytest.mark.parametrize("kw,name", BAD_MAPS)
def test_bad_map_arguments(busy, kw, name):
    m, dev, _ = busy
    before = state(m)
    args = dict(paddr=0x10000000, size=64, dir=DMA_TO_DEVICE, attrs=0, cpu=0) | kw
    with pytest.raises((ValueError, TypeError)) as e:
        m.dma.map_single(dev, args["paddr"], args["size"], args["dir"], args["attrs"], args["cpu"])
    assert name in str(e.value)
    same(before, state(m))


def test_double_unmap_and_never_mapped(busy):
    m, dev, live = busy
    m.dma.unmap_single(dev, live[0], 700, DMA_BIDIRECTIONAL)
    before = state(m)
    with pytest.raises(ValueError, match="dma_addr"):
        m.dma.unmap_single(dev, live[0], 700, DMA_BIDIRECTIONAL)
    with pytest.raises(ValueError, match="dma_addr"):
        m.dma.unmap_single(dev, live[1] + 0x100, 64, DMA_BIDIRECTIONAL)   # inside, not the start
    with pytest.raises(ValueError, match="dma_addr"):
        m.dma.unmap_single(dev, 0x12345000, 64, DMA_BIDIRECTIONAL)
    other = m.add_device("nvme")
    with pytest.raises(ValueError, match="dma_addr"):
        m.dma.unmap_single(other, live[1], 701, DMA_BIDIRECTIONAL)
    with pytest.raises(ValueError, match="dir"):
        m.dma.unmap_single(dev, live[1], 701, DMA_NONE)
    same(before, state(m))


def test_bad_sync_arguments(busy):
    m, dev, live = busy
    before = state(m)
    with pytest.raises(ValueError, match="tlb_addr"):
        m.dma.sync_single_for_cpu(dev, live[1] + 600, 500, DMA_BIDIRECTIONAL)   # runs past the buffer
    with pytest.raises(ValueError, match="dir"):
        m.dma.sync_single_for_device(dev, live[1], 10, 9)
    with pytest.raises(ValueError, match="size"):
        m.dma.sync_single_for_cpu(dev, live[1], 0, DMA_BIDIRECTIONAL)
    same(before, state(m))


def test_failed_mapping_changes_nothing_but_the_log(busy):
    m, dev, _ = busy
    before = state(m)
    with pytest.raises(DmaMappingError) as e:
        m.dma.map_single(dev, 0x20000000, 300 * 1024, DMA_TO_DEVICE)
    assert e.value.cause == "too_big" and e.value.dma_addr == (1 << 64) - 1
    same(before, state(m))


def test_failed_sg_map_unwinds(busy):
    m, dev, _ = busy
    before = state(m)
    sgl = [(0x20000000, 4096), (0x20001000, 8192), (0x20010000, 512 * 1024)]
    with pytest.raises(DmaMappingError):
        m.dma.map_sg(dev, sgl, DMA_TO_DEVICE)
    after = state(m)
    # the slots are all back and nothing mapped before was touched; only the areas' search
    # index moved on, as it does in the kernel (release never resets it)
    for p_before, p_after in zip(before[0], after[0]):
        for u, v in zip(p_before[:4], p_after[:4]):
            assert np.array_equal(u, v)
        assert p_before[5] == p_after[5]
    assert (before[1], before[3], before[4]) == (after[1], after[3], after[4])
    assert after[2] > before[2]           # the high-water mark did see the partial map


@pytest.mark.parametrize("kw,name", [
    (dict(dma_mask=0), "dma_mask"), (dict(dma_mask=0x12345), "dma_mask"), (dict(dma_mask=1 << 64), "dma_mask"),
    (dict(min_align_mask=0x1000), "min_align_mask"), (dict(min_align_mask=(1 << 33) - 1), "min_align_mask"),
    (dict(seg_boundary_mask=0x1234), "seg_boundary_mask"), (dict(bus_dma_limit=-1), "bus_dma_limit"),
    (dict(max_seg_size=0), "max_seg_size"), (dict(name=""), "name"),
])
def test_bad_devices(kw, name):
    args = dict(name="d") | kw
    with pytest.raises((ValueError, TypeError)) as e:
        Device(**args)
    assert name in str(e.value)


@pytest.mark.parametrize("kw,name", [
    (dict(ram="0"), "ram"), (dict(ram="12Q"), "ram"), (dict(ram="1K"), "ram"), (dict(cpus=0), "cpus"),
    (dict(cpus=9000), "cpus"), (dict(arch="riscv"), "arch"), (dict(kernel="v5.0"), "kernel"),
    (dict(cmdline=5), "cmdline"), (dict(arch="arm64-rpi4", mem_encrypt=True), "mem_encrypt"),
    (dict(cmdline="swiotlb=1,100000"), "cmdline"),
])
def test_bad_machines(kw, name):
    with pytest.raises((ValueError, TypeError)) as e:
        Machine(**kw)
    assert name in str(e.value)


def test_unknown_device_and_duplicate(busy):
    m, dev, _ = busy
    with pytest.raises(ValueError, match="dev"):
        m.device("nope")
    with pytest.raises(ValueError, match="name"):
        m.add_device("virtio-blk")
    with pytest.raises(ValueError, match="kind"):
        m.add_device("floppy")


def test_dma_bit_mask():
    assert DMA_BIT_MASK(32) == 0xFFFFFFFF and DMA_BIT_MASK(64) == (1 << 64) - 1
    for n in (0, 65, 3.5):
        with pytest.raises(ValueError, match="n"):
            DMA_BIT_MASK(n)


def test_parse_size():
    assert parse_size("2G") == 2 << 30 and parse_size("512M") == 512 << 20 and parse_size("1T") == 1 << 40
    with pytest.raises(ValueError, match="ram"):
        parse_size("-2G", "ram")


def test_hiwater_write_rejects_nonzero(busy):
    m, _, _ = busy
    with pytest.raises(ValueError, match="value"):
        m.swiotlb.reset_hiwater(5)
    m.swiotlb.reset_hiwater(0)
    assert m.debugfs()["io_tlb_used_hiwater"] == 0
