"""dma_map_benchmark on the model: the tool's output, the kernel's statistics, its
failures, and the direction shape.

Formats and messages are those of tools/testing/selftests/dma/dma_map_benchmark.c
(2488655b2f6b) and kernel/dma/map_benchmark.c (02fcfc12fc49), as described in
``kernel/dma/map_benchmark.c`` and ``tools/testing/selftests/dma/dma_map_benchmark.c``
(torvalds/linux@02fcfc12fc49 and @2488655b2f6b).
"""
import argparse
import re

import pytest

from swiotlb_lib.constants import IO_TLB_SHIFT
from swiotlb_lib.cli import benchmark as cli
from swiotlb_lib.perf.map_benchmark import kernel_stats, run_map_benchmark

#: the tool's printf formats, as regular expressions
HEADER = re.compile(r"dma mapping benchmark: threads:(\d+) seconds:(\d+) node:(-?\d+) "
                    r"dir:(BIDIRECTIONAL|TO_DEVICE|FROM_DEVICE) granule: (\d+)")
MAP = re.compile(r"average map latency\(us\):(\d+\.\d) standard deviation:(\d+\.\d)")
UNMAP = re.compile(r"average unmap latency\(us\):(\d+\.\d) standard deviation:(\d+\.\d)")

LOOPS = 600


def _lat(r):
    lines = r.stdout().splitlines()
    return float(MAP.fullmatch(lines[1]).group(1)), float(UNMAP.fullmatch(lines[2]).group(1))


# ------------------------------------------------------------------ output ----------

def test_output_is_exactly_the_tools_three_lines():
    r = run_map_benchmark(threads=2, seconds=10, dma_dir=1, granule=4, max_loops=LOOPS)
    out = r.stdout()
    assert out.endswith("\n") and out.count("\n") == 3
    h, m, u = out.splitlines()
    assert HEADER.fullmatch(h).groups() == ("2", "10", "-1", "TO_DEVICE", "4")
    assert MAP.fullmatch(m) and UNMAP.fullmatch(u)
    assert r.stderr() == "" and r.exit_status == 0 and r.errno is None
    # the printed values are the 100 ns fields divided by 10.0, one decimal
    r.avg_map_100ns, r.map_stddev = 123, 7
    assert r.stdout().splitlines()[1] == "average map latency(us):12.3 standard deviation:0.7"
    assert r.loops == LOOPS and r.capped


@pytest.mark.parametrize("d,name", [(0, "BIDIRECTIONAL"), (1, "TO_DEVICE"), (2, "FROM_DEVICE")])
def test_direction_names(d, name):
    r = run_map_benchmark(dma_dir=d, max_loops=50)
    assert HEADER.fullmatch(r.stdout().splitlines()[0]).group(4) == name


