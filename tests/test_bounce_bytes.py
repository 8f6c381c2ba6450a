"""Real bytes through bounce buffers: direction and sync semantics (``kernel/dma/swiotlb.c@7c3940bf81e5`` and ``@afd81d914f6f``: ``swiotlb_tbl_map_single()``, ``swiotlb_sync_single_for_device/cpu()``, ``swiotlb_tbl_unmap_single()``; ``kernel/dma/direct.h@07410559f383``; all profiles).

Sources: swiotlb_tbl_map_single always copies the original into the bounce buffer
(901c7280ca0d, CVE-2022-0854 fix); sync_for_device copies for TO_DEVICE/BIDIRECTIONAL;
sync_for_cpu and unmap copy back for FROM_DEVICE/BIDIRECTIONAL, exactly once in the
dma-direct path (kernel/dma/direct.h @07410559f383)."""
import pytest

from swiotlb_lib.boot import Machine
from swiotlb_lib.constants import (DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, DMA_FROM_DEVICE,
                                   DMA_TO_DEVICE)

PROFILES = ["v6.3rc", "v6.3", "v6.6", "v6.11"]
BUF = 0x10000000 + 0x345


def forced(profile):
    m = Machine(ram="2G", cpus=2, cmdline="swiotlb=force", kernel=profile)
    return m, m.add_device("virtio-blk")


@pytest.mark.parametrize("profile", PROFILES)
def test_map_copies_original_even_from_device(profile):
    m, dev = forced(profile)
    m.cpu_write(BUF, b"secret-original!")
    dma = m.dma.map_single(dev, BUF, 16, DMA_FROM_DEVICE)
    assert dma != BUF and m.swiotlb.is_swiotlb_buffer(dev, dma)
    # the device sees the original bytes, not stale pool contents
    assert m.device_read(dev, dma, 16) == b"secret-original!"


@pytest.mark.parametrize("profile", PROFILES)
def test_device_write_reaches_cpu_only_after_sync_or_unmap(profile):
    m, dev = forced(profile)
    m.cpu_write(BUF, b"A" * 64)
    dma = m.dma.map_single(dev, BUF, 64, DMA_FROM_DEVICE)
    m.device_write(dev, dma, b"B" * 64)
    assert m.cpu_read(BUF, 64) == b"A" * 64            # no sync yet: CPU sees old data
    m.dma.sync_single_for_cpu(dev, dma, 64, DMA_FROM_DEVICE)
    assert m.cpu_read(BUF, 64) == b"B" * 64
    m.device_write(dev, dma, b"C" * 64)
    m.dma.unmap_single(dev, dma, 64, DMA_FROM_DEVICE)
    assert m.cpu_read(BUF, 64) == b"C" * 64


@pytest.mark.parametrize("profile", PROFILES)
def test_to_device_never_copies_back(profile):
    m, dev = forced(profile)
    m.cpu_write(BUF, b"x" * 32)
    dma = m.dma.map_single(dev, BUF, 32, DMA_TO_DEVICE)
    m.device_write(dev, dma, b"y" * 32)
    m.dma.sync_single_for_cpu(dev, dma, 32, DMA_TO_DEVICE)
    m.dma.unmap_single(dev, dma, 32, DMA_TO_DEVICE)
    assert m.cpu_read(BUF, 32) == b"x" * 32


@pytest.mark.parametrize("profile", PROFILES)
def test_sync_for_device_refreshes_only_to_device_and_bidi(profile):
    m, dev = forced(profile)
    m.cpu_write(BUF, b"1" * 8)
    for d, refreshed in ((DMA_TO_DEVICE, True), (DMA_BIDIRECTIONAL, True), (DMA_FROM_DEVICE, False)):
        dma = m.dma.map_single(dev, BUF, 8, d)
        m.cpu_write(BUF, b"2" * 8)
        m.dma.sync_single_for_device(dev, dma, 8, d)
        assert m.device_read(dev, dma, 8) == (b"2" * 8 if refreshed else b"1" * 8)
        m.dma.unmap_single(dev, dma, 8, d, DMA_ATTR_SKIP_CPU_SYNC)
        m.cpu_write(BUF, b"1" * 8)


