"""``swiotlb=`` parsing and boot sizing (setup_io_tlb_npages, swiotlb_adjust_nareas,
round_up_default_nslabs, swiotlb_adjust_size; kernel/dma/swiotlb.c @afd81d914f6f and
@7c3940bf81e5), and the confidential-guest 6 % rule (``arch/x86/mm/mem_encrypt.c: mem_encrypt_setup_arch()``, moved there by 20231010145220.3960055-2-alexander.shishkin@linux.intel.com)."""
import pytest

from swiotlb_lib.boot import Machine
from swiotlb_lib.cmdline import SwiotlbSetup, parse_swiotlb, simple_strtoul, split_cmdline
from clirun import cli


@pytest.mark.parametrize("value,nslabs,nareas,force,noforce", [
    ("force", 32768, 0, True, False),
    ("noforce", 32768, 0, False, True),
    ("1000", 1024, 0, False, False),          # rounded up to a multiple of 128
    ("1024,force", 1024, 0, True, False),
    ("0x400", 1024, 0, False, False),         # simple_strtoul base 0: hex
    ("0400", 256, 0, False, False),           # ... and octal (0400 = 256)
    (",4,force", 32768, 4, True, False),
    ("512,3", 512, 4, False, False),          # areas round up to a power of two
    ("512,8", 1024, 8, False, False),         # at least 128 slots per area: size grows
    ("1000,2,force", 1024, 2, True, False),
    ("100000,0", 131072, 1, False, False),    # 0 areas means 1; size to a power of two
    ("1000,forc", 1024, 0, False, False),     # silently ignored by the kernel
    ("force,1000", 32768, 0, False, False),   # numbers must come first
])
def test_setup_io_tlb_npages(value, nslabs, nareas, force, noforce):
    st = parse_swiotlb(value)
    assert (st.default_nslabs, st.default_nareas, st.force_bounce, st.force_disable) == \
        (nslabs, nareas, force, noforce)


def test_ignored_text_is_reported_outside_the_log():
    st = parse_swiotlb("1000,forc")
    assert not any("forc" in l for l in st.log.lines)
    assert any("'forc' ignored" in w for w in st.warnings)
    assert any("rounded up to 1024" in w for w in st.warnings)


def test_area_line_and_roundup_message():
    st = parse_swiotlb("512,8")
    assert st.log.lines == ["software IO TLB: area num 8.",
                            "software IO TLB: SWIOTLB bounce buffer size roundup to 2MB"]


def test_later_parameter_wins_and_adds():
    st = SwiotlbSetup().parse('console=ttyS0 swiotlb=2048 quiet swiotlb=,2,force "x=a b"')
    assert (st.default_nslabs, st.default_nareas, st.force_bounce) == (2048, 2, True)
    assert split_cmdline('a="b c" d') == [("a", "b c"), ("d", None)]


def test_simple_strtoul():
    assert simple_strtoul("0x1fz") == (31, "z")
    assert simple_strtoul("019") == (1, "9")
    assert simple_strtoul("12,4") == (12, ",4")


# mem_encrypt_setup_arch(): 6 % of RAM clamped to [64 MiB, 1 GiB], printed "adjusted to", then the area
# rounding of swiotlb_init_remap (8 CPUs) to a power of two.
@pytest.mark.parametrize("ram,adjusted,final_mib", [
    ("1G", 64, 64), ("2G", 122, 128), ("4G", 245, 256), ("8G", 491, 512), ("16G", 983, 1024),
    ("17G", 1024, 1024), ("1T", 1024, 1024)])
def test_coco_six_percent(ram, adjusted, final_mib):
    m = Machine(ram=ram, cpus=8, mem_encrypt=True)
    assert f"software IO TLB: SWIOTLB bounce buffer size adjusted to {adjusted}MB" in m.log.lines
    assert m.swiotlb.nslabs << 11 == final_mib << 20
    assert m.swiotlb.force_bounce
    assert any("mapped [mem" in l for l in m.swiotlb_lines())


def test_coco_ignores_size_if_user_gave_one():
    m = Machine(ram="8G", cpus=8, mem_encrypt=True, cmdline="swiotlb=4096")
    assert not any("adjusted to" in l for l in m.log.lines)
    assert m.swiotlb.nslabs == 4096


def test_coco_first_map_warns_once():
    m = Machine(ram="2G", cpus=2, mem_encrypt=True)
    dev = m.add_device("virtio-coco")
    for _ in range(3):
        m.dma.unmap_single(dev, m.dma.map_single(dev, 0x1000000, 64, 1), 64, 1)
    msg = "software IO TLB: Memory encryption is active and system is using DMA bounce buffers"
    assert m.log.lines.count(msg) == 1


def test_areas_default_to_cpus_rounded_up():
    assert Machine(ram="6G", cpus=6).swiotlb.defpool.nareas == 8
    assert Machine(ram="6G", cpus=1).swiotlb.defpool.nareas == 1
    m = Machine(ram="6G", cpus=48)
    assert m.swiotlb.defpool.nareas == 64 and m.swiotlb.defpool.area_nslabs == 512


def test_limit_nareas_from_v6_6():
    # "swiotlb=,16 swiotlb=512": the areas are set (and the size checked) first, then the
    # size drops to 512 slots without another check.  v6.3 keeps 16 areas of 32 slots;
    # 6.6+ limit_nareas() allows one area per 128 slots.
    m = Machine(ram="6G", cpus=2, cmdline="swiotlb=,16 swiotlb=512", kernel="v6.3")
    assert (m.swiotlb.defpool.nslabs, m.swiotlb.defpool.nareas) == (512, 16)
    m = Machine(ram="6G", cpus=2, cmdline="swiotlb=,16 swiotlb=512", kernel="v6.11")
    assert (m.swiotlb.defpool.nslabs, m.swiotlb.defpool.nareas) == (512, 4)


def test_noforce_with_high_memory_prints_no_low_mem():
    m = Machine(ram="6G", cpus=2, cmdline="swiotlb=noforce")
    assert m.swiotlb_lines() == ["Command line: swiotlb=noforce", "Kernel command line: swiotlb=noforce",
                                 "PCI-DMA: Using software bounce buffering for IO (SWIOTLB)",
                                 "software IO TLB: No low mem"]
    assert m.debugfs() == {}


def test_rpi4_boot_is_verbose_and_below_1g():
    m = Machine(ram="4G", cpus=4, arch="arm64-rpi4")
    line = [l for l in m.log.lines if "mapped [mem" in l]
    assert len(line) == 1 and m.swiotlb.defpool.end <= 1 << 30


def test_boot_cli_arguments_errors():
    # in-process through swiotlb_lib.cli.main (tests/clirun.py); the boot command runs as a
    # subprocess in tests/test_cli_bad_input.py
    rc, _, err = cli("boot", "--cpus", "0")
    assert rc == 2 and "cpus" in err
    rc, _, err = cli("boot", "--ram", "2G", "--cmdline", "swiotlb=1000,forc")
    assert rc == 0 and "'forc' ignored" in err
