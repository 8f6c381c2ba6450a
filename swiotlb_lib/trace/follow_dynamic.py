"""Following the recording of a kernel that grows its pool (``CONFIG_SWIOTLB_DYNAMIC``).

:class:`FollowDynamic` extends :class:`~swiotlb_lib.trace.follow.Follow` to the profiles whose
allocator is a :class:`~swiotlb_lib.dynamic.Grower` (v6.6 and v6.11 with
``CONFIG_SWIOTLB_DYNAMIC``).  It reads only the standard events (``swiotlb_bounced``,
``map``, ``map_ret``, ``unmap``): the pools the kernel added are inferred from the bounce
addresses, with what the replay knows when the address appears:

* an address inside a pool the replay holds is a decision in that pool;
* otherwise, a **worker pool** (``swiotlb_dyn_alloc()``, ``kernel/dma/swiotlb.c@afd81d914f6f``)
  if the kernel has already failed some search (the worker only runs when kicked), the
  mapping's first slot is the first slot of an area of a block of the worker pool's size
  (the boot pool's slot count, capped at 4 MiB) aligned to that size (the buddy allocator
  returns naturally aligned blocks, and a fresh pool's area indexes start at 0), and that
  block overlaps no pool the replay holds (a freed transient pool may lie inside it);
* otherwise a **transient pool** of exactly the mapping's slots, starting at the mapping's
  first slot (``swiotlb_find_slots()`` allocates it and searches its one area from 0), freed
  at the mapping's unmap (``swiotlb_del_transient()``).

The model's assumptions, not the kernel's: a worker pool has the full boot size (the
worker's halving on allocation failure, down to 512 slots, is not inferred); a transient
pool whose first page happens to start an aligned block of the worker pool's size after a
failure is taken for a worker pool.

For every mapping the model first decides on the kernel's state (its own worker does not
run: the pools are the kernel's); then the kernel's decision is applied.  Reported
(``extra``): ``slot_agreement`` (same bounce address, over the mappings the kernel put in
a boot or worker pool), ``pool_agreement`` (same pool, both transient counting as the same,
over all compared mappings), ``worker_pools`` (``"model/kernel"``: growth steps the model's
worker would have made, kicked by the model's own failed searches and running
:attr:`~swiotlb_lib.dynamic.Grower.worker_delay` later, against the worker pools inferred
from the recording) and ``transient_pools`` (``"model/kernel"``: mappings the model put in a
transient pool against the transient pools inferred).  ``result.pools_added`` and
``result.transient_pools`` are the inferred (kernel's) pools the replay followed.
"""
from __future__ import annotations

from ..constants import DYNAMIC_POOL_MAX_NSLABS, IO_TLB_SHIFT, MiB
from ..dynamic import ONLY_TRANSIENT
from ..pool import limit_nareas
from ..swiotlb import DmaMappingError
from .follow import Follow
from .read import TLB_FAILED

#: Where the model's own transient pools go while following (any RAM the recording does not
#: use; they are given back before the kernel's decision is applied).
SCRATCH_SEARCH_FROM = 1 * MiB
SCRATCH_BYTES = 256 * 1024


