"""Kernel profiles: the few rules in which SWIOTLB versions differ.

One allocator (:mod:`swiotlb_lib.pool`) serves every version; a :class:`KernelProfile`
tells it which rule to apply.  Each field names the kernel commit that introduced the
behaviour it selects.  The commits are those of ``kernel/dma/swiotlb.c`` in torvalds/linux
that the golden vectors of ``data/oracle/`` were computed from (``data/oracle/README.md``).

================= ====================================================================
profile           what it models
================= ====================================================================
``v6.3rc``        ``swiotlb.c@7c3940bf81e5`` ("swiotlb: fix the deadlock in
                  swiotlb_do_find_slots", 6.3-rc): the tree RFC v1 was written against,
                  before the 6.3-rc alignment rework
``v6.3``          ``swiotlb.c@0459ff487373`` ("swiotlb: Remove bounce buffer remapping for
                  Hyper-V"), a 6.4-cycle commit whose base holds every 6.3 allocator fix
                  (0eee5ae10256, bbb73a103fbb); its own change is outside slot allocation
``v6.6``          ``swiotlb.c@d069ed288ac7`` ("swiotlb: optimize get_max_slots()", tip of
                  the 6.6 merge window): ``io_tlb_pool`` split, ``CONFIG_SWIOTLB_DYNAMIC=n``
``v6.11``         ``swiotlb.c@afd81d914f6f`` (merge of dma-mapping-6.11-2024-07-19,
                  6.11-rc1): 6.9 alignment fixes (04867a7a3332), pre-padding slots
                  (af133562d5af), tail cap (53c87e846e33); the default, checked against
                  Debian's 6.12.117 boots (``data/realkernel/``).  Also models 6.12.117
                  (see "6.12" below): no rule it implements changed
================= ====================================================================

Profiles with dynamic bounce buffers (their mechanics are in :mod:`swiotlb_lib.dynamic`):

================= ====================================================================
``rfc-v1``        Petr Tesarik's RFC v1 (20 March 2023,
                  cover.1679309810.git.petr.tesarik.ext@huawei.com) on the ``v6.3rc``
                  base, as intended: PFN tree keys, unmap erases the buffer's range,
                  no dynamic buffers for restricted pools (as patch 4/4's commit
                  message says)
``rfc-v1-posted`` the same patches as posted: ``xa_mk_value(pfn)`` keys with the range
                  arithmetic on tagged keys (an n-page buffer covers ceil(n/2) pages),
                  ``mtree_erase()`` at the index ``mt_find()`` advanced past the buffer
                  (the range stays, pointing at the freed descriptor), ``allow_dyn``
                  set for restricted pools too (patch 4/4 sets it in
                  ``swiotlb_init_io_tlb_mem()``, which ``rmem_swiotlb_device_init()``
                  calls)
``v6.6-dynamic``  ``v6.6`` built with ``CONFIG_SWIOTLB_DYNAMIC=y``: growth worker
                  (1aaa736815eb), transient pools (79636caad361) and the
                  ``dma_uses_io_tlb`` flag (1395706a1490) with its 6.6-rc fix
                  (2d5780bbef8d), as in the 6.6 release; read at ``swiotlb.c@009fbfc97b63``
                  (merge of dma-mapping-6.7-2023-10-30, based on 6.6-rc7, whose only
                  swiotlb.c change is a comment; pull ZT-46QZiN8b37Swy@infradead.org)
``v6.11-dynamic`` ``v6.11`` built with ``CONFIG_SWIOTLB_DYNAMIC=y``: area-major search
                  across pools (55c543865b76, 6.8); also models 6.12.117 with that option
                  (``data/realkernel-dynamic/``)
================= ====================================================================

**6.12.**  There is no ``v6.12`` profile because no rule the model implements differs
between ``swiotlb.c@afd81d914f6f`` and Linux 6.12.117 (Debian's ``linux-source-6.12``
``6.12.117-1~deb12u1``, the source of both recorded 6.12 kernels).  Read in that tree:
``kernel/dma/swiotlb.c``: ``swiotlb_find_slots()``, ``swiotlb_search_area()``,
``swiotlb_search_pool_area()``, ``swiotlb_alloc_pool()``, ``swiotlb_dyn_alloc()``,
``limit_nareas()``, ``swiotlb_tbl_map_single()`` (no ``alloc_size`` argument, as in 6.11)
and ``swiotlb_release_slots()``.  The one change on these paths is ``ba0fb44aed47``
("dma-mapping: replace zone_dma_bits by zone_dma_limit", 6.12; series
``cover.1722578375.git.baruch@tkos.co.il``): ``swiotlb_alloc_tlb()`` asks ``__GFP_DMA``
when ``phys_limit <= zone_dma_limit`` instead of ``phys_limit <=
DMA_BIT_MASK(zone_dma_bits)``, and ``swiotlb_init_late()``,
``dma_direct_optimal_gfp_mask()`` (``kernel/dma/direct.c``) and ``cma_in_zone()``
(``kernel/dma/pool.c``) compare the same way.  x86_64 sets neither variable, so
``zone_dma_limit`` keeps its default ``DMA_BIT_MASK(24)`` (``kernel/dma/direct.c``) where
6.11 had ``zone_dma_bits`` 24: the same 16 MiB bound, which
:func:`swiotlb_lib.dynamic.zone_gfp` takes from the end of the model's ZONE_DMA.  The
two rules differ only where ZONE_DMA does not end at a power of two (arm64 since
``3be9b846896d``), which no model machine has.
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
    #: RFC v1 as posted (``rfc-v1-posted``) rather than as intended: see
    #: :class:`swiotlb_lib.dynamic.RfcDynamic`.
    rfc_posted: bool = False
    #: one line for listings.
    description: str = ""
    #: the torvalds/linux commits the profile was read from (the preface's versions table).
    commits: str = ""
    #: how that kernel is configured and booted, for the versions table.
    config: str = ""

    @property
    def is_dynamic(self) -> bool:
        return self.dynamic is not None

    def with_name(self, name: str, **changes) -> "KernelProfile":
        return replace(self, name=name, **changes)


PROFILES: dict[str, KernelProfile] = {
    "v6.3rc": KernelProfile(
        "v6.3rc", ALIGN_V63RC, tail_cap=False, pad_slots=False, has_hiwater=False,
        limit_nareas=False, description="v6.3-rc allocator (swiotlb.c@7c3940bf81e5): the RFC v1 base",
        commits="kernel/dma/swiotlb.c@7c3940bf81e5 (6.3-rc: \"swiotlb: fix the deadlock in "
                "swiotlb_do_find_slots\"), before the alignment rework 0eee5ae10256",
        config="as distributions build it (no dynamic pools exist yet)"),
    "v6.3": KernelProfile(
        "v6.3", ALIGN_V63, tail_cap=False, pad_slots=False, has_hiwater=False,
        limit_nareas=False, description="v6.3 allocator (swiotlb.c@0459ff487373, a 6.4-cycle commit with every 6.3 fix)",
        commits="kernel/dma/swiotlb.c@0459ff487373 (6.4 cycle; its base has every 6.3 allocator "
                "fix, 0eee5ae10256 and bbb73a103fbb, and its own change is outside slot allocation)",
        config="as distributions build it; checked against Debian's 6.1.192 boot lines"),
    "v6.6": KernelProfile(
        "v6.6", ALIGN_V63, tail_cap=False, pad_slots=False, has_hiwater=True,
        description="v6.6 allocator (swiotlb.c@d069ed288ac7), CONFIG_SWIOTLB_DYNAMIC=n",
        commits="kernel/dma/swiotlb.c@d069ed288ac7 (\"swiotlb: optimize get_max_slots()\", tip of "
                "the 6.6 merge window; struct io_tlb_pool)",
        config="CONFIG_SWIOTLB_DYNAMIC=n, as distributions ship it"),
    "v6.11": KernelProfile(
        "v6.11", ALIGN_V69, tail_cap=True, pad_slots=True, has_hiwater=True,
        description="v6.11-rc1 allocator (swiotlb.c@afd81d914f6f), as Debian's 6.12.117 runs it",
        commits="kernel/dma/swiotlb.c@afd81d914f6f (merge of dma-mapping-6.11-2024-07-19, 6.11-rc1): "
                "alignment fixes 04867a7a3332 and af133562d5af (6.9), tail cap 53c87e846e33; "
                "also models 6.12.117: its one change on these paths, ba0fb44aed47 (zone_dma_limit "
                "for zone_dma_bits), gives the same 16 MiB ZONE_DMA bound on x86_64",
        config="CONFIG_SWIOTLB_DYNAMIC=n; the default profile"),
}

PROFILES["rfc-v1"] = PROFILES["v6.3rc"].with_name(
    "rfc-v1", dynamic="rfc-v1", option_list=True,
    commits="v6.3rc plus RFC v1 patches 1-4 (cover.1679309810.git.petr.tesarik.ext@huawei.com), "
            "as intended",
    config="swiotlb=dynamic on the command line (patch 4/4)",
    description="RFC v1 as intended (cover.1679309810.git.petr.tesarik.ext@huawei.com) on "
                "v6.3-rc; dynamic buffers with swiotlb=dynamic")
PROFILES["rfc-v1-posted"] = PROFILES["rfc-v1"].with_name(
    "rfc-v1-posted", rfc_posted=True,
    commits="v6.3rc plus RFC v1 patches 1-4 (cover.1679309810.git.petr.tesarik.ext@huawei.com), "
            "as posted; maple tree semantics of lib/maple_tree.c (mt_find, mtree_erase, "
            "mtree_store_range) as in 6.1/6.3",
    description="RFC v1 as posted: xa_mk_value() keys cover half of each buffer, unmap erases "
                "past the buffer (stale entries to freed descriptors), swiotlb=dynamic reaches "
                "restricted pools")
PROFILES["v6.6-dynamic"] = PROFILES["v6.6"].with_name(
    "v6.6-dynamic", dynamic="v6.6",
    commits="v6.6 plus the 6.6 release's dynamic code: 1aaa736815eb (growth), 79636caad361 "
            "(transient pools), 1395706a1490 with its 6.6-rc fix 2d5780bbef8d (dma_uses_io_tlb); "
            "read at kernel/dma/swiotlb.c@009fbfc97b63 (merge of dma-mapping-6.7-2023-10-30 on "
            "6.6-rc7, whose only swiotlb.c change is a comment)",
    config="CONFIG_SWIOTLB_DYNAMIC=y",
    description="v6.6 with CONFIG_SWIOTLB_DYNAMIC=y: 6.6 release growth, transient pools, "
                                "dma_uses_io_tlb (read at 009fbfc97b63)")
PROFILES["v6.11-dynamic"] = PROFILES["v6.11"].with_name(
    "v6.11-dynamic", dynamic="v6.11",
    commits="v6.11 plus its dynamic code: area-major search across pools 55c543865b76 (6.8); "
            "also models 6.12.117 with CONFIG_SWIOTLB_DYNAMIC=y (data/realkernel-dynamic/): "
            "swiotlb_alloc_tlb()'s zone test became phys_limit <= zone_dma_limit (ba0fb44aed47), "
            "the same bound on x86_64",
    config="CONFIG_SWIOTLB_DYNAMIC=y",
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


def versions_table() -> list[tuple[str, str, str, str]]:
    """One row per profile: name, kernel commits, what it models, configuration."""
    return [(p.name, p.commits, p.description, p.config) for p in PROFILES.values()]
