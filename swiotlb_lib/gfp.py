"""The ``gfp_t`` flags and the argument checks shared by the three memory allocators of
the model: the buddy allocator (:mod:`swiotlb_lib.page_alloc`), CMA
(:mod:`swiotlb_lib.contiguous`) and the atomic pools (:mod:`swiotlb_lib.atomic_pool`).

* :class:`Gfp` and the ``GFP_*`` masks -- ``include/linux/gfp_types.h`` (6.6 bit values).
* :func:`gfpflags_allow_blocking` (``include/linux/gfp.h``) and :func:`get_order`
  (``include/asm-generic/getorder.h``), as in Linux 6.6.
* the argument checks: every bad argument raises ``ValueError`` naming the parameter and
  its allowed range.

The page allocator re-exports the GFP names, so ``from swiotlb_lib.page_alloc import
GFP_KERNEL`` works as well; what a gfp mask *does* (zone choice, watermark reserves,
reclaim) is modelled there.
"""
from __future__ import annotations

from functools import partial

import enum

from .checks import check_int as check_int_any, is_int
from .constants import PAGE_SHIFT, PAGE_SIZE, ULONG_MAX

__all__ = ["Gfp", "GFP_KERNEL", "GFP_NOWAIT", "GFP_ATOMIC", "GFP_NOIO", "GFP_NOFS", "GFP_DMA",
           "GFP_DMA32", "GFP_ZONEMASK", "GFP_KNOWN", "RESERVED_OWNER", "POOL_OWNER",
           "gfpflags_allow_blocking", "get_order", "is_int", "check_int", "check_gfp", "check_limit",
           "check_owner", "check_paddr"]

#: Owners the allocators themselves use; callers may not claim them.
RESERVED_OWNER = "reserved"
POOL_OWNER = "atomic-pool"


class Gfp(enum.IntFlag):
    """The ``gfp_t`` bits that matter to the model, with their Linux 6.6 values
    (``include/linux/gfp_types.h``; 0x200 has been unused since ``__GFP_ATOMIC`` went
    in 6.3)."""

    DMA = 0x01
    HIGHMEM = 0x02          # no highmem on 64-bit: behaves like no zone modifier
    DMA32 = 0x04
    ATOMIC_HIGH = 0x20      # __GFP_HIGH: may dip into the min reserve
    IO = 0x40
    FS = 0x80
    ZERO = 0x100
    DIRECT_RECLAIM = 0x400
    KSWAPD_RECLAIM = 0x800
    NOWARN = 0x2000
    NORETRY = 0x10000


GFP_DMA = Gfp.DMA
GFP_DMA32 = Gfp.DMA32
GFP_ZONEMASK = Gfp.DMA | Gfp.HIGHMEM | Gfp.DMA32
GFP_KERNEL = Gfp.DIRECT_RECLAIM | Gfp.KSWAPD_RECLAIM | Gfp.IO | Gfp.FS
GFP_NOWAIT = Gfp.KSWAPD_RECLAIM
GFP_ATOMIC = Gfp.ATOMIC_HIGH | Gfp.KSWAPD_RECLAIM
GFP_NOIO = GFP_KERNEL & ~(Gfp.IO | Gfp.FS)
GFP_NOFS = GFP_KERNEL & ~Gfp.FS
#: Every bit the model knows, as a plain int.
GFP_KNOWN = 0
for _bit in Gfp:
    GFP_KNOWN |= int(_bit)
# plain-int copies (flag arithmetic on ints is several times faster than on IntFlag members)
_DMA, _HIGHMEM, _DMA32 = int(Gfp.DMA), int(Gfp.HIGHMEM), int(Gfp.DMA32)
_ZONEMASK = int(GFP_ZONEMASK)
_DIRECT = int(Gfp.DIRECT_RECLAIM)


#: The page allocator's integer check: ranges and wrong values in hex.
check_int = partial(check_int_any, hexadecimal=True)


#: Masks already validated, as plain ints (keyed by the mask; ``Gfp`` members hash and
#: compare as their int value).  At most one entry per valid combination of known bits.
_GFP_VALID: dict[int, int] = {}


def check_gfp(gfp) -> int:
    """Validate a gfp mask and return it as a plain int (flag arithmetic on ints is
    several times faster than on ``IntFlag`` members)."""
    if type(gfp) is int or type(gfp) is Gfp:      # not bool, not numpy: checked below
        valid = _GFP_VALID.get(gfp)
        if valid is not None:
            return valid
    if type(gfp) is not int:
        if not is_int(gfp):
            raise ValueError(f"gfp: must be a Gfp flag combination (a non-negative integer), got {gfp!r}")
        gfp = int(gfp)
    if gfp < 0 or gfp & ~GFP_KNOWN:
        raise ValueError(f"gfp: unknown bits {gfp & ~GFP_KNOWN if gfp >= 0 else gfp:#x}; allowed bits are "
                         f"{GFP_KNOWN:#x} ({', '.join(b.name for b in Gfp)})")
    if (gfp & _ZONEMASK) not in (0, _DMA, _HIGHMEM, _DMA32):
        raise ValueError(f"gfp: at most one of Gfp.DMA, Gfp.DMA32, Gfp.HIGHMEM may be set "
                         f"(GFP_ZONE_BAD), got {gfp:#x}")
    _GFP_VALID[gfp] = gfp
    return gfp


def check_limit(limit) -> int | None:
    """``limit`` -> one past the highest usable PFN (None: no limit)."""
    if limit is None:
        return None
    limit = check_int("limit", limit, 0, ULONG_MAX)
    return (limit + 1) >> PAGE_SHIFT


def check_owner(owner) -> str:
    """A caller's owner name: a non-empty string other than the allocators' own."""
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner: must be a non-empty string, got {owner!r}")
    if owner in (RESERVED_OWNER, POOL_OWNER):
        raise ValueError(f"owner: {owner!r} is used by the allocator itself; choose another name")
    return owner


def check_paddr(paddr) -> int:
    """A page-aligned physical address."""
    paddr = check_int("paddr", paddr, 0, ULONG_MAX)
    if paddr & (PAGE_SIZE - 1):
        raise ValueError(f"paddr: must be page aligned ({PAGE_SIZE:#x}), got {paddr:#x}")
    return paddr


def gfpflags_allow_blocking(gfp) -> bool:
    """``gfpflags_allow_blocking()``: the caller may sleep (``__GFP_DIRECT_RECLAIM`` set)."""
    return bool(check_gfp(gfp) & _DIRECT)


def get_order(nbytes) -> int:
    """``get_order()``: the smallest order whose block (``PAGE_SIZE << order``) holds
    ``nbytes`` (>= 1); may exceed ``MAX_ORDER``."""
    nbytes = check_int("nbytes", nbytes, 1, ULONG_MAX)
    return ((nbytes - 1) >> PAGE_SHIFT).bit_length()
