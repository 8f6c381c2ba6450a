"""Dynamic bounce buffers: Petr Tesarik's RFC v1 (March 2023) and the design merged in 6.6.

Two hooks plug into :class:`~swiotlb_lib.swiotlb.IoTlbMem` (its ``dyn`` attribute):

:class:`RfcDynamic` -- RFC v1 patches 3/4 and 4/4
    (0334a54332ab75312c9de825548b616439dcc9f5.1679309810.git.petr.tesarik.ext@huawei.com,
    e00c8c576b8ef2fa3cf867ab776cd136a519a835.1679309810.git.petr.tesarik.ext@huawei.com)
    on the v6.3-rc base.  With ``swiotlb=dynamic`` every bounce of at least a page,
    without alignment constraints, is first given its own buffer from
    ``dma_direct_alloc_pages`` (CMA for sleeping callers, the buddy allocator otherwise,
    in the device's coherent reach); ``GFP_KERNEL`` if the caller passed
    ``DMA_ATTR_MAY_SLEEP`` (patch 1/4), else ``GFP_NOWAIT``.  Buffers are tracked in a
    PFN-keyed maple tree (:class:`swiotlb_lib.maple.MapleTree`, whose lookup cost is
    counted in tree levels), freed at unmap, with no size cap.  ``rfc-v1`` is the
    patches as intended, ``rfc-v1-posted`` as posted (tagged keys, the erase after
    ``mt_find()``, ``allow_dyn`` in restricted pools; see the class docstring).  Only if that fails are the fixed
    slots tried.  ``is_swiotlb_buffer`` consults the tree on every unmap and sync of
    every device once dynamic buffers are allowed.

:class:`Grower` -- ``CONFIG_SWIOTLB_DYNAMIC`` as merged for 6.6 (1aaa736815eb,
    79636caad361, 1395706a1490, read at 009fbfc97b63) and as in 6.11 (afd81d914f6f:
    area-major search across pools, 55c543865b76; explicit 256 KiB check).  Pools are
    searched newest first; when all fail, the background worker is kicked (it adds a
    pool of the boot size capped at 4 MiB, halving down to 1 MiB, never freed) and a
    *transient* pool of exactly the request's slots is allocated with ``GFP_NOWAIT``
    in the device's reach, used once and freed at unmap.  ``dma_uses_io_tlb`` lets a
    device that never bounced skip the pool walk on unmap/sync.

Every operation updates deterministic cost counters (:meth:`costs`), which the book
compares instead of wall-clock times.
"""
from __future__ import annotations

from collections import Counter

from .constants import (DMA_ATTR_MAY_SLEEP, DMA_TO_DEVICE, DYNAMIC_POOL_MAX_NSLABS,
                        IO_TLB_MIN_SLABS, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE, MAX_ORDER,
                        PAGE_SHIFT, PAGE_SIZE)
from .debug import PR_FMT
from .maple import MapleTree, xa_mk_value
from .page_alloc import (GFP_KERNEL, GFP_NOWAIT, GFP_ZONEMASK, Gfp, get_order, gfp_zone,
                         gfpflags_allow_blocking)
from .pool import IoTlbPool, limit_nareas, nr_slots, pool_find_slots, search_pool_area
from .swiotlb import BounceBuffer

#: the gfp of a dynamic buffer (``swiotlb_dyn_map``): GFP_KERNEL if the mapping may sleep,
#: else GFP_NOWAIT, both with __GFP_NOWARN (built once: flag arithmetic on Gfp is slow)
DYN_GFP_MAY_SLEEP = GFP_KERNEL | Gfp.NOWARN
DYN_GFP_NOWAIT = GFP_NOWAIT | Gfp.NOWARN



