"""Devices as the DMA layer sees them: masks, bus limits, alignment and segment rules.

Models the DMA-relevant parts of ``struct device`` and ``struct device_dma_parameters``
(``include/linux/device.h``, ``include/linux/dma-mapping.h``) that are the same in every
kernel version modelled (v6.3-rc to v6.11), plus presets for the devices the book uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .constants import U32, U64, ULONG_MAX


#: Default ``dma_get_max_seg_size()`` when a driver sets no ``dma_parms`` (64 KiB).
DEFAULT_MAX_SEG_SIZE = 0x10000


def DMA_BIT_MASK(n: int) -> int:
    """``DMA_BIT_MASK(n)`` (``include/linux/dma-mapping.h``, v6.3-rc to v6.11): ``2**n - 1``,
    all ones for ``n == 64``.

    ``n`` must be an integer from 1 to 64 (the kernel macro is undefined outside).
    """
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 64:
        raise ValueError(f"n: DMA_BIT_MASK takes an integer from 1 to 64, got {n!r}")
    return U64 if n == 64 else (1 << n) - 1


def _is_low_mask(v: int) -> bool:
    """True for masks of the form 2**k - 1 (including 0)."""
    return v & (v + 1) == 0


def _check_u64(name: str, v, *, allow_zero: bool = True) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{name}: must be an integer, got {type(v).__name__}")
    lo = 0 if allow_zero else 1
    if not lo <= v <= U64:
        raise ValueError(f"{name}: must be in {lo:#x}..{U64:#x}, got {v:#x}" if v >= 0
                         else f"{name}: must be in {lo:#x}..{U64:#x}, got {v}")
    return v


@dataclass
class Device:
    """A DMA-capable device (``struct device`` plus ``dma_parms``).

    ``dma_mask`` and ``coherent_dma_mask`` are ``DMA_BIT_MASK``-style masks;
    ``bus_dma_limit`` is the interconnect's limit (0 = none), as set from device-tree
    ``dma-ranges``; ``min_align_mask`` is ``dma_set_min_align_mask()`` (NVMe: 0xfff);
    ``seg_boundary_mask`` 0 means unset (``ULONG_MAX``); ``max_seg_size`` is
    ``dma_get_max_seg_size()``.  ``driver`` prefixes ``dev_warn`` lines like the kernel's
    ``"<driver> <name>: "``.

    The swiotlb fields of ``struct device`` (``dma_io_tlb_mem``, ``dma_io_tlb_pools``,
    ``dma_uses_io_tlb``, v6.6+) are kept here too, as in the kernel.
    """

    name: str
    dma_mask: int = U64
    coherent_dma_mask: int | None = None
    bus_dma_limit: int = 0
    min_align_mask: int = 0
    seg_boundary_mask: int = 0
    max_seg_size: int = DEFAULT_MAX_SEG_SIZE
    driver: str = ""
    dma_coherent: bool = True
    #: per-device swiotlb state (``swiotlb_dev_init``, v6.6+)
    dma_io_tlb_mem: object | None = field(default=None, repr=False, compare=False)
    dma_io_tlb_pools: list = field(default_factory=list, repr=False, compare=False)
    dma_uses_io_tlb: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("name: a device needs a non-empty name")
        _check_u64("dma_mask", self.dma_mask, allow_zero=False)
        if not _is_low_mask(self.dma_mask):
            raise ValueError(f"dma_mask: must be of the form 2**n - 1 (DMA_BIT_MASK), got {self.dma_mask:#x}")
        if self.coherent_dma_mask is None:
            self.coherent_dma_mask = self.dma_mask
        _check_u64("coherent_dma_mask", self.coherent_dma_mask, allow_zero=False)
        _check_u64("bus_dma_limit", self.bus_dma_limit)
        _check_u64("min_align_mask", self.min_align_mask)
        if self.min_align_mask > U32 or not _is_low_mask(self.min_align_mask):
            raise ValueError("min_align_mask: must be 2**n - 1 and fit in 32 bits "
                             f"(0 .. 0xffffffff), got {self.min_align_mask:#x}")
        _check_u64("seg_boundary_mask", self.seg_boundary_mask)
        if not _is_low_mask(self.seg_boundary_mask):
            raise ValueError(f"seg_boundary_mask: must be 2**n - 1 (or 0 = unset), got {self.seg_boundary_mask:#x}")
        if not isinstance(self.max_seg_size, int) or not 1 <= self.max_seg_size <= U32:
            raise ValueError(f"max_seg_size: must be in 1..{U32:#x}, got {self.max_seg_size!r}")

    @property
    def dev_name(self) -> str:
        """The prefix ``dev_warn()`` prints: ``"<driver> <name>"`` or just the name."""
        return f"{self.driver} {self.name}" if self.driver else self.name

    def __setattr__(self, name, value) -> None:
        object.__setattr__(self, name, value)
        if name in ("dma_mask", "bus_dma_limit", "seg_boundary_mask"):
            # derived values the mapping path reads on every call, kept current (read with
            # getattr, not through __dict__, which would cost every later attribute load
            # its fast path)
            b = getattr(self, "seg_boundary_mask", None)
            if b is not None:
                object.__setattr__(self, "seg_boundary", b or ULONG_MAX)
            m = getattr(self, "dma_mask", None)
            b = getattr(self, "bus_dma_limit", None)
            if m is not None and b is not None:
                object.__setattr__(self, "reach", min(m, b) if b else m)

    @property
    def coherent_reach(self) -> int:
        """The highest address for coherent allocations: ``min_not_zero(coherent_dma_mask,
        bus_dma_limit)``, as ``dma_direct_optimal_gfp_mask()`` (``kernel/dma/direct.c``,
        v6.3-rc) picks the zone from."""
        b = self.bus_dma_limit
        return min(self.coherent_dma_mask, b) if b else self.coherent_dma_mask

    # ``seg_boundary``: ``dma_get_seg_boundary()``, ``ULONG_MAX`` when unset.
    # ``reach``: the highest DMA address for streaming DMA, ``min_not_zero(*dma_mask,
    # bus_dma_limit)``.  Both are plain attributes recomputed by ``__setattr__``.


# ---------------------------------------------------------------- presets ---------

def nvme(name: str = "0000:01:00.0") -> Device:
    """An NVMe SSD: 64-bit DMA, ``min_align_mask`` 0xfff (``nvme_probe`` sets
    ``dma_set_min_align_mask(dev, NVME_CTRL_PAGE_SIZE - 1)``), 4 GiB segment boundary."""
    return Device(name, dma_mask=U64, min_align_mask=0xFFF, seg_boundary_mask=0xFFFFFFFF,
                  max_seg_size=0xFFFFFFFF, driver="nvme")


def pci32(name: str = "0000:02:00.0") -> Device:
    """A legacy PCI device limited to 32-bit DMA addresses (``DMA_BIT_MASK(32)``)."""
    return Device(name, dma_mask=DMA_BIT_MASK(32), seg_boundary_mask=0xFFFFFFFF, driver="pci32")


def rpi4_vc4(name: str = "gpu") -> Device:
    """Raspberry Pi 4 display block (vc4-drm): behind a bus limited to 1 GiB, no IOMMU.

    The RFC cover letter describes "a bus with an address limit of 1 GiB"; the limit is
    modelled as ``bus_dma_limit = 0x3fffffff``: the ``soc`` node's ``dma-ranges`` in
    ``arch/arm/boot/dts/broadcom/bcm2711.dtsi@d5984d29afdb`` maps only the first 1 GiB, and
    Pi 4 kernel logs show ``bus mask 3fffffff`` for such mappings
    (https://github.com/raspberrypi/linux/issues/3416).
    """
    return Device(name, dma_mask=DMA_BIT_MASK(32), bus_dma_limit=0x3FFFFFFF, driver="vc4-drm",
                  max_seg_size=0xFFFFFFFF)


def rpi4_v3d(name: str = "fec00000.v3d") -> Device:
    """Raspberry Pi 4 render GPU (v3d): reaches all memory (RFC cover letter)."""
    return Device(name, dma_mask=U64, driver="v3d", max_seg_size=0xFFFFFFFF)


def virtio_blk(name: str = "0000:00:02.0") -> Device:
    """A virtio-blk PCI device with ``VIRTIO_F_ACCESS_PLATFORM`` (uses the DMA API), as in
    the QEMU boots of ``data/realkernel/boots.jsonl`` (its dev_warn prefix is ``virtio-pci``)."""
    return Device(name, dma_mask=U64, driver="virtio-pci", max_seg_size=0xFFFFFFFF)


def virtio_coco(name: str = "0000:00:03.0") -> Device:
    """A virtio device in a confidential guest: 64-bit DMA, but every mapping bounces
    because guest memory is encrypted and the pool is the shared (decrypted) window."""
    return Device(name, dma_mask=U64, driver="virtio-pci", max_seg_size=0xFFFFFFFF)


PRESETS = {
    "nvme": nvme,
    "pci32": pci32,
    "rpi4-vc4": rpi4_vc4,
    "rpi4-v3d": rpi4_v3d,
    "virtio-blk": virtio_blk,
    "virtio-coco": virtio_coco,
}


def preset(kind: str, name: str | None = None) -> Device:
    """Build a preset device by kind (see :data:`PRESETS`)."""
    try:
        factory = PRESETS[kind]
    except KeyError:
        raise ValueError(f"kind: unknown device preset {kind!r}; choose one of {', '.join(PRESETS)}") from None
    return factory() if name is None else factory(name)
