"""A machine that boots: memory, command line, SWIOTLB sizing and placement, devices.

:class:`Machine` follows the boot of the kernel versions modelled:

1. ``parse_early_param`` -> ``setup_io_tlb_npages`` for each ``swiotlb=`` (may print
   ``area num N.`` before ``Kernel command line:``);
2. on x86 with memory encryption, ``mem_encrypt_setup_arch()``: 6 % of
   ``memblock_phys_mem_size()`` clamped to [64 MiB, 1 GiB] -> ``swiotlb_adjust_size``;
3. ``swiotlb_init_remap(addressing_limit, flags)``: return early unless some device may
   need bouncing or ``force``; ``noforce`` allocates nothing; areas default to the CPU
   count; the boot pool is placed top-down in low memory and halved until it fits
   (``SWIOTLB bounce buffer size adjusted A -> B slabs``); from 6.6 the area count is
   also limited to one per 128 slots (``limit_nareas``);
4. x86: ``pci_iommu_init()`` prints ``PCI-DMA: Using software bounce buffering for IO
   (SWIOTLB)`` and ``mapped [mem ...]`` only when SWIOTLB was needed (RAM above 4 GiB or
   memory encryption); arm64 passes ``SWIOTLB_VERBOSE`` and prints ``mapped`` at once.

Sources: ``kernel/dma/swiotlb.c`` at 7c3940bf81e5 and afd81d914f6f,
``arch/x86/kernel/pci-dma.c`` (``pci_swiotlb_detect``), ``arch/x86/mm/mem_encrypt.c``
(20231010145220.3960055-2-alexander.shishkin@linux.intel.com), and the Debian boots in
``data/realkernel/boots.jsonl``, which this reproduces line for line.
"""
from __future__ import annotations

from .cmdline import SwiotlbSetup
from .constants import (IO_TLB_MIN_SLABS, IO_TLB_SEGSIZE, IO_TLB_SHIFT, PAGE_SIZE)
from .debug import KernelLog
from .device import Device, preset
from .direct import DmaApi
from .memory import GiB, MiB, PhysMemory, layout_for, parse_size
from .pool import limit_nareas
from .swiotlb import IoTlbMem
from .versions import get_profile

#: The lines the realkernel boots grepped for (``dmesg | grep -i -E ...``).
SWIOTLB_GREP = ("swiotlb", "software IO TLB", "area num", "PCI-DMA")


def _params(cmdline: str):
    from .cmdline import split_cmdline
    return split_cmdline(cmdline)


