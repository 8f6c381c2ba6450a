"""Kernel profiles: the few rules in which SWIOTLB versions differ.

One allocator (:mod:`swiotlb_lib.pool`) serves every version; a :class:`KernelProfile`
tells it which rule to apply.  Each field names the kernel commit that introduced the
behaviour it selects.

========== ===================================================================
profile    what it models
========== ===================================================================
``v6.3rc`` ``kernel/dma/swiotlb.c`` at 7c3940bf81e5 (the tree the RFC was
           written against, before the 6.3-rc alignment rework)
``v6.3``   the v6.3 release: 0eee5ae10256 + bbb73a103fbb alignment rules
           (file read at 0459ff487373)
``v6.6``   v6.6 (d069ed288ac7), ``io_tlb_pool`` split, built without
           ``CONFIG_SWIOTLB_DYNAMIC`` as distributions ship it
``v6.11``  v6.11-rc1 (afd81d914f6f): 6.9 alignment fixes (04867a7a3332),
           pre-padding slots (af133562d5af), tail cap (53c87e846e33);
           the default, and what Debian's 6.12 kernel does
========== ===================================================================

Profiles with dynamic bounce buffers (their mechanics are in :mod:`swiotlb_lib.dynamic`):

================= ================================================================
``rfc-v1``        Petr Tesarik's RFC v1 (20 March 2023) on the ``v6.3rc`` base
``v6.6-dynamic``  v6.6 built with ``CONFIG_SWIOTLB_DYNAMIC=y``
``v6.11-dynamic`` v6.11 built with ``CONFIG_SWIOTLB_DYNAMIC=y``
================= ================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, replace

#: Alignment rule families.
ALIGN_V63RC = "v6.3rc"   # stride from min_align (doubled for >= PAGE_SIZE), start index rounded up
ALIGN_V63 = "v6.3"       # one mask compared against orig's bits (0eee5ae10256 + bbb73a103fbb)
ALIGN_V69 = "v6.9"       # alloc_align bits must be zero, min_align compared (04867a7a3332, af133562d5af)


@dataclass(frozen=True)
class KernelProfile:
    """Version-specific policy for the allocator and the mapping path.

    Attributes mirror the places where ``kernel/dma/swiotlb.c`` changed between the
    versions modelled; see the module docstring for commits.
    """

    name: str
    #: alignment rule family used by the per-area search.
    align_rule: str
    #: v6.11: initial free counts capped at the pool tail (``min(128 - i%128, nslabs - i)``,
    #: 53c87e846e33).  Without it a request can run past the end of a pool whose size is
    #: not a multiple of 128 slots.
    tail_cap: bool
    #: v6.9+: leading padding slots for ``alloc_align_mask`` (af133562d5af), the size
    #: rounded up to the alignment, and ``sz`` in the "buffer is full" line includes them.
    pad_slots: bool
    #: debugfs ``io_tlb_used_hiwater`` exists (6.4+, Michael Kelley).
    has_hiwater: bool
    #: ``limit_nareas()``: at most one area per 128 slots (6.6 dynamic series, 1aaa736815eb).
    limit_nareas: bool = True
    #: ``CONFIG_SWIOTLB_DYNAMIC``-style growth: None, "v6.6", "v6.11" or "rfc-v1".
    dynamic: str | None = None
    #: RFC v1 patch 4/4: ``swiotlb=`` takes an option list (force, noforce, dynamic).
    option_list: bool = False
    #: one line for listings.
    description: str = ""

    @property
    def is_dynamic(self) -> bool:
        return self.dynamic is not None

    def with_name(self, name: str, **changes) -> "KernelProfile":
        return replace(self, name=name, **changes)


PROFILES: dict[str, KernelProfile] = {
    "v6.3rc": KernelProfile(
        "v6.3rc", ALIGN_V63RC, tail_cap=False, pad_slots=False, has_hiwater=False,
        limit_nareas=False, description="v6.3-rc (7c3940bf81e5): the RFC v1 base"),
    "v6.3": KernelProfile(
        "v6.3", ALIGN_V63, tail_cap=False, pad_slots=False, has_hiwater=False,
        limit_nareas=False, description="v6.3 release (0459ff487373)"),
    "v6.6": KernelProfile(
        "v6.6", ALIGN_V63, tail_cap=False, pad_slots=False, has_hiwater=True,
        description="v6.6 (d069ed288ac7), CONFIG_SWIOTLB_DYNAMIC=n"),
    "v6.11": KernelProfile(
        "v6.11", ALIGN_V69, tail_cap=True, pad_slots=True, has_hiwater=True,
        description="v6.11 (afd81d914f6f), current mainline behaviour"),
}

PROFILES["rfc-v1"] = PROFILES["v6.3rc"].with_name(
    "rfc-v1", dynamic="rfc-v1", option_list=True,
    description="RFC v1 (cover.1679309810.git.petr.tesarik.ext@huawei.com) on v6.3-rc; "
                "dynamic buffers with swiotlb=dynamic")
PROFILES["v6.6-dynamic"] = PROFILES["v6.6"].with_name(
    "v6.6-dynamic", dynamic="v6.6", description="v6.6 with CONFIG_SWIOTLB_DYNAMIC=y (1aaa736815eb)")
PROFILES["v6.11-dynamic"] = PROFILES["v6.11"].with_name(
    "v6.11-dynamic", dynamic="v6.11",
    description="v6.11 with CONFIG_SWIOTLB_DYNAMIC=y: area-major search across pools (55c543865b76)")

#: The profile used when none is named: current mainline behaviour.
DEFAULT_PROFILE = "v6.11"


def get_profile(name: str | KernelProfile | None = None) -> KernelProfile:
    """Return the profile called ``name`` (default :data:`DEFAULT_PROFILE`).

    Raises ``ValueError`` naming the parameter and the known profiles.
    """
    if isinstance(name, KernelProfile):
        return name
    if name is None:
        name = DEFAULT_PROFILE
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"kernel: unknown profile {name!r}; choose one of {', '.join(sorted(PROFILES))}"
        ) from None