@pytest.mark.parametrize("profile", PROFILES)
def test_skip_cpu_sync_unmap_loses_device_data(profile):
    m, dev = forced(profile)
    m.cpu_write(BUF, b"a" * 16)
    dma = m.dma.map_single(dev, BUF, 16, DMA_BIDIRECTIONAL)
    m.device_write(dev, dma, b"b" * 16)
    m.dma.unmap_single(dev, dma, 16, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
    assert m.cpu_read(BUF, 16) == b"a" * 16


def test_min_align_offset_preserved_and_partial_sync():
    m = Machine(ram="2G", cpus=1, cmdline="swiotlb=force", kernel="v6.11")
    dev = m.add_device("nvme")
    orig = 0x20000000 + 0x9A4
    data = bytes(range(256)) * 24
    m.cpu_write(orig, data)
    dma = m.dma.map_single(dev, orig, len(data), DMA_FROM_DEVICE)
    assert dma & 0xFFF == orig & 0xFFF                    # min_align_mask 0xfff kept
    m.device_write(dev, dma + 3000, b"Z" * 100)           # into the 2nd slot of the buffer
    m.dma.sync_single_for_cpu(dev, dma + 3000, 100, DMA_FROM_DEVICE)
    assert m.cpu_read(orig + 3000, 100) == b"Z" * 100
    assert m.cpu_read(orig, 3000) == data[:3000]


def test_direct_mapping_when_capable_and_not_forced():
    m = Machine(ram="6G", cpus=2, kernel="v6.11")
    dev = m.add_device("virtio-blk")
    pci = m.add_device("pci32")
    low, high = 0x10000000, 0x150000000
    assert m.dma.map_single(dev, high, 4096, DMA_TO_DEVICE) == high     # 64-bit: direct
    m.cpu_write(high, b"hi")
    dma = m.dma.map_single(pci, high, 4096, DMA_TO_DEVICE)             # 32-bit: bounces
    assert dma < (1 << 32) and m.device_read(pci, dma, 2) == b"hi"
    assert m.dma.map_single(pci, low, 4096, DMA_TO_DEVICE) == low


@pytest.mark.parametrize("profile,copied", [("v6.3", False), ("v6.6", False), ("v6.11", True)])
def test_partial_sync_in_later_slot_before_offset(profile, copied):
    # e8068f2d756d (6.9) "swiotlb: fix swiotlb_bounce() to do partial syncs correctly": with
    # a min_align offset o, a sync starting in the 2nd slot at an in-slot offset < o was
    # refused ("Access before mapping start detected") by older kernels.
    m = Machine(ram="2G", cpus=1, cmdline="swiotlb=force", kernel=profile)
    dev = m.add_device("nvme")
    orig = 0x20000000 + 0x600                      # offset 0x600 in its slot
    m.cpu_write(orig, bytes(4096))
    dma = m.dma.map_single(dev, orig, 4096, DMA_FROM_DEVICE)
    target = ((dma >> 11) + 1 << 11) + 0x100       # 2nd slot, in-slot offset 0x100 < 0x600
    m.device_write(dev, target, b"Q" * 16)
    m.dma.sync_single_for_cpu(dev, target, 16, DMA_FROM_DEVICE)
    assert (m.cpu_read(orig + (target - dma), 16) == b"Q" * 16) == copied
    assert any("Access before mapping start detected" in l for l in m.log.lines) != copied


def test_sg_for_device_splits_at_runs_and_the_mapping_limit():
    """The block-layer helper: segments end where physical runs end and are at most
    min(max_seg_size, dma_max_mapping_size) long (256 KiB under swiotlb=force, 64 KiB for a
    device without dma_parms, 252 KiB for NVMe's min_align_mask 0xfff)."""
    from swiotlb_lib.device import Device
    from swiotlb_lib.direct import sg_for_device
    m = Machine(ram="2G", cpus=1, cmdline="swiotlb=force")
    blk, nv, plain = m.add_device("virtio-blk"), m.add_device("nvme"), m.add_device(Device("plain"))
    KiB = 1024
    assert sg_for_device(blk, 0x1000000, 600 * KiB) == [(0x1000000, 256 * KiB), (0x1040000, 256 * KiB),
                                                        (0x1080000, 88 * KiB)]
    assert [n for _, n in sg_for_device(nv, 0x1000000, 600 * KiB)] == [252 * KiB, 252 * KiB, 96 * KiB]
    assert [n for _, n in sg_for_device(plain, 0x1000000, 150 * KiB)] == [64 * KiB, 64 * KiB, 22 * KiB]
    runs = [(0x1000000, 8 * KiB), (0x3000000, 300 * KiB)]
    assert sg_for_device(blk, 0, 308 * KiB, runs) == [(0x1000000, 8 * KiB), (0x3000000, 256 * KiB),
                                                      (0x3040000, 44 * KiB)]
    # and the list maps and unmaps through the streaming API, entry by entry
    mapped = m.dma.map_sg(blk, sg_for_device(blk, 0, 308 * KiB, runs), DMA_TO_DEVICE)
    assert [n for _, n in mapped] == [8 * KiB, 256 * KiB, 44 * KiB]
    assert m.swiotlb.mem_used() == (8 + 256 + 44) * KiB // 2048
    m.dma.unmap_sg(blk, mapped, DMA_TO_DEVICE)
    assert m.swiotlb.mem_used() == 0