def coco_swiotlb_size(phys_mem: int) -> int:
    """``mem_encrypt_setup_arch()`` (``arch/x86/mm/mem_encrypt.c``, v6.3-rc to v6.11): 6 % of
    memory, clamped to [64 MiB, 1 GiB], the size it passes to ``swiotlb_adjust_size()``."""
    return min(max(phys_mem * 6 // 100, 64 * MiB), GiB)


class Machine:
    """A booted machine: RAM, CPUs, kernel profile, command line, SWIOTLB and devices.

    ``ram`` is bytes or a string like ``"2G"``; ``cpus`` the possible CPUs (1..8192);
    ``arch`` ``"x86_64"`` or ``"arm64-rpi4"``; ``mem_encrypt`` makes it a confidential
    guest (x86: SEV/TDX; every DMA bounces).  After construction, ``log`` holds the
    kernel lines, ``warnings`` what the model noticed outside the log, ``swiotlb`` the
    default allocator (``nslabs == 0`` when none was set up).
    """

    def __init__(self, ram="2G", cpus: int = 2, arch: str = "x86_64", mem_encrypt: bool = False,
                 cmdline: str = "", kernel=None, *, cma: str | int | None = None,
                 worker_delay: float | None = 0.0) -> None:
        self.profile = get_profile(kernel)
        ram_bytes = parse_size(ram, "ram")
        if not isinstance(cpus, int) or isinstance(cpus, bool) or not 1 <= cpus <= 8192:
            raise ValueError(f"cpus: must be an integer in 1..8192, got {cpus!r}")
        if not isinstance(cmdline, str):
            raise TypeError("cmdline: must be a string")
        calibration = "6.12" if self.profile.pad_slots else "6.1"
        self.layout = layout_for(arch, ram_bytes, calibration)
        if mem_encrypt and arch != "x86_64":
            raise ValueError("mem_encrypt: the model has memory encryption only for arch x86_64")
        self.arch = arch
        self.cpus = cpus
        self.mem_encrypt = mem_encrypt
        self.cmdline = cmdline
        self.log = KernelLog()
        self.memory = PhysMemory(self.layout.ram)
        self.setup = SwiotlbSetup(log=self.log, option_list=self.profile.option_list)
        self.devices: dict[str, Device] = {}
        self._cma = cma
        self._pages = None
        self._boot()
        self.dma = DmaApi(self.memory, self.log)
        if self.profile.is_dynamic:
            self._attach_dynamic(worker_delay)

    # -- boot ----------------------------------------------------------------------
    def _boot(self) -> None:
        log, st, lay = self.log, self.setup, self.layout
        if self.arch == "x86_64":
            log.info(f"Command line: {self.cmdline}", prefix="")
        st.parse(self.cmdline)
        if self.mem_encrypt:
            st.adjust_size(coco_swiotlb_size(lay.total_ram))
        log.info(f"Kernel command line: {self.cmdline}", prefix="")
        if self.arch == "x86_64":
            # pci_swiotlb_detect(): RAM above 4 GiB, or a guest with encrypted memory
            needed = lay.max_phys > (1 << 32) or self.mem_encrypt
            verbose = False
        else:
            # arm64 mem_init(): memory beyond the DMA zone
            needed = lay.max_phys > lay.low_limit
            verbose = True
        force = st.force_bounce or self.mem_encrypt
        self.bounce_needed = needed
        self.swiotlb = IoTlbMem(self.profile, memory=self.memory, log=log, force_bounce=force,
                                nr_cpus=self.cpus)
        self.swiotlb.cc_mem_encrypt = self.mem_encrypt
        self._init_remap(needed or st.force_bounce)
        if verbose and self.swiotlb.nslabs:
            self._print_info()
        if self.arch == "x86_64" and needed:
            log.info("PCI-DMA: Using software bounce buffering for IO (SWIOTLB)", prefix="")
            self._print_info()

    def _init_remap(self, addressing_limit: bool) -> None:
        """``swiotlb_init_remap()`` for the boot pool."""
        st, log, mem = self.setup, self.log, self.swiotlb
        if not addressing_limit or st.force_disable:
            return
        if not st.default_nareas:
            st.adjust_nareas(self.cpus)
        nslabs = st.default_nslabs
        limited = self.profile.limit_nareas
        nareas = limit_nareas(st.default_nareas, nslabs) if limited else st.default_nareas
        while True:
            start = self.layout.place_boot_pool(((nslabs << IO_TLB_SHIFT) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
            if start is not None:
                break
            if nslabs <= IO_TLB_MIN_SLABS:
                log.warn(f"swiotlb_memblock_alloc: Failed to allocate {nslabs << IO_TLB_SHIFT} bytes tlb structure")
                return
            nslabs = -(-(nslabs >> 1) // IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE   # ALIGN(n/2, 128)
            if limited:
                nareas = limit_nareas(nareas, nslabs)
        if st.default_nslabs != nslabs:
            log.info(f"SWIOTLB bounce buffer size adjusted {st.default_nslabs} -> {nslabs} slabs")
            st.default_nslabs = nslabs
        if nareas < 1:
            nareas = 1
        mem.default_nareas = st.default_nareas
        mem.init_pool(start, nslabs, nareas)

    def no_pool_reason(self) -> str | None:
        """Why the boot set up no SWIOTLB pool, in one line (None when it did).

        ``swiotlb_init_remap()`` returns at once unless its ``addressing_limit`` argument or
        ``swiotlb=force`` asks for bouncing; ``swiotlb=noforce`` disables it; the caller
        decides ``addressing_limit``: x86 ``pci_swiotlb_detect()`` (RAM above 4 GiB, or
        memory encryption), arm64 ``mem_init()`` (RAM beyond the DMA zone).  Otherwise the
        allocation itself failed (``swiotlb_memblock_alloc``)."""
        if self.swiotlb.nslabs:
            return None
        lay, st = self.layout, self.setup
        if st.force_disable:
            return "no SWIOTLB pool: swiotlb=noforce on the command line disables it"
        if not (self.bounce_needed or st.force_bounce):
            if self.arch == "x86_64":
                why = (f"pci_swiotlb_detect(): all RAM is below 4 GiB (highest address "
                       f"{lay.max_phys - 1:#x}) and memory is not encrypted")
                hint = "RAM reaching above 4 GiB (e.g. --ram 4G), --mem-encrypt or swiotlb=force would"
            else:
                why = (f"mem_init(): all RAM is within the DMA zone (below {lay.low_limit:#x})")
                hint = "give swiotlb=force"
            return f"no SWIOTLB pool: {why}, and no swiotlb=force, so no device can need bouncing ({hint})"
        return "no SWIOTLB pool: the allocation of the boot pool failed (see the log line above)"

    def _print_info(self) -> None:
        """``swiotlb_print_info()``."""
        pool = self.swiotlb.defpool
        if pool is None:
            self.log.warn("No low mem")
            return
        self.log.info(f"mapped [mem {pool.start:#018x}-{pool.end:#018x}] "
                      f"({(pool.nslabs << IO_TLB_SHIFT) >> 20}MB)")

    # -- the page allocator and dynamic SWIOTLB ------------------------------------------
    @property
    def pages(self):
        """The buddy page allocator over this machine's RAM (built on first use).

        memblock reservations: the kernel image (40 MiB at 16 MiB on x86_64, at 2 MiB on
        arm64), what early boot took at the top of low memory (see
        :func:`~swiotlb_lib.memory.layout_for`) and the boot SWIOTLB pool.  CMA: ``cma=``
        on the command line, else the ``cma`` argument, else 0 on x86_64 (Debian's
        kernels print ``0K cma-reserved``) and 256 MiB on arm64-rpi4 (the size of the
        ``vc4-kms-v3d`` overlay's ``cma-256`` setting; placed in the first GiB).
        """
        if self._pages is None:
            from .page_alloc import PageAllocator
            lay = self.layout
            kbase = {"x86_64": 16 * MiB, "arm64-rpi4": 2 * MiB}.get(self.arch, lay.ram[0][0] + 2 * MiB)
            reserved = [(kbase, kbase + 40 * MiB)]
            low_top = min(max(e for s_, e in lay.ram if s_ < lay.low_limit), lay.low_limit)
            if lay.early_top < low_top:
                reserved.append((lay.early_top, low_top))
            pool = self.swiotlb.defpool
            if pool is not None:
                reserved.append((pool.start, pool.end))
            self._pages = PageAllocator(lay, reserved, cma_bytes=self.cma_bytes,
                                        atomic_pool_bytes=self._atomic_pool_bytes())
        return self._pages

    @property
    def cma_bytes(self) -> int:
        from .memory import parse_size
        for key, val in _params(self.cmdline):
            if key == "cma" and val:
                return parse_size(val, "cmdline cma=")
        if self._cma is not None:
            return parse_size(self._cma, "cma") if self._cma else 0
        return 256 * MiB if self.arch == "arm64-rpi4" else 0

    def _atomic_pool_bytes(self) -> int:
        """``coherent_pool=`` or the default of kernel/dma/pool.c: 128 KiB per GiB of
        RAM, at least 128 KiB, at most 4 MiB (one MAX_ORDER block)."""
        from .memory import parse_size
        for key, val in _params(self.cmdline):
            if key == "coherent_pool" and val:
                return parse_size(val, "cmdline coherent_pool=")
        return min(max((self.layout.total_ram >> 30) * 128 * 1024, 128 * 1024), 4 * MiB)

    def _attach_dynamic(self, worker_delay) -> None:
        from .dynamic import Grower, RfcDynamic
        mem = self.swiotlb
        if mem.defpool is None:
            return
        if self.profile.dynamic == "rfc-v1":
            mem.dyn = RfcDynamic(mem, self.pages, allow_dyn=self.setup.dynamic)
        else:
            mem.dyn = Grower(mem, self.pages, phys_limit=self.layout.low_limit - 1,
                             default_nslabs=self.setup.default_nslabs,
                             default_nareas=self.setup.default_nareas,
                             flavour=self.profile.dynamic, worker_delay=worker_delay)

    def run_pending_work(self) -> bool:
        """Run the SWIOTLB growth worker (``swiotlb_dyn_alloc()``, v6.6 to v6.11 with
        ``CONFIG_SWIOTLB_DYNAMIC``) now if it was kicked (6.6 dynamic profiles)."""
        return bool(self.swiotlb.dyn) and self.swiotlb.dyn.run_pending_work()

    def advance(self, seconds: float) -> None:
        """Advance model time; a kicked worker runs once its delay has passed."""
        if seconds < 0:
            raise ValueError(f"seconds: must be >= 0, got {seconds}")
        self.log.now += seconds
        if self.swiotlb.dyn is not None:
            self.swiotlb.dyn.tick(self.log.now)

    def bounce_bytes(self) -> int:
        """Memory held for bouncing now: the boot pool plus anything dynamic."""
        base = self.swiotlb.defpool.nslabs << IO_TLB_SHIFT if self.swiotlb.defpool else 0
        return base + (self.swiotlb.dyn.bounce_bytes() if self.swiotlb.dyn is not None else 0)

    # -- devices ---------------------------------------------------------------------
    def add_device(self, dev: Device | str, name: str | None = None) -> Device:
        """Attach a device: ``swiotlb_dev_init()`` (v6.6 to v6.11; in v6.3-rc and v6.3,
        ``device_initialize()`` sets ``dma_io_tlb_mem``).  A :class:`Device`, or a preset kind."""
        if isinstance(dev, str):
            dev = preset(dev, name)
        if dev.name in self.devices:
            raise ValueError(f"name: a device called {dev.name!r} is already attached")
        dev.dma_io_tlb_mem = self.swiotlb
        dev.dma_io_tlb_pools = []
        dev.dma_uses_io_tlb = False
        self.devices[dev.name] = dev
        return dev

    def device(self, name: str) -> Device:
        try:
            return self.devices[name]
        except KeyError:
            raise ValueError(f"dev: unknown device {name!r}; attached: {sorted(self.devices)}") from None

    # -- CPU and device access to memory ---------------------------------------------------
    def cpu_write(self, paddr: int, data) -> None:
        self.memory.write(paddr, data)

    def cpu_read(self, paddr: int, size: int) -> bytes:
        return self.memory.read(paddr, size)

    def device_write(self, dev: Device, dma_addr: int, data) -> None:
        """The device writes ``data`` at ``dma_addr`` (identity DMA mapping); it must be
        within the device's reach."""
        self._check_reach(dev, dma_addr, len(data))
        self.memory.write(dma_addr, data)

    def device_read(self, dev: Device, dma_addr: int, size: int) -> bytes:
        self._check_reach(dev, dma_addr, size)
        return self.memory.read(dma_addr, size)

    @staticmethod
    def _check_reach(dev: Device, dma_addr: int, size: int) -> None:
        if dma_addr < 0 or size < 0 or dma_addr + size - 1 > dev.reach:
            raise ValueError(f"dma_addr: [{dma_addr:#x}, +{size}) is beyond what {dev.name} "
                             f"can address (up to {dev.reach:#x})")

    # -- reports -----------------------------------------------------------------------
    def swiotlb_lines(self) -> list[str]:
        """The boot-log lines that mention SWIOTLB (the realkernel boots' grep)."""
        return self.log.grep(*SWIOTLB_GREP)

    def debugfs(self) -> dict:
        return self.swiotlb.debugfs()

    def report(self) -> str:
        """What ``python -m swiotlb_lib boot`` prints: log lines, then debugfs values."""
        out = list(self.swiotlb_lines())
        out += [f"{k}: {v}" for k, v in self.debugfs().items()]
        return "\n".join(out)