def zone_gfp(pages, phys_limit: int) -> Gfp:
    """The zone modifier for a physical limit, as ``swiotlb_alloc_tlb`` and
    ``dma_direct_optimal_gfp_mask`` choose it: ``__GFP_DMA`` if the limit is inside
    ZONE_DMA, ``__GFP_DMA32`` if below 4 GiB, none otherwise."""
    dma = pages.layout.zone("DMA").end - 1 if any(z.name == "DMA" for z in pages.layout.zones) else 0
    if phys_limit <= dma:
        return Gfp.DMA
    if phys_limit <= 0xFFFFFFFF:
        return Gfp.DMA32
    return Gfp(0)


def gfp_for_limit(pages, gfp, phys_limit: int) -> Gfp:
    """``gfp`` with its zone modifier replaced by the one ``phys_limit`` needs
    (:func:`zone_gfp`): ``gfp &= ~GFP_ZONEMASK; gfp |= ...``, as ``swiotlb_alloc_tlb()``
    (v6.6+) and ``dma_direct_alloc_pages()`` (v6.3-rc) do."""
    return (Gfp(gfp) & ~GFP_ZONEMASK) | zone_gfp(pages, phys_limit)


class _Costs:
    """Deterministic counters shared by the hooks."""

    def __init__(self) -> None:
        self.c = Counter()
        self.page_orders = Counter()


#: :attr:`Grower.only_pool` while following a recorded transient pool: search no pool.
ONLY_TRANSIENT = "transient"


