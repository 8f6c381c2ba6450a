"""Physical memory: sparse bytes, the RAM map, zones, and where boot allocations land.

* :class:`PhysMemory` -- byte-addressable physical memory whose 4 KiB pages exist only
  once written, so that a 1 TiB machine costs nothing until used.  Reads of untouched
  RAM return zeros (the kernel zeroes the SWIOTLB pool at init, and fresh pages are
  zero in the model).
* :class:`MemoryLayout` -- the RAM ranges (``e820``/device-tree memory), the zones
  (``ZONE_DMA``, ``ZONE_DMA32``, ``ZONE_NORMAL``) and a top-down ``memblock``-style
  placement of the boot-time SWIOTLB pool.
* :func:`layout_for` -- architecture presets ``x86_64`` (a QEMU ``pc`` machine, as in
  the boots recorded in ``data/realkernel/boots.jsonl``) and ``arm64-rpi4`` (Raspberry Pi 4).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .constants import PAGE_SHIFT, PAGE_SIZE, U64, GiB, MiB

_PMASK = PAGE_SIZE - 1
#: a page of zeros to copy from where the source page was never written (never modified),
#: and a view of it to slice without copying
_ZERO_PAGE = bytearray(PAGE_SIZE)
_ZERO_VIEW = memoryview(_ZERO_PAGE)


def _no_copy(dst: int, src: int, size: int) -> None:
    """Stands in for :meth:`PhysMemory.copy_unchecked` while bytes are not moved."""


class PhysMemory:
    """Sparse physical memory: a dict from page frame number to a 4 KiB ``bytearray``.

    Every access is checked against the machine's RAM ranges (``valid``); an access
    outside RAM raises ``ValueError`` naming the parameter.
    """

    def __init__(self, ranges=((0, U64),)) -> None:
        self.ranges = tuple(ranges)
        #: the same ranges, largest first: the order the fast checks try them in
        self.by_size = tuple(sorted(self.ranges, key=lambda r: r[0] - r[1]))
        #: the largest range, clipped to [0, U64]: ``ram_lo <= addr and addr + size <=
        #: ram_hi`` is the first comparison the mapping path's fast checks make (an address
        #: that fails it is tried against every range)
        lo, hi = self.by_size[0] if self.by_size else (0, 0)
        self.ram_lo, self.ram_hi = max(lo, 0), max(min(hi, U64), 0)
        self.pages: dict[int, bytearray] = {}

    def in_ram(self, addr: int, end: int) -> bool:
        """True if ``[addr, end)`` lies inside one RAM range (largest range tried first)."""
        for lo, hi in self.by_size:
            if lo <= addr and end <= hi:
                return True
        return False

    def check_range(self, addr: int, size: int, what: str = "addr") -> None:
        if not isinstance(addr, int) or not isinstance(size, int):
            raise TypeError(f"{what}: address and size must be integers")
        if size < 0:
            raise ValueError(f"size: must be >= 0, got {size}")
        end = addr + size
        if self.in_ram(addr, end):
            return
        raise ValueError(f"{what}: [{addr:#x}, {end:#x}) is not inside one RAM range "
                         f"({', '.join(f'[{lo:#x}, {hi:#x})' for lo, hi in self.ranges)})")

    @property
    def resident_bytes(self) -> int:
        """Bytes of pages that have materialised."""
        return len(self.pages) * PAGE_SIZE

    def read(self, addr: int, size: int) -> bytes:
        """Read ``size`` bytes at physical ``addr``."""
        self.check_range(addr, size)
        out = bytearray(size)
        pos = 0
        pages = self.pages
        while pos < size:
            a = addr + pos
            off = a & _PMASK
            n = min(PAGE_SIZE - off, size - pos)
            pg = pages.get(a >> PAGE_SHIFT)
            if pg is not None:
                out[pos:pos + n] = pg[off:off + n]
            pos += n
        return bytes(out)

    def write(self, addr: int, data) -> None:
        """Write ``data`` (bytes-like) at physical ``addr``."""
        data = memoryview(bytes(data)) if not isinstance(data, (bytes, bytearray, memoryview)) else memoryview(data)
        size = len(data)
        self.check_range(addr, size)
        pos = 0
        pages = self.pages
        while pos < size:
            a = addr + pos
            off = a & _PMASK
            n = min(PAGE_SIZE - off, size - pos)
            pfn = a >> PAGE_SHIFT
            pg = pages.get(pfn)
            if pg is None:
                pg = pages[pfn] = bytearray(PAGE_SIZE)
            pg[off:off + n] = data[pos:pos + n]
            pos += n

    def fill(self, addr: int, size: int, value: int = 0) -> None:
        """``memset``: pages that would stay all-zero are not materialised."""
        self.check_range(addr, size)
        if value == 0:
            lo, hi = addr >> PAGE_SHIFT, (addr + size + _PMASK) >> PAGE_SHIFT
            if len(self.pages) < hi - lo:
                # fewer materialised pages than pages in the range: visit only those
                for pfn in [p for p in self.pages if lo <= p < hi]:
                    a = max(addr, pfn << PAGE_SHIFT)
                    e = min(addr + size, (pfn + 1) << PAGE_SHIFT)
                    if e - a == PAGE_SIZE:
                        del self.pages[pfn]
                    else:
                        self.pages[pfn][a & _PMASK:(a & _PMASK) + (e - a)] = bytes(e - a)
                return
            pos = 0
            while pos < size:
                a = addr + pos
                off = a & _PMASK
                n = min(PAGE_SIZE - off, size - pos)
                pg = self.pages.get(a >> PAGE_SHIFT)
                if pg is not None:
                    if n == PAGE_SIZE:
                        del self.pages[a >> PAGE_SHIFT]
                    else:
                        pg[off:off + n] = bytes(n)
                pos += n
        else:
            self.write(addr, bytes([value]) * size)

    def copy(self, dst: int, src: int, size: int) -> None:
        """``memcpy(phys_to_virt(dst), phys_to_virt(src), size)``, page chunk by chunk.

        Chunks whose source and destination pages were never written are skipped
        (zeros onto zeros), which keeps bouncing through untouched memory cheap.
        """
        self.check_range(src, size, "src")
        self.check_range(dst, size, "dst")
        self.copy_unchecked(dst, src, size)

    def move_bytes(self, on: bool) -> None:
        """Switch the bounce copies on (the default) or off.  Off, :meth:`copy_unchecked`
        moves nothing and :meth:`copy` only checks its ranges: for the replay of a trace,
        which carries no data and measures only the slot bookkeeping."""
        if on:
            self.__dict__.pop("copy_unchecked", None)
        else:
            self.copy_unchecked = _no_copy          # an instance attribute: the class is untouched

    def copy_unchecked(self, dst: int, src: int, size: int) -> None:
        """:meth:`copy` for callers that validated both ranges already (the bounce path)."""
        pages = self.pages
        so = src & _PMASK
        do = dst & _PMASK
        if so + size <= PAGE_SIZE and do + size <= PAGE_SIZE:   # within one page each
            sp = pages.get(src >> PAGE_SHIFT)
            dp = pages.get(dst >> PAGE_SHIFT)
            if sp is not None:
                if dp is None:
                    dp = pages[dst >> PAGE_SHIFT] = bytearray(PAGE_SIZE)
                dp[do:do + size] = sp[so:so + size]
            elif dp is not None:
                dp[do:do + size] = _ZERO_VIEW[:size]
            return
        # chunk by chunk, each up to the nearer page end of source and destination
        get = pages.get
        end = src + size
        while src < end:
            so = src & _PMASK
            do = dst & _PMASK
            n = PAGE_SIZE - (so if so > do else do)
            if src + n > end:
                n = end - src
            sp = get(src >> PAGE_SHIFT)
            dp = get(dst >> PAGE_SHIFT)
            if sp is None:
                if dp is not None:
                    dp[do:do + n] = _ZERO_VIEW[:n]
            else:
                if dp is None:
                    dp = pages[dst >> PAGE_SHIFT] = bytearray(PAGE_SIZE)
                dp[do:do + n] = sp[so:so + n]
            src += n
            dst += n


@dataclass(frozen=True)
class Zone:
    """A memory zone: name and physical range ``[start, end)``."""

    name: str
    start: int
    end: int


@dataclass
class MemoryLayout:
    """RAM ranges, zones, and the boot-time placement rule of an architecture preset.

    ``ram`` is a list of ``[start, end)`` usable ranges; ``reserved`` lists firmware
    ranges (printed like ``BIOS-e820`` lines).  ``low_limit`` is
    ``ARCH_LOW_ADDRESS_LIMIT + 1``: ``memblock_alloc_low`` places the pool below it.
    ``early_top`` is the address below which the first free block lies when SWIOTLB is
    allocated (everything above it was taken earlier in boot); ``any_top`` is the same
    for ``SWIOTLB_ANY`` (pool allowed anywhere, confidential guests).
    """

    arch: str
    ram_bytes: int
    ram: list
    reserved: list
    zones: list
    low_limit: int
    early_top: int
    any_top: int
    notes: list = field(default_factory=list)

    @property
    def total_ram(self) -> int:
        """``memblock_phys_mem_size()`` (``mm/memblock.c``, v6.3-rc to v6.11): the sum of
        usable RAM ranges (page-trimmed)."""
        return sum(((e & ~_PMASK) - ((s + _PMASK) & ~_PMASK)) for s, e in self.ram)

    @property
    def max_phys(self) -> int:
        """One past the highest RAM address."""
        return max(e for _, e in self.ram)

    def zone_of(self, paddr: int) -> str:
        for z in self.zones:
            if z.start <= paddr < z.end:
                return z.name
        return "none"

    def zone(self, name: str) -> Zone:
        for z in self.zones:
            if z.name == name:
                return z
        raise ValueError(f"zone: no zone {name!r} on {self.arch}; zones are {[z.name for z in self.zones]}")

    def place_boot_pool(self, nbytes: int, anywhere: bool = False) -> int | None:
        """``swiotlb_memblock_alloc()`` (v6.3-rc to v6.11): ``memblock_alloc_low`` (or
        ``memblock_alloc`` with ``SWIOTLB_ANY``) top-down:
        the highest page-aligned start such that ``[start, start+nbytes)`` is usable RAM
        below the placement top.  ``None`` if it does not fit (the kernel then halves).
        """
        top = self.any_top if anywhere else min(self.early_top, self.low_limit)
        nbytes = (nbytes + _PMASK) & ~_PMASK
        for s, e in sorted(self.ram, key=lambda r: -r[1]):
            hi = min(e, top) & ~_PMASK
            lo = (s + _PMASK) & ~_PMASK
            if hi - lo >= nbytes:
                return hi - nbytes
        return None


ARCHES = ("x86_64", "arm64-rpi4", "arm64-board")


def parse_size(text: str, what: str = "size") -> int:
    """Parse sizes like ``2G``, ``512M``, ``1T``, ``4096`` (binary units, as QEMU's ``-m``)."""
    if isinstance(text, int):
        return text
    s = str(text).strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}
    try:
        if s and s[-1] in mult:
            v = float(s[:-1]) * mult[s[-1]]
        else:
            v = float(s)
    except ValueError:
        raise ValueError(f"{what}: cannot parse {text!r}; use a number with K, M, G or T") from None
    if v != int(v) or v <= 0:
        raise ValueError(f"{what}: must be a positive whole number of bytes, got {text!r}")
    return int(v)