class FollowDynamic(Follow):
    """A :class:`Follow` whose pools grow as the recorded addresses show (module docstring)."""

    def run(self) -> None:
        g = self.mem.dyn
        self.delay = g.worker_delay                     # set by replay(): never None here
        g.worker_delay = None                           # the pools are the kernel's
        self.scratch = self._scratch()
        self.kernel_kicks = 0
        self.kernel_worker = self.kernel_transient = 0
        self.model_worker = self.model_transient = 0
        self.model_pending = False
        self.model_kicked_at = 0.0
        self.pool_same = self.pool_compared = 0
        self.slot_same = self.slot_compared = 0
        self.tentative = None                           # the newest inferred worker pool, unconfirmed
        self.tentative_maps = 0
        super().run()
        self._tick_model(float("inf"))

    def _scratch(self) -> int:
        recorded = sorted(mp.tlb for mp in self.maps if mp.tlb is not None and mp.tlb != TLB_FAILED)
        pools = [(p.start, p.end) for p in self.mem.pools]
        c = SCRATCH_SEARCH_FROM
        while True:
            lo, hi = c, c + SCRATCH_BYTES
            if not any(a < hi and lo < b for a, b in pools) and not any(lo <= t < hi for t in recorded):
                return c
            c += SCRATCH_BYTES

    # -- the model's own worker (counted, never run: the pools are the kernel's) ----------
    def _tick_model(self, now: float) -> None:
        if self.model_pending and now - self.model_kicked_at >= self.delay:
            self.model_pending = False
            self.model_worker += 1

    def _now(self, t: float) -> None:
        super()._now(t)
        self._tick_model(self.m.log.now)

    def _model_kick(self) -> None:
        if not self.model_pending:
            self.model_pending = True
            self.model_kicked_at = self.m.log.now

    def _pools(self):
        return list(self.mem.pools)

    # -- the kernel's pools, from the addresses -----------------------------------------------
    def _live_ranges(self):
        out = [(p.start, p.end) for p in self.mem.pools]
        for dev in self.devs.values():
            out += [(p.start, p.end) for p in dev.dma_io_tlb_pools]
        return out

    def _held_transient(self, rec: int):
        """A transient pool the replay still holds around ``rec``: its mapping's unmap was lost."""
        for j, tlb in list(self.held.items()):
            buf = self.mem.live.get(tlb)
            if buf is not None and buf.pool is not None and buf.pool.transient \
                    and buf.pool.start <= rec < buf.pool.end:
                del self.held[j]
                self.unmap_one(j, tlb)
                self.lost += 1

    def _kernel_pool(self, i: int):
        """The kernel's pool for mapping ``i`` (adopting a worker pool it reveals), or
        ``("transient", start)`` for a new transient pool."""
        mp = self.maps[i]
        rec = mp.tlb
        for p in self.mem.pools:
            if p.start <= rec < p.end:
                return p
        self._held_transient(rec)
        g = self.mem.dyn
        first_addr = self._first_addr(i, self.mem.defpool.has_pad)[0]
        nslabs = min(g.default_nslabs, DYNAMIC_POOL_MAX_NSLABS)
        nareas = max(limit_nareas(g.default_nareas, nslabs), 1)
        size = nslabs << IO_TLB_SHIFT
        area_bytes = (nslabs // nareas) << IO_TLB_SHIFT
        start = first_addr - first_addr % size
        if self.kernel_kicks and (first_addr - start) % area_bytes == 0 \
                and not any(a < start + size and start < b for a, b in self._live_ranges()):
            self.kernel_worker += 1
            self.kernel_kicks = 0
            self.tentative = g.adopt_pool(start, nslabs, nareas)
            self.tentative_maps = 0
            return self.tentative
        return ("transient", first_addr)

    def _retract(self) -> None:
        """The tentative worker pool was a run of transient pools after all: the kernel has
        just made a transient pool for a mapping that fits in it, which its newest-first
        search would not have done.  Each mapping it held becomes its own transient pool."""
        pool, g = self.tentative, self.mem.dyn
        self.tentative = None
        moved = [(j, tlb) for j, tlb in self.held.items()
                 if self.mem.live.get(tlb) is not None and self.mem.live[tlb].pool is pool]
        for j, tlb in moved:
            self.unmap_one(j, tlb)
        g.drop_pool(pool)
        self.kernel_worker -= 1
        self.kernel_transient += self.tentative_maps
        for j, tlb in moved:
            first_addr = self._first_addr(j, self.mem.defpool.has_pad)[0]
            g.only_pool, g.transient_at = ONLY_TRANSIENT, first_addr
            try:
                got = self.allocate(j, 0)
            finally:
                g.only_pool = g.transient_at = None
            if got != tlb:                              # pragma: no cover - a transient fits its mapping
                raise ValueError(f"trace: line {self.maps[j].map_line}: cannot re-place {tlb:#x}")

    # -- one mapping -------------------------------------------------------------------------
    def follow_one(self, i: int) -> None:
        mp = self.maps[i]
        rec = mp.tlb
        g = self.mem.dyn
        if rec is None or rec == TLB_FAILED:
            if rec == TLB_FAILED:
                self.kernel_kicks += 1
            g.transient_at = self.scratch
            try:
                super().follow_one(i)
            finally:
                g.transient_at = None
            return
        kpool = self._kernel_pool(i)
        ktrans = isinstance(kpool, tuple)
        if ktrans:
            self.kernel_kicks += 1
            self.kernel_transient += 1
        else:
            first, nslots = self._first_slot(kpool, i)
            self._release_lost(kpool, first, nslots)
        saved = [list(p.area_index) for p in self._pools()]
        r = self._model_decides(i, kpool)
        if ktrans and self.tentative is not None and not isinstance(r, str) and r >= 0 \
                and self.mem.live[r].pool is self.tentative:
            self.unmap_one(i, r)
            self._restore(saved)
            self.res.attempted -= 1
            self.res.mapped -= 1
            self.res.bounced -= 1
            self._retract()
            saved = [list(p.area_index) for p in self._pools()]
            r = self._model_decides(i, kpool)
        elif ktrans:
            self.tentative = None                       # confirmed: the kernel's search failed
        if not ktrans and kpool is self.tentative:
            self.tentative_maps += 1
        mpool = None
        if isinstance(r, str):
            self.model_failed.add(i)
            self._model_kick()
        elif r >= 0:
            mpool = self.mem.live[r].pool
            if mpool.transient:
                self.model_transient += 1
                self._model_kick()
        self.compared += 1
        self.pool_compared += 1
        self.pool_same += (mpool is not None and mpool.transient) if ktrans else mpool is kpool
        if not ktrans:
            self.slot_compared += 1
            self.slot_same += r == rec
        if r == rec:
            self.same += 1
            self.held[i] = rec
            return
        self._diverged(mp, rec, r)
        if not isinstance(r, str) and r >= 0:
            self.unmap_one(i, r)
        self._restore(saved)
        try:
            if ktrans:
                g.only_pool, g.transient_at = ONLY_TRANSIENT, kpool[1]
                got = self.allocate(i, 0)
            else:
                area = first // kpool.area_nslabs
                kpool.set_area_index(area, first - area * kpool.area_nslabs)
                g.only_pool = kpool
                got = self.allocate(i, area)
        except DmaMappingError:
            got = None
        finally:
            g.only_pool = g.transient_at = None
        self._placed(i, got, rec, " in the pools inferred from the recording: the device's "
                     "min_align_mask, the kernel profile or swiotlb= do not match the recording; "
                     "give the recorded ones, or replay without following")

    def _model_decides(self, i: int, kpool):
        g = self.mem.dyn
        g.transient_at = kpool[1] if isinstance(kpool, tuple) else self.scratch
        try:
            return self.map_one(i)
        finally:
            g.transient_at = None

    def finish(self):
        res = super().finish()
        x = res.extra
        x["slot_agreement"] = f"{self.slot_same}/{self.slot_compared}"
        x["pool_agreement"] = f"{self.pool_same}/{self.pool_compared}"
        x["worker_pools"] = f"{self.model_worker}/{self.kernel_worker}"
        x["transient_pools"] = f"{self.model_transient}/{self.kernel_transient}"
        res.pools_added = self.kernel_worker
        res.transient_pools = self.kernel_transient
        return res
