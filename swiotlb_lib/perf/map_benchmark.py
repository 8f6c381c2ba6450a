"""``dma_map_benchmark`` on the model: the kernel module and its user-space tool.

Models ``kernel/dma/map_benchmark.c`` (read at 02fcfc12fc49), the ioctl structure of
``include/linux/map_benchmark.h`` (23ee8a2563a0) and the selftest tool
``tools/testing/selftests/dma/dma_map_benchmark.c`` (2488655b2f6b), written by Barry
Song (HiSilicon, Linux 5.11; series ``20201027035330.29612-1-song.bao.hua@hisilicon.com``).
Behaviour reproduced (as read in those three files):

* the tool checks threads 1-1024, seconds 1-300, transfer delay 0-10 000 000 ns, DMA
  mask bits 20-64, direction 0/1/2 and granule 1-1024 pages, with its own messages;
* the module checks the NUMA node (-1, or a possible node: the model has node 0 only),
  sets the device's DMA mask to ``DMA_BIT_MASK(dma_bits)`` for the run (``dma_set_mask``
  fails, as ``dma_direct_supported`` says, for a mask below 32 bits that does not cover
  ZONE_DMA or all of memory) and restores it afterwards;
* each kthread allocates its page-aligned buffer once (``alloc_pages_exact``), then
  loops: fill the buffer with 0x66 unless FROM_DEVICE, time ``dma_map_single``, wait
  ``dma_trans_ns``, time ``dma_unmap_single``; a failed mapping prints
  ``dma_map_single failed on <device>`` and ends the thread with -ENOMEM, so the ioctl
  fails and the tool prints ``ioctl: Cannot allocate memory`` and exits 1;
* the statistics are the kernel's: every latency truncated to 100 ns units, the mean
  ``sum / loops`` and the standard deviation ``int_sqrt(sum_sq / loops - mean²)``, all
  integer arithmetic; the tool prints them divided by 10.0 with one decimal.

Time is simulated by :mod:`swiotlb_lib.perf.concurrency` (its :class:`CostModel`
constants are assumptions), so under SWIOTLB map latency grows with the granule in every
direction (map always copies in) and unmap latency only for BIDIRECTIONAL and
FROM_DEVICE (copy back): ``kernel/dma/swiotlb.c@af133562d5af: swiotlb_tbl_map_single()``
copies in whatever the direction, ``swiotlb_tbl_unmap_single()`` copies back only for those
two.  ``seconds`` is simulated
time; to keep a run short the model also stops after ``max_loops`` loops (all threads
together) and reports the statistics of those loops, a steady-state sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..boot import Machine
from ..checks import check_int
from ..constants import PAGE_SHIFT, PAGE_SIZE
from ..device import DMA_BIT_MASK, Device
from ..page_alloc import GFP_KERNEL, get_order
from .concurrency import DEFAULT_COSTS, CostModel, run_mappers

__all__ = ["DMA_MAP_MAX_THREADS", "DMA_MAP_MAX_SECONDS", "DMA_MAP_MAX_TRANS_DELAY",
           "DIRECTIONS", "MapBenchmarkResult", "tool_check", "kernel_stats", "dma_supported",
           "run_map_benchmark"]

#: include/linux/map_benchmark.h
DMA_MAP_MAX_THREADS = 1024
DMA_MAP_MAX_SECONDS = 300
DMA_MAP_MAX_TRANS_DELAY = 10 * 1000 * 1000          # 10 * NSEC_PER_MSEC
DMA_MAP_BIDIRECTIONAL, DMA_MAP_TO_DEVICE, DMA_MAP_FROM_DEVICE = 0, 1, 2
#: how the tool names the directions
DIRECTIONS = ("BIDIRECTIONAL", "TO_DEVICE", "FROM_DEVICE")
#: ``pr_fmt`` of map_benchmark.c: ``KBUILD_MODNAME ": "``
PR_FMT = "dma_map_benchmark: "
#: what ``perror("ioctl")`` prints for the errors the module returns
STRERROR = {"ENOMEM": "Cannot allocate memory", "EINVAL": "Invalid argument"}


def tool_check(threads: int, seconds: int, dma_bits: int, dma_dir: int, dma_trans_ns: int,
               granule: int) -> str | None:
    """The user-space tool's checks, in its order: the message it prints on stderr
    before exiting, or None when every value is in range."""
    if threads <= 0 or threads > DMA_MAP_MAX_THREADS:
        return f"invalid number of threads, must be in 1-{DMA_MAP_MAX_THREADS}"
    if seconds <= 0 or seconds > DMA_MAP_MAX_SECONDS:
        return f"invalid number of seconds, must be in 1-{DMA_MAP_MAX_SECONDS}"
    if dma_trans_ns < 0 or dma_trans_ns > DMA_MAP_MAX_TRANS_DELAY:
        return f"invalid transmit delay, must be in 0-{DMA_MAP_MAX_TRANS_DELAY}"
    if dma_bits < 20 or dma_bits > 64:
        return "invalid dma mask bit, must be in 20-64"
    if dma_dir not in (DMA_MAP_BIDIRECTIONAL, DMA_MAP_TO_DEVICE, DMA_MAP_FROM_DEVICE):
        return "invalid dma direction"
    if granule < 1 or granule > 1024:
        return "invalid granule size"
    return None


def kernel_stats(map_100ns, unmap_100ns) -> tuple[int, int, int, int]:
    """``(avg_map_100ns, map_stddev, avg_unmap_100ns, unmap_stddev)`` as
    ``do_map_benchmark`` computes them from per-loop latencies already in 100 ns units
    (integers): integer mean, integer square root of ``sum_sq // loops - mean²``.
    With no loops the fields stay 0 (the tool zeroes the structure)."""
    loops = len(map_100ns)
    if loops != len(unmap_100ns):
        raise ValueError("unmap_100ns: must have one value per loop, like map_100ns")
    if loops == 0:
        return 0, 0, 0, 0
    out = []
    for xs in (map_100ns, unmap_100ns):
        xs = [int(x) for x in xs]
        if any(x < 0 for x in xs):
            raise ValueError("map_100ns: latencies must be >= 0")
        avg = sum(xs) // loops
        var = sum(x * x for x in xs) // loops - avg * avg
        out += [avg, math.isqrt(var)]
    return out[0], out[1], out[2], out[3]


def dma_supported(machine: Machine, mask: int) -> bool:
    """``dma_direct_supported()``: any mask of 32 bits or more; a narrower mask must
    cover the smaller of all memory (``(max_pfn - 1) << PAGE_SHIFT``) and the end of
    ZONE_DMA (``zone_dma_limit``; 16 MiB on x86_64)."""
    if mask >= DMA_BIT_MASK(32):
        return True
    lay = machine.layout
    max_pfn = max(e for _, e in lay.ram) >> PAGE_SHIFT
    min_mask = (max_pfn - 1) << PAGE_SHIFT
    for z in lay.zones:
        if z.name == "DMA":
            min_mask = min(min_mask, z.end - 1)
    return mask >= min_mask


@dataclass
class MapBenchmarkResult:
    """One ``DMA_MAP_BENCHMARK`` ioctl and what the tool prints for it.

    The four statistics are the ioctl's output fields (100 ns units); ``errno`` is
    None, ``"ENOMEM"`` or ``"EINVAL"``; ``kernel_log`` holds the kernel lines logged
    during the run (SWIOTLB warnings, the module's ``pr_err`` lines); ``capped`` is True
    when ``max_loops`` ended the run before ``seconds`` of simulated time.
    """

    threads: int
    seconds: int
    node: int
    dma_bits: int
    dma_dir: int
    dma_trans_ns: int
    granule: int
    avg_map_100ns: int = 0
    map_stddev: int = 0
    avg_unmap_100ns: int = 0
    unmap_stddev: int = 0
    loops: int = 0
    errno: str | None = None
    kernel_log: list = field(default_factory=list)
    simulated_ns: float = 0.0
    capped: bool = False
    device: str = ""
    #: the model machine after the run, for inspection (its log, pools, memory)
    machine: object = field(default=None, repr=False, compare=False)

    @property
    def exit_status(self) -> int:
        """The tool's exit status: 0, or 1 after a failed ioctl."""
        return 1 if self.errno else 0

    def stdout(self) -> str:
        """Exactly what the tool prints on stdout (nothing when the ioctl failed)."""
        if self.errno:
            return ""
        return (f"dma mapping benchmark: threads:{self.threads} seconds:{self.seconds} "
                f"node:{self.node} dir:{DIRECTIONS[self.dma_dir]} granule: {self.granule}\n"
                f"average map latency(us):{self.avg_map_100ns / 10.0:.1f} "
                f"standard deviation:{self.map_stddev / 10.0:.1f}\n"
                f"average unmap latency(us):{self.avg_unmap_100ns / 10.0:.1f} "
                f"standard deviation:{self.unmap_stddev / 10.0:.1f}\n")

    def stderr(self) -> str:
        """What the tool prints on stderr: ``perror("ioctl")`` after a failed ioctl."""
        return f"ioctl: {STRERROR[self.errno]}\n" if self.errno else ""


def run_map_benchmark(threads: int = 1, seconds: int = 20, node: int = -1, dma_bits: int = 32,
                      dma_dir: int = 0, dma_trans_ns: int = 0, granule: int = 1, *,
                      kernel: str | None = None, cmdline: str = "swiotlb=force", ram="2G",
                      cpus: int | None = None, arch: str = "x86_64", seed: int = 0,
                      costs: CostModel = DEFAULT_COSTS, max_loops: int = 10_000,
                      dev_name: str = "0000:00:04.0") -> MapBenchmarkResult:
    """Run ``dma_map_benchmark`` on a model machine and return the ioctl's result.

    Parameters are the tool's (``-t -s -n -b -d -x -g``; out-of-range values raise
    ``ValueError`` naming the parameter and its range) plus the machine: ``kernel``
    profile, ``cmdline`` (default ``swiotlb=force``: every mapping bounces), ``ram``,
    ``cpus`` (default ``max(threads, 8)``: each kthread gets its own CPU, thread ``i`` on
    CPU ``i``, since the model does not time-share CPUs), ``arch``; ``seed`` for the
    simulation's jitter; ``costs`` its constants (``dma_trans_ns`` replaces their
    ``transfer_ns``); ``max_loops`` caps the simulated loops.  The benchmark binds to a
    PCI device named ``dev_name``.
    """
    threads = check_int("threads", threads, 1, DMA_MAP_MAX_THREADS)
    seconds = check_int("seconds", seconds, 1, DMA_MAP_MAX_SECONDS)
    node = check_int("node", node, -1, 1 << 30)
    dma_bits = check_int("dma_bits", dma_bits, 20, 64)
    dma_dir = check_int("dma_dir", dma_dir, 0, 2)
    dma_trans_ns = check_int("dma_trans_ns", dma_trans_ns, 0, DMA_MAP_MAX_TRANS_DELAY)
    granule = check_int("granule", granule, 1, 1024)
    seed = check_int("seed", seed, 0, 2 ** 63 - 1)
    max_loops = check_int("max_loops", max_loops, 1, 10_000_000)
    if not isinstance(costs, CostModel):
        raise ValueError(f"costs: must be a CostModel, got {type(costs).__name__}")
    if cpus is None:
        cpus = max(threads, 8)
    cpus = check_int("cpus", cpus, threads, 8192)
    res = MapBenchmarkResult(threads, seconds, node, dma_bits, dma_dir, dma_trans_ns, granule,
                             device=dev_name)
    m = Machine(ram=ram, cpus=cpus, arch=arch, cmdline=cmdline, kernel=kernel)
    res.machine = m
    log = m.log
    mark = len(log.lines)
    dev = m.add_device(Device(dev_name, driver="dma_map_benchmark"))

    def done(errno=None):
        res.errno = errno
        res.kernel_log = log.lines[mark:]
        return res

    # map_benchmark_ioctl(): the module's own checks (the tool has done the rest)
    if node != -1 and node != 0:
        log.info("invalid numa node", prefix=PR_FMT)
        return done("EINVAL")
    mask = DMA_BIT_MASK(dma_bits)
    if not dma_supported(m, mask):
        log.info(f"failed to set dma_mask on device {dev.name}", prefix=PR_FMT)
        return done("EINVAL")
    old_mask = dev.dma_mask
    dev.dma_mask = mask
    try:
        size = granule * PAGE_SIZE
        order = get_order(size)
        buffers = []
        for _ in range(threads):
            p = m.pages.alloc_pages(GFP_KERNEL, order, owner="dma_map_benchmark")
            if p is None:                       # alloc_pages_exact() failed: -ENOMEM
                for q in buffers:
                    m.pages.free_pages(q, order)
                return done("ENOMEM")
            buffers.append(p)

        def failed(i, cpu, err):
            log.info(f"dma_map_single failed on {dev.name}", prefix=PR_FMT)

        c = replace(costs, transfer_ns=float(dma_trans_ns))
        fill = None if dma_dir == DMA_MAP_FROM_DEVICE else 0x66
        tr = run_mappers(m, dev, buffers, list(range(threads)), size, dma_dir, costs=c,
                         ops=max_loops, duration_ns=seconds * 1e9, seed=seed, fill=fill,
                         on_failure=failed)
        for p in buffers:                       # free_pages_exact()
            m.pages.free_pages(p, order)
    finally:
        dev.dma_mask = old_mask                 # dma_set_mask(dev, old_dma_mask)
    res.simulated_ns = tr.sim_ns
    if tr.failures:
        return done("ENOMEM")
    res.loops = int(tr.end_ns.size)
    res.capped = res.loops >= max_loops
    mp = [int(x) // 100 for x in tr.map_ns]     # ktime deltas in ns, div64_ul(delta, 100)
    ump = [int(x) // 100 for x in tr.unmap_ns]
    res.avg_map_100ns, res.map_stddev, res.avg_unmap_100ns, res.unmap_stddev = kernel_stats(mp, ump)
    return done(None)