def layout_for(arch: str, ram_bytes: int, calibration: str = "6.12") -> MemoryLayout:
    """The memory layout of an architecture preset with ``ram_bytes`` of RAM.

    ``x86_64`` models QEMU's ``pc`` machine (i440FX, SeaBIOS) as in ``data/realkernel/boots.jsonl``:
    low RAM up to ``min(ram, 3 GiB)`` when RAM >= 3.5 GiB (else all of it), less 0x23000
    bytes the BIOS reserves at its top; the rest above 4 GiB; ``ZONE_DMA`` < 16 MiB,
    ``ZONE_DMA32`` < 4 GiB.  The boot pool lands below what early boot took from the top
    of low memory.  That amount is **calibrated** on the recorded Debian boots (it is
    the initrd, the ``struct page`` array and per-CPU areas, none of which the model
    simulates): with RAM above 4 GiB those go high and only 0x10e000 bytes (Linux 6.12;
    0x11b000 on 6.1) sit at the top of low RAM; otherwise 3 MiB + 18 MiB per GiB of RAM,
    which reproduces the pools at 0x3eb00000 (1 GiB) and 0x7d900000 (2 GiB) exactly.

    ``arm64-board`` models a small embedded Arm SoC (the cover letter's third system):
    DRAM from 0x40000000, and device-tree ``dma-ranges`` that let the DMA masters reach
    only the first 256 MiB of it, so ``ZONE_DMA`` is that window and SWIOTLB is set up
    (with its default 64 MiB) whenever RAM is larger.  Not calibrated on real hardware.

    ``arm64-rpi4`` models a Raspberry Pi 4: RAM from 0 with the firmware's GPU carve-out
    ending the first range at 0x3b400000, then [1 GiB, 0xfc000000) and RAM above 4 GiB
    on 8 GiB boards; ``ZONE_DMA`` is the first GiB (``zone_dma_bits`` = 30), ``ZONE_DMA32``
    up to 4 GiB.  The pool is placed top-down below 1 GiB; that placement is not
    calibrated on a real board.
    """
    if arch not in ARCHES:
        raise ValueError(f"arch: unknown architecture preset {arch!r}; choose one of {', '.join(ARCHES)}")
    if not isinstance(ram_bytes, int) or ram_bytes < 64 * MiB or ram_bytes > (1 << 50):
        raise ValueError(f"ram: must be between 64M and 1024T, got {ram_bytes!r}")
    if arch == "x86_64":
        lowmem = 0xC0000000 if ram_bytes >= 0xE0000000 else ram_bytes
        high = ram_bytes - lowmem
        ram = [(0, 0x9FC00), (0x100000, lowmem - 0x23000)]
        if high:
            ram.append((1 << 32, (1 << 32) + high))
        reserved = [(0x9FC00, 0xA0000), (0xF0000, 0x100000), (lowmem - 0x23000, lowmem),
                    (0xFFFC0000, 1 << 32), (0xFD00000000, 0x10000000000)]
        top_ram = ram[-1][1]
        zones = [Zone("DMA", 0x1000, 16 * MiB), Zone("DMA32", 16 * MiB, min(top_ram, 1 << 32))]
        if high:
            zones.append(Zone("Normal", 1 << 32, top_ram))
        if high:
            early = lowmem - 0x23000 - (0x10E000 if calibration == "6.12" else 0x11B000)
        else:
            early = (lowmem - 3 * MiB - (18 * MiB * ram_bytes) // GiB) & ~(MiB - 1)
        # memblock_alloc (SWIOTLB_ANY) takes from the top of all RAM, below the early
        # allocations that went there; modelled with the same small reservation.
        any_top = (top_ram - 0x10E000) if high else early
        return MemoryLayout(arch, ram_bytes, ram, reserved, zones,
                            low_limit=1 << 32, early_top=early, any_top=any_top,
                            notes=["x86_64: QEMU pc layout, pool placement calibrated on Debian 6.12/6.1 boots"])
    if arch == "arm64-board":
        base = 0x40000000
        top = base + ram_bytes
        dma_end = min(top, base + 256 * MiB)
        zones = [Zone("DMA", base, dma_end)]
        if top > dma_end:
            zones.append(Zone("DMA32", dma_end, min(top, 1 << 32)))
        if top > 1 << 32:
            zones.append(Zone("Normal", 1 << 32, top))
        return MemoryLayout(arch, ram_bytes, [(base, top)], [], zones, low_limit=dma_end,
                            early_top=dma_end - 8 * MiB, any_top=top - 8 * MiB,
                            notes=["arm64-board: generic SoC, DMA window 256 MiB; not calibrated"])
    # arm64-rpi4
    first_end = 0x3B400000
    ram = [(0, min(first_end, ram_bytes))]
    rest = ram_bytes - GiB
    if rest > 0:
        ram.append((GiB, GiB + min(rest, 0xFC000000 - GiB)))
        if rest > 0xFC000000 - GiB:
            extra = ram_bytes - 4 * GiB
            if extra > 0:
                ram.append((4 * GiB, 4 * GiB + extra))
    top_ram = ram[-1][1]
    zones = [Zone("DMA", 0, min(GiB, top_ram)), Zone("DMA32", GiB, min(top_ram, 4 * GiB))]
    if top_ram > 4 * GiB:
        zones.append(Zone("Normal", 4 * GiB, top_ram))
    zones = [z for z in zones if z.start < z.end]
    early = ram[0][1] - 16 * MiB
    return MemoryLayout(arch, ram_bytes, ram, [(first_end, GiB)] if ram_bytes > first_end else [],
                        zones, low_limit=GiB, early_top=early, any_top=top_ram - 16 * MiB,
                        notes=["arm64-rpi4: pool placement not calibrated on a real board"])