class Grower:
    """``CONFIG_SWIOTLB_DYNAMIC``: growth by pools, transient pools, the worker (6.6/6.11).

    The worker (``swiotlb_dyn_alloc()``, ``kernel/dma/swiotlb.c@afd81d914f6f``) is kicked
    by ``schedule_work()`` at the first mapping that fits in no pool; kicks while it is
    pending are merged; it adds its pool ``worker_delay`` seconds of model time after the
    first kick.  Until then every mapping that fits nowhere gets a transient pool of exactly
    its ``nr_slots()``, one area (``swiotlb_find_slots()``), freed at its unmap
    (``swiotlb_del_transient()``)."""

    #: The model's worker latency for trace replays, in seconds: the median, over the eight
    #: growths of ``data/realkernel-dynamic/`` D1-D3 (Linux 6.12.117), of the time from the
    #: first transient pool allocation after the previous worker pool (``apool`` with
    #: ``gfp=0x2800``, just after the failed search kicked the worker) to the worker's own
    #: ``apool_ret`` (``gfp=0xcc0``): 7.283, 7.714 ms (D1), 9.022, 7.565, 9.326, 13.538 ms
    #: (D2), 12.760, 8.502 ms (D3); median 8.762 ms, range 7.3-13.5 ms.  Measured in
    #: emulated guest time (QEMU TCG, 2 vCPUs): a model parameter, not a property of the
    #: kernel, and as a number it does not carry over to real hardware, where the worker
    #: is scheduled far sooner.
    WORKER_DELAY_TCG = 0.008762

    def __init__(self, mem, pages, *, phys_limit: int, default_nslabs: int, default_nareas: int,
                 flavour: str, worker_delay: float | None = 0.0) -> None:
        if flavour not in ("v6.6", "v6.11"):
            raise ValueError(f"flavour: must be 'v6.6' or 'v6.11', got {flavour!r}")
        self.mem = mem
        self.pages = pages
        self.phys_limit = phys_limit
        self.default_nslabs = default_nslabs
        self.default_nareas = default_nareas
        self.flavour = flavour
        self.can_grow = True
        #: seconds of model time between the kick and the worker's run; None: only when
        #: :meth:`run_pending_work` is called
        self.worker_delay = worker_delay
        self.pending = False
        self.kicked_at = 0.0
        self.costs_ = _Costs()
        self._fail = None
        self.transient_bytes = 0
        self.pool_bytes = 0
        #: following a recording (:mod:`swiotlb_lib.trace.follow_dynamic`): search only this
        #: pool (:data:`ONLY_TRANSIENT`: none, go straight to a transient pool), and put transient
        #: pools at this address instead of asking the page allocator
        self.only_pool = None
        self.transient_at = None

    # -- search ----------------------------------------------------------------------
    def find_slots(self, dev, orig_addr: int, alloc_size: int, alloc_align_mask: int, cpu: int):
        """``swiotlb_find_slots()`` with ``CONFIG_SWIOTLB_DYNAMIC``."""
        c = self.costs_.c
        mem = self.mem
        self._fail = None
        self.tick(mem.log.now)
        mam, bnd = dev.min_align_mask, dev.seg_boundary
        only = self.only_pool
        if only is not None and only is not ONLY_TRANSIENT:
            idx = search_pool_area(only, cpu & (only.nareas - 1), orig_addr, alloc_size,
                                   alloc_align_mask, mam, bnd)   # the kernel's pool, recorded
            if idx >= 0:
                dev.dma_uses_io_tlb = True
            return only, idx
        if only is ONLY_TRANSIENT:
            pass                                        # the kernel's transient pool: no search
        elif self.flavour == "v6.11":
            if alloc_size > IO_TLB_SEGSIZE * IO_TLB_SIZE:
                return None, -1
            for k in range(self.default_nareas):
                for pool in mem.pools:
                    if k >= pool.nareas:
                        continue
                    c["pool_area_searches"] += 1
                    idx = search_pool_area(pool, (cpu + k) & (pool.nareas - 1), orig_addr,
                                           alloc_size, alloc_align_mask, mam, bnd)
                    if idx >= 0:
                        dev.dma_uses_io_tlb = True
                        return pool, idx
        else:
            for pool in mem.pools:
                c["pools_searched"] += 1
                idx = pool_find_slots(pool, dev, orig_addr, alloc_size, alloc_align_mask, cpu)
                if idx >= 0:
                    dev.dma_uses_io_tlb = True
                    return pool, idx
        if not self.can_grow:
            return None, -1
        self.schedule_work()
        n = nr_slots(alloc_size)
        pool = self.alloc_pool(dev, n, n, 1, dev.reach, GFP_NOWAIT | Gfp.NOWARN)
        if pool is None:
            self._fail = "no_memory"
            c["transient_alloc_failed"] += 1
            return None, -1
        idx = search_pool_area(pool, 0, orig_addr, alloc_size, alloc_align_mask, mam, bnd)
        if idx < 0:
            c["transient_search_failed"] += 1
            self.free_pool(pool)
            return None, -1
        pool.transient = True
        dev.dma_io_tlb_pools.insert(0, pool)
        mem.transient_nslabs += pool.nslabs
        c["transient_pools"] += 1
        self.transient_bytes += pool.nslabs << IO_TLB_SHIFT
        dev.dma_uses_io_tlb = True
        return pool, idx

    def failure_cause(self, cause: str) -> str:
        return "no_memory" if self._fail == "no_memory" and cause == "pool_full" else cause

    def before_map(self, *args):
        return None

    # -- pools -----------------------------------------------------------------------
    def alloc_tlb(self, dev, nbytes: int, phys_limit: int, gfp):
        """``swiotlb_alloc_tlb()``: from the atomic coherent pool when a non-blocking
        request must be decrypted (confidential guests), else from the buddy allocator in
        the zone the limit needs.  Returns ``(paddr, how)`` or ``None``."""
        pages = self.pages
        if self.transient_at is not None and dev is not None:
            return self.transient_at, "recorded"        # placed where the recording shows it
        if not gfpflags_allow_blocking(gfp) and dev is not None and self.mem.cc_mem_encrypt:
            p = pages.dma_alloc_from_pool(nbytes, limit=phys_limit)
            return None if p is None else (p, "atomic")
        order = get_order(nbytes)
        if order > MAX_ORDER:
            return None
        # gfp &= ~GFP_ZONEMASK, then the zone the limit needs (swiotlb_alloc_tlb)
        p = pages.alloc_pages(gfp_for_limit(pages, gfp, phys_limit), order,
                              limit=phys_limit, owner="swiotlb-dyn")
        if p is None:
            return None
        self.costs_.page_orders[order] += 1
        return p, order

    def alloc_pool(self, dev, minslabs: int, nslabs: int, nareas: int, phys_limit: int, gfp):
        """``swiotlb_alloc_pool()``: cap at 4 MiB, halve down to ``minslabs`` on failure."""
        if nslabs > DYNAMIC_POOL_MAX_NSLABS:
            nslabs = DYNAMIC_POOL_MAX_NSLABS
            nareas = limit_nareas(nareas, nslabs)
        while True:
            got = self.alloc_tlb(dev, nslabs << IO_TLB_SHIFT, phys_limit, gfp)
            if got is not None:
                break
            if nslabs <= minslabs:
                return None
            nslabs = -(-(nslabs >> 1) // IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE
            nareas = limit_nareas(nareas, nslabs)
        paddr, how = got
        pool = IoTlbPool(paddr, nslabs, max(nareas, 1), self.mem.profile, late_alloc=True,
                         name="dynamic")
        pool.alloc_how = how
        self.mem.memory.fill(pool.start, nslabs << IO_TLB_SHIFT, 0)
        return pool

    def free_pool(self, pool) -> None:
        """``swiotlb_dyn_free()``: give the pool's memory back."""
        how = pool.alloc_how
        if how == "recorded":                           # never taken from the page allocator
            pass
        elif how == "atomic":
            self.pages.dma_free_from_pool(pool.start, pool.nslabs << IO_TLB_SHIFT)
        else:
            self.pages.free_pages(pool.start, how)
        self.costs_.c["slots_examined_freed_pools"] += pool.slots_examined

    def del_transient(self, dev, pool) -> int:
        """``swiotlb_del_transient()``: the whole transient pool goes at unmap."""
        mem = self.mem
        mem.total_used -= pool.nslabs
        dev.dma_io_tlb_pools.remove(pool)
        mem.transient_nslabs -= pool.nslabs
        self.transient_bytes -= pool.nslabs << IO_TLB_SHIFT
        self.free_pool(pool)
        return pool.nslabs

    # -- the worker ------------------------------------------------------------------
    def schedule_work(self) -> None:
        """``schedule_work(&mem->dyn_alloc)``: a no-op while the work is pending."""
        self.costs_.c["worker_kicks"] += 1
        if not self.pending:
            self.pending = True
            self.kicked_at = self.mem.log.now

    def tick(self, now: float) -> None:
        """Run the pending worker if its delay has passed at model time ``now``."""
        if self.pending and self.worker_delay is not None and now - self.kicked_at >= self.worker_delay:
            self.run_pending_work()

    def warn_alloc_failed(self) -> None:
        """``swiotlb_dyn_alloc()``'s ratelimited ``pr_warn`` when the worker could not add a
        pool (also printed by the compiled replay engine, swiotlb_lib/trace/fast.py, after its
        run)."""
        self.mem.log.ratelimited("swiotlb_dyn_alloc", PR_FMT + "Failed to allocate new pool")

    def run_pending_work(self) -> bool:
        """``swiotlb_dyn_alloc()``: add one pool (GFP_KERNEL, may reclaim) or log the failure."""
        if not self.pending:
            return False
        self.pending = False
        c = self.costs_.c
        c["worker_runs"] += 1
        pool = self.alloc_pool(None, IO_TLB_MIN_SLABS, self.default_nslabs, self.default_nareas,
                               self.phys_limit, GFP_KERNEL)
        if pool is None:
            self.warn_alloc_failed()
            c["worker_failures"] += 1
            return False
        self.mem.add_pool(pool)
        self.pool_bytes += pool.nslabs << IO_TLB_SHIFT
        c["pools_added"] += 1
        return True

    def adopt_pool(self, start: int, nslabs: int, nareas: int):
        """Add the worker's pool where a recording shows it (``add_mem_pool()`` of a pool the
        kernel's ``swiotlb_dyn_alloc()`` allocated at ``start``); the model's page allocator
        is not asked (following a recording, :mod:`swiotlb_lib.trace.follow_dynamic`)."""
        pool = IoTlbPool(start, nslabs, nareas, self.mem.profile, late_alloc=True, name="dynamic")
        pool.alloc_how = "recorded"
        self.mem.add_pool(pool)
        self.pool_bytes += nslabs << IO_TLB_SHIFT
        self.costs_.c["pools_added"] += 1
        return pool

    def drop_pool(self, pool) -> None:
        """Undo :meth:`adopt_pool` (a recorded range taken for the worker's pool that later
        events show was not one); the pool must be empty."""
        self.mem.pools.remove(pool)
        self.mem.nslabs -= pool.nslabs
        self.pool_bytes -= pool.nslabs << IO_TLB_SHIFT
        self.costs_.c["pools_added"] -= 1

    # -- lookups -----------------------------------------------------------------------
    def is_swiotlb_buffer(self, dev, paddr: int) -> bool:
        """6.6+ with 1395706a1490 and 2d5780bbef8d: ``dma_uses_io_tlb``, then the walk over
        the allocator's pools and the device's transient pools (each step counted)."""
        c = self.costs_.c
        c["lookups"] += 1
        if not dev.dma_uses_io_tlb:
            return False
        for pool in self.mem.pools:
            c["lookup_steps"] += 1
            if pool.start <= paddr < pool.end:
                return True
        for pool in dev.dma_io_tlb_pools:
            c["lookup_steps"] += 1
            if pool.start <= paddr < pool.end:
                return True
        return False

    def costs(self) -> dict:
        out = dict(self.costs_.c)
        out["page_alloc_orders"] = dict(sorted(self.costs_.page_orders.items()))
        return out

    def bounce_bytes(self) -> int:
        """Memory held for bouncing beyond the boot pool: added pools + transient pools."""
        return self.pool_bytes + self.transient_bytes


class DynSlot:
    """``struct io_tlb_dyn_slot`` (RFC v1 patch 3/4): the ``kmalloc``'d descriptor of one
    dynamic buffer.  ``freed`` is set where the patch calls ``kfree(slot)``, so a tree
    entry left pointing at it can be recognised (the model's use-after-free detector)."""

    __slots__ = ("orig_addr", "alloc_size", "paddr", "nbytes", "how", "freed")

    def __init__(self, orig_addr, alloc_size, paddr, nbytes, how) -> None:
        self.orig_addr, self.alloc_size, self.paddr = orig_addr, alloc_size, paddr
        self.nbytes, self.how, self.freed = nbytes, how, False


class RfcDynamic:
    """RFC v1: a dynamically allocated buffer per bounce, tried before the fixed slots.

    Two readings of the same patches, chosen by the profile's ``rfc_posted`` flag:

    ``rfc-v1`` (as intended)
        tree keys are PFNs, unmap erases the buffer's own range, and ``allow_dyn`` is
        false for restricted pools (``for_alloc``), as the commit message of patch 4/4 says.
    ``rfc-v1-posted`` (as posted)
        keys are ``xa_mk_value(pfn)`` = ``2*pfn + 1`` and the stored range is
        ``[key, key + PFN_UP(size) - 1]``, so an n-page buffer covers the keys of its first
        ceil(n/2) pages; ``swiotlb_dyn_unmap()`` erases at the index ``mt_find()`` advanced
        to (last key + 1), so the buffer's range stays in the tree pointing at the freed
        descriptor; ``allow_dyn`` is set in ``swiotlb_init_io_tlb_mem()``, which
        ``rmem_swiotlb_device_init()`` also calls, so restricted pools get it too.

    Both count what ``dma_direct_alloc_pages()`` does for every buffer: ``zeroed_bytes``
    (the ``memset``), ``decrypt_calls`` / ``encrypt_calls`` (``dma_set_decrypted()`` at
    allocation and ``dma_set_encrypted()`` at free in a confidential guest) and the zone
    picked from ``coherent_dma_mask`` (``dyn_zone_DMA``, ``dyn_zone_DMA32``,
    ``dyn_zone_Normal``).  The tree itself is :class:`swiotlb_lib.maple.MapleTree`.
    """

    def __init__(self, mem, pages, *, allow_dyn: bool) -> None:
        self.mem = mem
        self.pages = pages
        self.posted = bool(getattr(mem.profile, "rfc_posted", False))
        self.allow_dyn = allow_dyn if self.posted else (allow_dyn and not mem.for_alloc)
        self.costs_ = _Costs()
        self.tree = MapleTree()
        self.nlive = 0
        self._fail = None
        self.dyn_bytes = 0
        self.pending = False

    # the maple tree -----------------------------------------------------------------
    def key(self, pfn: int) -> int:
        """The tree index of a PFN: ``xa_mk_value(pfn)`` as posted, the PFN as intended."""
        return xa_mk_value(pfn) if self.posted else pfn

    def _tree_cost(self) -> int:
        """Maple-tree levels walked by ``mt_find`` (16-way range nodes)."""
        n, levels = max(len(self.tree), 1), 1
        while n > 16:
            n = -(-n // 16)
            levels += 1
        return levels

    def _find(self, paddr: int):
        """``swiotlb_dyn_slot()``: ``mt_find(&mem->dyn_slots, &index, index)`` under the lock.
        A hit on a freed descriptor is counted in ``use_after_free_lookups``."""
        c = self.costs_.c
        c["tree_lookups"] += 1
        c["tree_node_visits"] += self._tree_cost()
        c["dyn_lock_acquisitions"] += 1
        index = self.key(paddr >> PAGE_SHIFT)
        slot, advanced = self.tree.mt_find(index, index)
        if slot is not None and slot.freed:
            c["use_after_free_lookups"] += 1
        return slot, advanced

    def erase_index(self, index: int, advanced: int) -> int:
        """Where ``swiotlb_dyn_unmap()`` aims ``mtree_erase()`` after ``mt_find(&index)``: as
        posted at ``advanced`` (``mt_find()`` moved the index past the range it found), as
        intended at the buffer's own key ``index``."""
        return advanced if self.posted else index

    # map -------------------------------------------------------------------------------
    def dma_direct_alloc_pages(self, dev, nbytes: int, gfp):
        """``dma_direct_alloc_pages()`` (v6.3-rc): a restricted pool's own slots
        (``swiotlb_alloc()``) if the allocator is ``for_alloc``; the atomic pool for
        non-blocking decrypted memory; otherwise CMA (only if the caller may sleep), then
        the buddy allocator in the zone of ``min_not_zero(coherent_dma_mask,
        bus_dma_limit)`` (``dma_direct_optimal_gfp_mask()``), then ``dma_set_decrypted()``
        and ``memset(0)``.  Returns ``(paddr, how)`` or None."""
        pages, c = self.pages, self.costs_.c
        limit = dev.coherent_reach
        if self.mem.for_alloc:
            # __dma_direct_alloc_pages -> dma_direct_alloc_swiotlb -> swiotlb_alloc():
            # slots of the restricted pool itself, with no original address recorded
            pool = self.mem.defpool
            idx = pool_find_slots(pool, dev, 0, nbytes, 0, 0)
            if idx < 0:
                return None
            self.mem.total_used += nbytes >> IO_TLB_SHIFT      # swiotlb_find_slots() counts them
            c["dyn_from_restricted_pool"] += 1
            got = (pool.start + (idx << IO_TLB_SHIFT), ("swiotlb", idx))
        elif self.mem.cc_mem_encrypt and not gfpflags_allow_blocking(gfp):
            p = pages.dma_alloc_from_pool(nbytes, limit=limit)   # zeroed, already decrypted
            if p is None:
                return None
            got = (p, "atomic")
        else:
            g = gfp_for_limit(pages, gfp, limit)
            got = None
            if gfpflags_allow_blocking(gfp) and nbytes > PAGE_SIZE:
                c["cma_attempts"] += 1
                p = pages.alloc_contig(nbytes, g, limit=limit)
                if p is not None:
                    got = (p, "cma")
            if got is None:
                order = get_order(nbytes)
                if order > MAX_ORDER:
                    return None
                p = pages.alloc_pages(g, order, limit=limit, owner="swiotlb-dyn")
                if p is None:
                    return None
                self.costs_.page_orders[order] += 1
                got = (p, order)
            c["dyn_zone_" + gfp_zone(g)] += 1
            if self.mem.cc_mem_encrypt:
                c["decrypt_calls"] += 1                          # dma_set_decrypted()
        c["zeroed_bytes"] += nbytes                              # memset(ret, 0, size)
        self.mem.memory.fill(got[0], nbytes, 0)
        return got

    def before_map(self, dev, orig_addr: int, mapping_size: int, alloc_size: int,
                   alloc_align_mask: int, dir: int, attrs: int, cpu: int):
        """``swiotlb_dyn_map()``, tried first when dynamic buffers are allowed."""
        self._fail = None
        if not self.allow_dyn:
            return None
        c = self.costs_.c
        if alloc_size < PAGE_SIZE or alloc_align_mask or dev.min_align_mask:
            c["dyn_skipped"] += 1
            return None
        gfp = DYN_GFP_MAY_SLEEP if attrs & DMA_ATTR_MAY_SLEEP else DYN_GFP_NOWAIT
        nbytes = (alloc_size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        c["dyn_attempts"] += 1
        got = self.dma_direct_alloc_pages(dev, nbytes, gfp)
        if got is None:
            c["dyn_failed"] += 1
            self._fail = "no_memory"
            return None
        paddr, how = got
        index = self.key(paddr >> PAGE_SHIFT)
        c["tree_stores"] += 1
        c["tree_node_visits"] += self._tree_cost()
        c["dyn_lock_acquisitions"] += 1
        if isinstance(how, tuple):
            # a restricted pool's slots: every later path sees a fixed-pool address
            pool, first = self.mem.defpool, how[1]
            buf = BounceBuffer(dev, pool, paddr, orig_addr, mapping_size, first, nbytes >> IO_TLB_SHIFT, dir)
        else:
            buf = BounceBuffer(dev, None, paddr, orig_addr, mapping_size, -1, 0, dir)
        slot = DynSlot(orig_addr, alloc_size, paddr, nbytes, how)
        self.tree.store_range(index, index + ((alloc_size + PAGE_SIZE - 1) >> PAGE_SHIFT) - 1, slot)
        c["dyn_buffers"] += 1
        self.mem.live[paddr] = buf
        if buf.pool is not None:
            # swiotlb_bounce -> is_swiotlb_fixed -> swiotlb_fixed_bounce: no orig_addr
            # was recorded in these slots, so nothing is copied; at unmap the fixed path
            # releases the slots and the descriptor and its tree range are never freed
            c["leaked_descriptors"] += 1
            c["restricted_unbounced_bytes"] += mapping_size - self.mem.bounce(
                dev, paddr, mapping_size, DMA_TO_DEVICE, buf.pool)
            return paddr
        self.dyn_bytes += nbytes
        self.nlive += 1
        # swiotlb_bounce(TO_DEVICE): dispatched to swiotlb_dyn_bounce, one more lookup
        self.bounce(dev, paddr, mapping_size, DMA_TO_DEVICE)
        return paddr

    def failure_cause(self, cause: str) -> str:
        return "no_memory" if self._fail == "no_memory" and cause == "too_big" else cause

    def find_slots(self, dev, orig_addr, alloc_size, alloc_align_mask, cpu):
        pool = self.mem.defpool
        return pool, pool_find_slots(pool, dev, orig_addr, alloc_size, alloc_align_mask, cpu)

    def is_swiotlb_buffer(self, dev, paddr: int) -> bool:
        """Patch 4/4: ``is_swiotlb_fixed(mem, paddr) || (mem->allow_dyn && is_swiotlb_dyn())``;
        any tree hit counts, also one on a freed descriptor."""
        p = self.mem.defpool
        if p is not None and p.start <= paddr < p.end:
            return True
        return self.allow_dyn and self._find(paddr)[0] is not None

    def bounce(self, dev, tlb_addr: int, size: int, dir: int) -> int:
        """``swiotlb_dyn_bounce()`` -> ``swiotlb_copy()``: offset from the buffer start.
        A miss copies nothing, as in the patch.  On a freed descriptor the model stops
        (the kernel would copy through the freed ``orig_addr``); it copies nothing."""
        slot, _ = self._find(tlb_addr)
        if slot is None or slot.freed:
            return 0
        alloc_size, paddr = slot.alloc_size, slot.paddr
        off = tlb_addr - paddr
        if off > alloc_size:
            self.mem.log.once(("overflow", dev.name), f"{dev.dev_name}: Buffer overflow detected. "
                              f"Allocation size: {alloc_size}. Mapping size: {size}+{off}.")
            return 0
        if size > alloc_size - off:
            self.mem.log.once(("overflow", dev.name), f"{dev.dev_name}: Buffer overflow detected. "
                              f"Allocation size: {alloc_size - off}. Mapping size: {size}.")
            size = alloc_size - off
        if dir == DMA_TO_DEVICE:
            self.mem.memory.copy_unchecked(tlb_addr, slot.orig_addr + off, size)
        else:
            self.mem.memory.copy_unchecked(slot.orig_addr + off, tlb_addr, size)
        self.mem.bytes_copied += size
        return size

    def unmap(self, dev, buf) -> int:
        """``swiotlb_dyn_unmap()``: ``mt_find()`` then ``mtree_erase()``, free the pages and
        ``kfree`` the descriptor.  As posted the erase is aimed at the index ``mt_find()``
        advanced to; as intended at the buffer's own key."""
        c = self.costs_.c
        index = self.key(buf.tlb_addr >> PAGE_SHIFT)
        slot, advanced = self._find(buf.tlb_addr)
        c["tree_erases"] += 1
        if self.tree.erase(self.erase_index(index, advanced)) is None:
            c["tree_erase_misses"] += 1
        self.dyn_bytes -= slot.nbytes
        self.nlive -= 1
        paddr, nbytes, how = slot.paddr, slot.nbytes, slot.how
        if how == "cma":
            self.pages.free_contig(paddr, nbytes)
        elif how == "atomic":
            self.pages.dma_free_from_pool(paddr, nbytes)
        else:
            self.pages.free_pages(paddr, how)
        if how != "atomic" and self.mem.cc_mem_encrypt:
            c["encrypt_calls"] += 1                              # dma_set_encrypted()
        slot.freed = True                                        # kfree(slot)
        return 0

    def del_transient(self, dev, pool) -> int:  # pragma: no cover - RFC has no transient pools
        raise AssertionError("RFC v1 has no transient pools")

    def run_pending_work(self) -> bool:
        return False

    def tick(self, now: float) -> None:
        return None

    def stale_entries(self) -> int:
        """Tree ranges whose descriptor has been freed."""
        return sum(1 for _, _, s in self.tree.ranges() if s.freed)

    def costs(self) -> dict:
        out = dict(self.costs_.c)
        out["page_alloc_orders"] = dict(sorted(self.costs_.page_orders.items()))
        out["live_dyn_buffers"] = self.nlive
        return out

    def bounce_bytes(self) -> int:
        return self.dyn_bytes
