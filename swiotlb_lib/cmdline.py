"""The ``swiotlb=`` kernel parameter and the boot-time sizing state it feeds.

Models, for v6.3-rc to v6.11 (the parser did not change): ``setup_io_tlb_npages``
(``early_param("swiotlb", ...)``), ``swiotlb_adjust_nareas``,
``round_up_default_nslabs``, ``swiotlb_adjust_size`` and the static variables they
share (``default_nslabs``, ``default_nareas``, ``swiotlb_force_bounce``,
``swiotlb_force_disable``), as read in ``kernel/dma/swiotlb.c`` at 7c3940bf81e5 and
afd81d914f6f.  The log lines they print go to a :class:`~swiotlb_lib.debug.KernelLog`;
what the kernel silently ignores is reported in ``warnings``, outside the kernel log.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .constants import IO_TLB_DEFAULT_NSLABS, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE, U64
from .debug import KernelLog

#: The model refuses more areas than this (a kernel would try, and fail to allocate).
MAX_MODEL_NAREAS = 1 << 16


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def is_power_of_2(n: int) -> bool:
    """``is_power_of_2()`` (``include/linux/log2.h``, v6.3-rc to v6.11): false for 0."""
    return n > 0 and n & (n - 1) == 0


def roundup_pow_of_two(n: int) -> int:
    """``roundup_pow_of_two()`` (``include/linux/log2.h``, v6.3-rc to v6.11); the model
    gives 1 for ``n <= 1`` (the kernel macro is undefined for 0)."""
    return 1 << (n - 1).bit_length() if n > 1 else 1


def simple_strtoul(s: str, base: int = 0) -> tuple[int, str]:
    """``simple_strtoul(s, &end, 0)`` (``lib/vsprintf.c``, v6.3-rc to v6.11): leading
    ``0x`` means hex, a leading ``0`` octal, otherwise decimal; parsing stops at the first
    character that is not a digit of the base.  Returns ``(value mod 2**64, rest)``."""
    i = 0
    if base == 0:
        if s[:1] == "0" and s[1:2] in ("x", "X") and s[2:3] and s[2] in "0123456789abcdefABCDEF":
            base, i = 16, 2
        elif s[:1] == "0":
            base = 8
        else:
            base = 10
    digits = "0123456789abcdef"[:base]
    v = 0
    while i < len(s) and s[i].lower() in digits:
        v = (v * base + digits.index(s[i].lower())) & U64
        i += 1
    return v, s[i:]


def split_cmdline(cmdline: str) -> list[tuple[str, str | None]]:
    """Split a kernel command line into ``(param, value)`` pairs like ``next_arg()``
    (``lib/cmdline.c``, v6.3-rc to v6.11): words separated by spaces, double quotes
    group, ``=`` separates the value."""
    if not isinstance(cmdline, str):
        raise TypeError(f"cmdline: must be a string, got {type(cmdline).__name__}")
    out, word, quoted = [], [], False
    for ch in cmdline + " ":
        if ch == '"':
            quoted = not quoted
            continue
        if ch.isspace() and not quoted:
            if word:
                w = "".join(word)
                k, eq, v = w.partition("=")
                out.append((k, v if eq else None))
                word = []
            continue
        word.append(ch)
    return out


@dataclass
class SwiotlbSetup:
    """The boot-time sizing state in ``kernel/dma/swiotlb.c``, v6.3-rc to v6.11 (its
    file-static ``default_nslabs``, ``default_nareas``, ``swiotlb_force_bounce``,
    ``swiotlb_force_disable``)."""

    log: KernelLog = field(default_factory=KernelLog)
    default_nslabs: int = IO_TLB_DEFAULT_NSLABS
    default_nareas: int = 0
    force_bounce: bool = False
    force_disable: bool = False
    #: what the kernel ignored or rounded without saying so (not kernel log lines)
    warnings: list = field(default_factory=list)
    #: the user gave a size (``swiotlb=<nslabs>``)
    user_size: bool = False
    #: RFC v1 patch 4/4: parse an option list after the numbers; ``dynamic`` is one option
    option_list: bool = False
    dynamic: bool = False

    def round_up_default_nslabs(self) -> bool:
        """``round_up_default_nslabs()`` (v6.3-rc to v6.11): at least 128 slots per area,
        and a power of two.  Returns whether it changed the size (only once the area
        count is known)."""
        if not self.default_nareas:
            return False
        if self.default_nslabs < IO_TLB_SEGSIZE * self.default_nareas:
            self.default_nslabs = IO_TLB_SEGSIZE * self.default_nareas
        elif is_power_of_2(self.default_nslabs):
            return False
        self.default_nslabs = roundup_pow_of_two(self.default_nslabs)
        return True

    def adjust_nareas(self, nareas: int) -> None:
        """``swiotlb_adjust_nareas()`` (v6.3-rc to v6.11): 0 means 1, others round up to a
        power of two; prints ``area num N.`` and, if the size had to grow, the ``roundup``
        line."""
        nareas &= 0xFFFFFFFF          # the kernel parameter is an unsigned int
        if not nareas:
            nareas = 1
        elif not is_power_of_2(nareas):
            nareas = roundup_pow_of_two(nareas)
        if nareas > MAX_MODEL_NAREAS:
            raise ValueError(f"cmdline: swiotlb= area count {nareas} is beyond what the model "
                             f"simulates (1..{MAX_MODEL_NAREAS})")
        self.default_nareas = nareas
        self.log.info(f"area num {nareas}.")
        if self.round_up_default_nslabs():
            self.log.info(f"SWIOTLB bounce buffer size roundup to "
                          f"{(self.default_nslabs << IO_TLB_SHIFT) >> 20}MB")

    def setup_io_tlb_npages(self, value: str | None) -> None:
        """``setup_io_tlb_npages()`` (v6.3-rc to v6.11; with ``option_list``, RFC v1 patch
        4/4): ``swiotlb=[<nslabs>][,<nareas>][,force|noforce]``.

        ``<nslabs>`` is rounded up to a multiple of 128; ``<nareas>`` goes through
        :meth:`adjust_nareas` at once; the rest must be exactly ``force`` or ``noforce``
        and anything else is ignored without a word (noted in ``warnings``).
        """
        s = value or ""
        if value is None:
            self.warnings.append("swiotlb: parameter without a value is ignored")
            return
        if s[:1].isdigit():
            n, rest = simple_strtoul(s)
            aligned = _align(n, IO_TLB_SEGSIZE) & U64
            if aligned != n:
                self.warnings.append(f"swiotlb={value}: {n} slots rounded up to {aligned} "
                                     f"(a multiple of {IO_TLB_SEGSIZE})")
            self.default_nslabs = aligned
            self.user_size = True
            s = rest
        if s[:1] == ",":
            s = s[1:]
        if s[:1].isdigit():
            n, s = simple_strtoul(s)
            self.adjust_nareas(n)
        if s[:1] == ",":
            s = s[1:]
        if self.option_list:
            # RFC v1 4/4: strsep() on commas; each token force, noforce or dynamic
            while s:
                opt, _, s = s.partition(",")
                if opt == "force":
                    self.force_bounce = True
                elif opt == "noforce":
                    self.force_disable = True
                elif opt == "dynamic":
                    self.dynamic = True
                else:
                    self.log.warn(f"Invalid swiotlb option: {opt}")
            return
        if s == "force":
            self.force_bounce = True
        elif s == "noforce":
            self.force_disable = True
        elif s:
            self.warnings.append(f"swiotlb={value}: {s!r} ignored (only 'force' or 'noforce' "
                                 "may follow the numbers)")

    def adjust_size(self, size: int) -> None:
        """``swiotlb_adjust_size()`` (v6.3-rc to v6.11; memory-encryption sizing): ignored
        when the user set a size; otherwise round to slots and segments, apply the area
        rounding if the area count is known, and print ``adjusted to``."""
        if self.default_nslabs != IO_TLB_DEFAULT_NSLABS:
            return
        size = _align(size, IO_TLB_SIZE)
        self.default_nslabs = _align(size >> IO_TLB_SHIFT, IO_TLB_SEGSIZE)
        if self.round_up_default_nslabs():
            size = self.default_nslabs << IO_TLB_SHIFT
        self.log.info(f"SWIOTLB bounce buffer size adjusted to {size >> 20}MB")

    def parse(self, cmdline: str) -> "SwiotlbSetup":
        """Apply every ``swiotlb=`` of a command line in order, as ``parse_early_param()`` ->
        ``do_early_param()`` (``init/main.c``, v6.3-rc to v6.11)."""
        for key, val in split_cmdline(cmdline):
            if key == "swiotlb":
                self.setup_io_tlb_npages(val)
        return self


def parse_swiotlb(value: str, option_list: bool = False) -> SwiotlbSetup:
    """Parse one ``swiotlb=`` value with ``setup_io_tlb_npages()`` (v6.3-rc to v6.11) on a
    fresh state (for tables and widgets); ``option_list=True`` uses the RFC v1 parser."""
    st = SwiotlbSetup(option_list=option_list)
    st.setup_io_tlb_npages(value)
    return st