def test_kernel_statistics_integer_arithmetic():
    # sum 10 over 4 loops -> mean 2 (truncated); sum of squares 30 // 4 = 7; 7 - 4 = 3 -> isqrt 1
    assert kernel_stats([1, 2, 3, 4], [5, 5, 5, 5]) == (2, 1, 5, 0)
    # 100 ns units and truncation: 399 ns counts as 3
    assert kernel_stats([399 // 100], [0]) == (3, 0, 0, 0)
    assert kernel_stats([], []) == (0, 0, 0, 0)
    # [7, 9, 12, 30]: sum 58 -> mean 14; squares 1174 // 4 = 293; 293 - 196 = 97 -> isqrt 9
    assert kernel_stats([7, 9, 12, 30], [7, 9, 12, 30]) == (14, 9, 14, 9)


def test_same_seed_same_output():
    a = run_map_benchmark(threads=3, granule=2, max_loops=300, seed=9)
    b = run_map_benchmark(threads=3, granule=2, max_loops=300, seed=9)
    assert a.stdout() == b.stdout()
    assert a.avg_map_100ns == b.avg_map_100ns and a.map_stddev == b.map_stddev


def test_seconds_are_simulated_time():
    # 1 simulated second of ~1 us loops is far more than the loop cap: capped
    r = run_map_benchmark(seconds=1, max_loops=200)
    assert r.capped and r.simulated_ns < 1e9
    # a 10 ms transfer delay: 1 s holds fewer than 100 loops, so time ends the run
    r = run_map_benchmark(seconds=1, dma_trans_ns=10_000_000, max_loops=1000)
    assert not r.capped and 90 <= r.loops <= 101
    assert r.simulated_ns >= 1e9


def test_buffers_filled_with_0x66_unless_from_device():
    """The kthread memsets its buffer to 0x66 before each map unless FROM_DEVICE; map
    always copies the buffer into the bounce slot, so the slot shows which."""
    for d, byte in ((1, 0x66), (0, 0x66), (2, 0x00)):
        r = run_map_benchmark(dma_dir=d, max_loops=20)
        m = r.machine
        pool = m.swiotlb.defpool
        first = 0
        # the one mapper used slots 0, 2, 4, ... of area 0 (4 KiB = 2 slots each)
        assert m.cpu_read(pool.start + (first << IO_TLB_SHIFT), 4096) == bytes([byte]) * 4096
        # a zero buffer over a zeroed pool cannot show a FROM_DEVICE copy; the counter does:
        # every map copied its 4 KiB in (901c7280ca0d), whatever the direction
        assert m.swiotlb.bytes_copied >= r.loops * 4096 * (1 if d == 1 else 2)


# ------------------------------------------------------------------ the size wall ----

def test_granule_above_64_pages_fails_under_swiotlb():
    """kernel/dma/map_benchmark.c: map_benchmark_thread(); swiotlb_max_mapping_size() is 256 KiB:
    -g above 64 (256 KiB) must fail under
    SWIOTLB: each thread logs "dma_map_single failed on <dev>" and exits -ENOMEM, so the
    ioctl fails and the tool prints perror("ioctl") and exits 1, with nothing on stdout."""
    r = run_map_benchmark(threads=3, granule=65, max_loops=LOOPS)
    assert r.errno == "ENOMEM"
    assert r.stdout() == ""
    assert r.stderr() == "ioctl: Cannot allocate memory\n"
    assert r.exit_status == 1
    failed = [ln for ln in r.kernel_log if ln == "dma_map_benchmark: dma_map_single failed on 0000:00:04.0"]
    assert len(failed) == 3
    full = [ln for ln in r.kernel_log if "swiotlb buffer is full (sz: 266240 bytes)" in ln]
    assert full and full[0].startswith("dma_map_benchmark 0000:00:04.0: ")
    ok = run_map_benchmark(threads=3, granule=64, max_loops=LOOPS)
    assert ok.errno is None


def test_granule_above_64_pages_works_without_bouncing():
    # no swiotlb= option, 2 GiB of RAM under a 32-bit mask: dma-direct maps in place
    r = run_map_benchmark(granule=65, cmdline="", max_loops=50)
    assert r.errno is None
    assert r.avg_map_100ns == 0 and r.avg_unmap_100ns == 0


def test_narrow_mask_puts_the_pool_out_of_reach():
    # 24 bits is a supported mask on x86 (it covers ZONE_DMA) but the pool sits near 2 GiB
    r = run_map_benchmark(dma_bits=24, max_loops=50)
    assert r.errno == "ENOMEM"
    assert any("swiotlb addr" in ln and "overflow" in ln for ln in r.kernel_log)
    assert "dma_map_benchmark: dma_map_single failed on 0000:00:04.0" in r.kernel_log


def test_unsupported_mask_and_bad_node_are_einval():
    r = run_map_benchmark(dma_bits=22, max_loops=50)
    assert (r.errno, r.stderr()) == ("EINVAL", "ioctl: Invalid argument\n")
    assert r.kernel_log == ["dma_map_benchmark: failed to set dma_mask on device 0000:00:04.0"]
    r = run_map_benchmark(node=1, max_loops=50)
    assert r.kernel_log == ["dma_map_benchmark: invalid numa node"]
    assert run_map_benchmark(node=0, max_loops=50).errno is None


# ------------------------------------------------------------------ shape -----------

def test_shape_direction_decides_which_latency_grows():
    """kernel/dma/swiotlb.c@afd81d914f6f: swiotlb_tbl_map_single() always copies in (901c7280ca0d),
    swiotlb_tbl_unmap_single() copies back for FROM_DEVICE/BIDIRECTIONAL: map latency grows with the granule in every
    direction (map always copies in); unmap latency grows only for BIDIRECTIONAL and
    FROM_DEVICE (copy back)."""
    lat = {(d, g): _lat(run_map_benchmark(dma_dir=d, granule=g, max_loops=300, seed=1))
           for d in (0, 1, 2) for g in (1, 64)}
    for d in (0, 1, 2):
        assert lat[(d, 64)][0] > lat[(d, 1)][0] + 2.0
    for d in (0, 2):
        assert lat[(d, 64)][1] > lat[(d, 1)][1] + 2.0
    assert lat[(1, 64)][1] == lat[(1, 1)][1]


# ------------------------------------------------------------------ bad input -------

@pytest.mark.parametrize("kw,name", [
    ({"threads": 0}, "threads"), ({"threads": 1025}, "threads"), ({"seconds": 0}, "seconds"),
    ({"seconds": 301}, "seconds"), ({"dma_bits": 19}, "dma_bits"), ({"dma_bits": 65}, "dma_bits"),
    ({"dma_dir": 3}, "dma_dir"), ({"dma_trans_ns": -1}, "dma_trans_ns"),
    ({"dma_trans_ns": 10_000_001}, "dma_trans_ns"), ({"granule": 0}, "granule"),
    ({"granule": 1025}, "granule"), ({"node": -2}, "node"), ({"seed": -1}, "seed"),
    ({"max_loops": 0}, "max_loops"), ({"threads": 4, "cpus": 2}, "cpus"), ({"kernel": "v9"}, "kernel"),
])
def test_bad_arguments(kw, name):
    with pytest.raises(ValueError, match=name):
        run_map_benchmark(**kw)


# ------------------------------------------------------------------ command line -----

def test_cli_defaults(capsys):
    assert cli.main(["--loops", "100"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "dma mapping benchmark: threads:1 seconds:20 node:-1 dir:BIDIRECTIONAL granule: 1"
    assert MAP.fullmatch(out[1]) and UNMAP.fullmatch(out[2])


@pytest.mark.parametrize("args,msg", [
    (["-t", "0"], "invalid number of threads, must be in 1-1024"),
    (["-t", "abc"], "invalid number of threads, must be in 1-1024"),
    (["-s", "301"], "invalid number of seconds, must be in 1-300"),
    (["-x", "10000001"], "invalid transmit delay, must be in 0-10000000"),
    (["-b", "19"], "invalid dma mask bit, must be in 20-64"),
    (["-d", "3"], "invalid dma direction"),
    (["-g", "1025"], "invalid granule size"),
    (["-n", "5"], 'ioctl: Invalid argument (-n 5: NUMA node 5 is not online on the model machine (it has '
                  'node 0; -1 means any node); the kernel logged "dma_map_benchmark: invalid numa node")'),
    (["-b", "22"], 'ioctl: Invalid argument (-b 22: the device refused a 22-bit DMA mask; the kernel logged '
                   '"dma_map_benchmark: failed to set dma_mask on device 0000:00:04.0")'),
])
def test_cli_bad_values_print_the_tools_message(capsys, args, msg):
    assert cli.main(args) == 2
    err = capsys.readouterr()
    assert err.err == msg + "\n" and err.out == ""


def test_cli_mapping_failure(capsys):
    assert cli.main(["dma-map-benchmark", "-t", "2", "-g", "65", "--dmesg"]) == 1
    cap = capsys.readouterr()
    assert cap.err == "ioctl: Cannot allocate memory\n"
    assert "[dmesg] dma_map_benchmark: dma_map_single failed on 0000:00:04.0" in cap.out.splitlines()


def test_cli_model_options(capsys):
    assert cli.main(["-t", "2", "-d", "2", "-g", "8", "--kernel", "v6.6", "--cmdline",
                     "swiotlb=4096,2,force", "--seed", "3", "--loops", "200"]) == 0
    assert HEADER.fullmatch(capsys.readouterr().out.splitlines()[0]).groups() == ("2", "20", "-1", "FROM_DEVICE", "8")
    assert cli.main(["--kernel", "v9"]) == 2
    assert "kernel" in capsys.readouterr().err
    assert cli.main(["--seed", "x"]) == 2
    assert cli.main(["--bogus"]) == 2


def test_register_adds_the_subcommand():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    cli.register(sub)
    a = p.parse_args(["dma-map-benchmark", "-t", "8", "-g", "2"])
    assert (a.threads, a.granule, a.seconds, a.bits, a.dir, a.xdelay, a.node) == ("8", "2", "20", "32", "0", "0", "-1")
    assert a.cmdline == "swiotlb=force" and callable(a.func)


@pytest.mark.parametrize("text,value", [("12", 12), ("  -3", -3), ("+7x", 7), ("abc", 0), ("", 0),
                                         ("0x10", 0), ("99999999999", (1 << 31) - 1)])
def test_atoi(text, value):
    assert cli.atoi(text) == value
