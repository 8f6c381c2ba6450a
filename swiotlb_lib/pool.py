"""One SWIOTLB memory pool: slots, areas, free-run counters, search and release.

This is the heart of the model, ``struct io_tlb_pool`` (``struct io_tlb_mem`` before
6.6) and the functions that work on it in ``kernel/dma/swiotlb.c``:

* :class:`IoTlbPool` -- ``swiotlb_init_io_tlb_mem`` (v6.3) / ``swiotlb_init_io_tlb_pool``
  (v6.6+): the per-slot arrays and the per-area ``index``/``used`` counters.
* :func:`search_pool_area` -- ``swiotlb_do_find_slots`` (v6.3-rc, v6.3),
  ``swiotlb_area_find_slots`` (v6.6), ``swiotlb_search_pool_area`` (v6.9+).
* :func:`pool_find_slots` -- the round-robin over one pool's areas
  (``swiotlb_pool_find_slots``, v6.6).
* :func:`release_slots` -- ``swiotlb_release_slots``.

Every area search fires the :data:`~swiotlb_lib.debug.SEARCH_AREA` hook point when a
probe is registered on it.

Per-slot state lives in numpy arrays (``list``, ``orig_addr``, ``alloc_size``,
``pad_slots``), the areas' counters in one more (``areas``), all views into one buffer per
pool (``store``); the hot loops read and write them through ``memoryview`` objects,
which index several times faster than numpy scalars.  In a long run (see
:func:`use_compiled`) :func:`pool_find_slots` and :func:`release_slots` hand the work to
their compiled twins in :mod:`swiotlb_lib.fast_pool`, which work on the same buffer and
give the same answers (the functions here are the reference the tests compare them with).
All arithmetic that the kernel does on ``size_t`` wraps modulo 2**64 here too.

The version differences (alignment rule, tail cap, padding slots) come from a
:class:`~swiotlb_lib.versions.KernelProfile`; there is one allocator, not one per version.
"""
from __future__ import annotations

import numpy as np

from .constants import (INVALID_PHYS_ADDR, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE,
                        PAGE_SIZE, U64)
from .debug import SEARCH_AREA
from .versions import ALIGN_V63, ALIGN_V63RC, ALIGN_V69, KernelProfile, get_profile

#: Spare zeroed slot descriptors past ``nslabs``.  In v6.3/v6.6 a 128-slot request can be
#: granted in the last, partial segment of a pool whose size is not a multiple of 128 and
#: then writes past the slot array (a real kernel corrupts memory there).  The oracle's
#: user-space build of the kernel code had 256 zeroed spare entries; so does the model.
SPARE_SLOTS = 256
_SEG_LAST = IO_TLB_SEGSIZE - 1
#: the rows of :attr:`IoTlbPool.areas`
AREA_INDEX, AREA_USED, AREA_LOCKS = range(3)
#: the entries of :attr:`IoTlbPool.layout`: slot descriptors, areas, slots per area, the
#: profile's ``round_start`` and ``has_pad`` (0 or 1), then the byte offsets in
#: :attr:`IoTlbPool.store` of each array and the store's size
(LAYOUT_N, LAYOUT_NAREAS, LAYOUT_AREA_NSLABS, LAYOUT_ROUND_START, LAYOUT_HAS_PAD, LAYOUT_LIST, LAYOUT_ASIZE,
 LAYOUT_ORIG, LAYOUT_PAD, LAYOUT_AREAS, LAYOUT_EXAM, LAYOUT_BYTES) = range(12)


def store_layout(n: int, nareas: int, area_nslabs: int, round_start: bool, has_pad: bool) -> np.ndarray:
    """Where a pool's arrays sit in its one byte buffer: ``n`` slot descriptors (``list``
    int32, ``alloc_size`` and ``orig_addr`` uint64, ``pad_slots`` uint16), then the areas
    (3 rows of int64) and the examined-slots counter, each 8-byte aligned; with the pool's
    constants the compiled twins read.  The model's own arrangement; the kernel keeps
    ``struct io_tlb_slot`` and ``struct io_tlb_area`` arrays."""
    def up8(x):
        return (x + 7) & ~7
    lst = 0
    asize = up8(4 * n)
    orig = asize + 8 * n
    pad = orig + 8 * n
    areas = pad + up8(2 * n)
    exam = areas + 24 * nareas
    return np.array([n, nareas, area_nslabs, round_start, has_pad, lst, asize, orig, pad, areas, exam, exam + 8],
                    dtype=np.int64)


#: the probes of the SEARCH_AREA hook point (one list, changed in place by subscribe)
_search_probes = SEARCH_AREA.probes

#: Searches in a process before :func:`pool_find_slots` and :func:`release_slots` switch to
#: their compiled twins (:mod:`swiotlb_lib.fast_pool`).  Loading them takes about 2 s (Numba's
#: import and first call; 6 s to compile them on a fresh clone) and saves about 2 us per
#: map+unmap pair (``benchmarks/map_unmap.py``, 2026-12: 4.4-4.9 us against 6.7-7.2 us), so
#: they pay only from about a million pairs on: switching after as many searches as the load would have saved never
#: costs more than twice the better choice made in hindsight (the ski-rental rule).  A
#: chapter, a test or a short script never switches; a long run does, or says so at once
#: with :func:`use_compiled`.
COMPILED_AFTER = 1 << 20
_I64 = (1 << 63) - 1
_budget = COMPILED_AFTER
#: the twins' compiled entry points, once loaded (see :func:`use_compiled`)
_find = _release = None


def use_compiled(on: bool | None = True) -> None:
    """Whether :func:`pool_find_slots` and :func:`release_slots` run their compiled twins
    (:func:`swiotlb_lib.fast_pool.find_slots`, :func:`~swiotlb_lib.fast_pool.release_pool_slots`)
    on the pool's :attr:`~IoTlbPool.store`: ``True`` from now on, ``False`` never (the
    readable functions here run), ``None`` after :data:`COMPILED_AFTER` calls (the default).
    Either way the results are the same, slot for slot (``tests/test_pool_compiled.py``);
    the twins make ``dma_map_single`` and ``dma_unmap_single`` about 1.5 times as fast
    (``benchmarks/map_unmap.py``).  The readable search always runs while a probe is
    registered on :data:`~swiotlb_lib.debug.SEARCH_AREA`, which the twins do not fire, and
    for an original address of 2**63 or more (the twins take int64)."""
    global _budget, _find, _release
    _find = _release = None
    if on is None:
        _budget = COMPILED_AFTER
    elif not on:
        _budget = -1
    else:
        _budget = 0
        _load_compiled()


def _load_compiled() -> None:
    """Load (or compile, the first time) the twins and keep their entry points."""
    global _find, _release
    from . import fast_pool, jit
    if not jit.HAVE_NUMBA:
        return
    pool = IoTlbPool(0, IO_TLB_SEGSIZE, 1, get_profile())
    q = np.array((0, 0, 0, 0, 0, 0, 1, 1), dtype=np.int64)
    _find = jit.entry_point(fast_pool.find_slots, pool.store, pool.layout, q, 0, 0, PAGE_SIZE, -1)
    _release = jit.entry_point(fast_pool.release_pool_slots, pool.store, pool.layout, 0, 0)


def nr_slots(val: int) -> int:
    """``nr_slots()`` (v6.3-rc to v6.11): number of 2 KiB slots needed for ``val`` bytes (rounded up)."""
    return (val + IO_TLB_SIZE - 1) >> IO_TLB_SHIFT


def limit_nareas(nareas: int, nslots: int) -> int:
    """``limit_nareas()`` (6.6+): at most one area per 128 slots."""
    if nslots < nareas * IO_TLB_SEGSIZE:
        return nslots // IO_TLB_SEGSIZE
    return nareas


def get_max_slots(boundary_mask: int) -> int:
    """``get_max_slots()`` (v6.3-rc to v6.11): slots per device segment boundary (2**53 for
    ``ULONG_MAX``)."""
    return (boundary_mask >> IO_TLB_SHIFT) + 1


class IoTlbPool:
    """A contiguous bounce-buffer pool (``struct io_tlb_pool``; ``io_tlb_mem`` in v6.3).

    Parameters are checked: ``nslabs`` >= 1, ``1 <= nareas <= nslabs``, ``start``
    slot-aligned and >= 0.  ``area_nslabs = nslabs // nareas`` as in the kernel.
    """

    __slots__ = ("start", "end", "nslabs", "nareas", "area_nslabs", "late_alloc",
                 "transient", "profile", "list", "orig_addr", "alloc_size", "pad_slots",
                 "areas", "examined", "store", "layout", "_aindex", "_aused", "_alocks", "_exam",
                 "_list", "_orig", "_asize", "_pad", "name", "_params", "_twin_params", "round_start", "has_pad",
                 "alloc_how", "_bytes")

    def __init__(self, start: int, nslabs: int, nareas: int, profile: KernelProfile,
                 *, late_alloc: bool = False, transient: bool = False, name: str = "") -> None:
        if not isinstance(nslabs, (int, np.integer)) or nslabs < 1:
            raise ValueError(f"nslabs: must be an integer >= 1, got {nslabs!r}")
        if not isinstance(nareas, (int, np.integer)) or not 1 <= nareas <= nslabs:
            raise ValueError(f"nareas: must be an integer in 1..nslabs ({nslabs}), got {nareas!r}")
        if not isinstance(start, (int, np.integer)) or start < 0 or start & (IO_TLB_SIZE - 1):
            raise ValueError(f"start: must be a non-negative multiple of {IO_TLB_SIZE:#x}, got {start!r}")
        if start + (nslabs << IO_TLB_SHIFT) > U64:
            raise ValueError("start: pool would end beyond the 64-bit physical address space")
        self.start = int(start)
        self.nslabs = int(nslabs)
        self.end = self.start + (self.nslabs << IO_TLB_SHIFT)
        self.nareas = int(nareas)
        self.area_nslabs = self.nslabs // self.nareas
        self.late_alloc = late_alloc
        self.transient = transient
        self.profile = profile
        self.name = name
        n = self.nslabs + SPARE_SLOTS
        #: v6.3-rc rounded the start index up to the stride (7c3940bf81e5)
        self.round_start = profile.align_rule == ALIGN_V63RC
        #: 6.9+ (af133562d5af): a buffer may start with padding slots (``profile.pad_slots``)
        self.has_pad = profile.pad_slots
        #: every array below is a view into this one buffer, described by ``layout``
        #: (:func:`store_layout`), so that compiled code takes the pool's state as two arguments
        self.layout = store_layout(n, self.nareas, self.area_nslabs, self.round_start, self.has_pad)
        self.store = np.zeros(self.layout[LAYOUT_BYTES], dtype=np.uint8)
        lay = self.layout
        lst = self.store[lay[LAYOUT_LIST]:lay[LAYOUT_ASIZE]].view(np.int32)
        idx = np.arange(self.nslabs, dtype=np.int64)
        # initial free runs: slots from i to the end of its segment; from 6.7 (53c87e846e33,
        # the v6.11 profile) also capped at the pool end
        lst[: self.nslabs] = IO_TLB_SEGSIZE - (idx & _SEG_LAST)
        if profile.tail_cap:
            np.minimum(lst[: self.nslabs], self.nslabs - idx, out=lst[: self.nslabs])
        self.list = lst
        self.alloc_size = self.store[lay[LAYOUT_ASIZE]:lay[LAYOUT_ORIG]].view(np.uint64)
        self.orig_addr = self.store[lay[LAYOUT_ORIG]:lay[LAYOUT_PAD]].view(np.uint64)
        self.orig_addr[:] = INVALID_PHYS_ADDR
        self.pad_slots = self.store[lay[LAYOUT_PAD]:lay[LAYOUT_PAD] + 2 * n].view(np.uint16)
        #: ``struct io_tlb_area`` of each area: rows ``AREA_INDEX`` (``index``), ``AREA_USED``
        #: (``used``) and the model's cost counter ``AREA_LOCKS`` (lock acquisitions);
        #: ``examined[0]`` counts the candidate slots examined in total.  Arrays, so that
        #: compiled code can work on them in place; read them as lists through
        #: :attr:`area_index`, :attr:`area_used`, :attr:`area_locks` and
        #: :attr:`slots_examined`.
        self.areas = self.store[lay[LAYOUT_AREAS]:lay[LAYOUT_EXAM]].view(np.int64).reshape(3, self.nareas)
        self.examined = self.store[lay[LAYOUT_EXAM]:lay[LAYOUT_BYTES]].view(np.int64)
        #: cache: search constants per request kind (see :func:`search_params`), and the
        #: same with the device's ``min_align_mask`` first in an array for the compiled twin
        self._params: dict = {}
        self._twin_params: dict = {}
        #: how a dynamic pool's memory was obtained (buddy order or "atomic"), for freeing
        self.alloc_how = None
        self._list = memoryview(self.list)
        self._bytes = self._list.cast("B")
        self._orig = memoryview(self.orig_addr)
        self._asize = memoryview(self.alloc_size)
        self._pad = memoryview(self.pad_slots)
        self._aindex = memoryview(self.areas[AREA_INDEX])
        self._aused = memoryview(self.areas[AREA_USED])
        self._alocks = memoryview(self.areas[AREA_LOCKS])
        self._exam = memoryview(self.examined)

    # -- the areas' counters, as lists (copies: write through :attr:`areas`) ------------
    @property
    def area_index(self) -> list:
        """Each area's ``index``, where its next search starts (a copy)."""
        return self._aindex.tolist()

    @property
    def area_used(self) -> list:
        """Each area's ``used`` slots (a copy)."""
        return self._aused.tolist()

    @property
    def area_locks(self) -> list:
        """The model's count of each area's lock acquisitions (a copy)."""
        return self._alocks.tolist()

    @property
    def slots_examined(self) -> int:
        """The model's count of candidate slots examined by every search of this pool."""
        return self._exam[0]

    def set_area_index(self, area: int, index: int) -> None:
        """Set ``area``'s ``index`` (the replay's follow mode puts it where the kernel's was)."""
        self._aindex[area] = index

    # -- queries -------------------------------------------------------------------
    def __contains__(self, paddr: int) -> bool:
        return self.start <= paddr < self.end

    def __repr__(self) -> str:
        kind = "transient " if self.transient else ""
        return (f"<{kind}IoTlbPool [{self.start:#x}-{self.end:#x}) nslabs={self.nslabs} "
                f"nareas={self.nareas} used={self.used}>")

    @property
    def used(self) -> int:
        """The sum of the areas' ``used`` counters: ``mem_pool_used()`` (6.6+, per pool);
        v6.3's ``mem_used()`` summed the same counters of its one pool."""
        return sum(self._aused)

    def slot_of(self, paddr: int) -> int:
        """Pool-relative index of the slot containing ``paddr``."""
        return (paddr - self.start) >> IO_TLB_SHIFT

    def list_hash(self) -> str:
        """64-bit FNV-1a over ``list[0..nslabs-1]``, each value as 4 little-endian bytes.

        This is the oracle's state fingerprint (``data/oracle/README.md``, "Line format",
        ``dump``).
        """
        h = 0xCBF29CE484222325
        data = self.list[: self.nslabs].astype("<u4").tobytes()
        for b in data:
            h = ((h ^ b) * 0x100000001B3) & U64
        return f"{h:016x}"

    def free_runs_from_scratch(self) -> np.ndarray:
        """Recompute every free-run counter from which slots are in use.

        Used by the property tests: after any operation ``list[:nslabs]`` must equal
        this.  A slot is in use iff its counter is 0; a free slot's counter is the
        number of free slots from it to the end of its segment.  With the tail cap
        (v6.11) the pool end also ends a run; without it (v6.3, v6.6) the last partial
        segment runs on into the spare descriptors, as in the kernel (the invariant then
        holds only while no request has run past the pool end).
        """
        n = self.nslabs
        top = n if self.profile.tail_cap else -(-n // IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE
        used = np.zeros(top, dtype=bool)
        used[:n] = self.list[:n] == 0     # spare descriptors count as free
        out = np.zeros(top, dtype=np.int32)
        run = 0
        for i in range(top - 1, -1, -1):
            if (i & _SEG_LAST) == _SEG_LAST:
                run = 0
            run = 0 if used[i] else run + 1
            out[i] = run
        return out[:n]


_SHORT_WALK = 6


#: ``_DESC[256 - k]`` is k: slicing it gives a descending run of free-run counts.
_DESC = memoryview(np.arange(256, 0, -1, dtype=np.int32))
_ZERO_SLOT = b"\0\0\0\0"
#: ``_TAKEN[n]``: the ``list`` values (0) of ``n`` slots just taken, and ``_FREED_ORIG[n]``,
#: ``_FREED_SIZE[n]``: the ``orig_addr`` (``INVALID_PHYS_ADDR``) and ``alloc_size`` (0) of
#: ``n`` freed slots, as views to slice-assign in one step.  A search takes at most one
#: free run and a live buffer spans at most one segment (``IO_TLB_SEGSIZE`` slots, padding
#: included), so ``n`` never exceeds 128.
_TAKEN = [memoryview(np.zeros(n, dtype=np.int32)) for n in range(IO_TLB_SEGSIZE + 1)]
_FREED_ORIG = [memoryview(np.full(n, INVALID_PHYS_ADDR, dtype=np.uint64)) for n in range(IO_TLB_SEGSIZE + 1)]
_FREED_SIZE = [memoryview(np.zeros(n, dtype=np.uint64)) for n in range(IO_TLB_SEGSIZE + 1)]


def _renumber_before(pool: IoTlbPool, s: int, count: int) -> None:
    """Renumber the free slots just before slot ``s`` in its segment: ``count + 1``,
    ``count + 2``, ... walking backwards until a used slot or the segment start.

    This is the backward loop shared by the found-path of the search and by
    ``swiotlb_release_slots``.  Short runs are walked slot by slot; for a long run (up to
    127 slots) the last used slot is found with one ``bytes.rfind`` over the segment's
    counters (a used slot is four zero bytes; free counts are 1..255, whose low byte is
    never zero, so the rightmost match is always an aligned counter) and the run is written
    with one numpy slice assignment.  The values are those of the kernel's loop.
    """
    lst = pool._list
    j = s - 1
    stop = s - _SHORT_WALK
    while (j & _SEG_LAST) != _SEG_LAST and lst[j]:
        if j < stop:
            seg0 = j & ~_SEG_LAST
            z = pool._bytes[seg0 << 2:(j + 1) << 2].tobytes().rfind(_ZERO_SLOT)
            rs = seg0 + (z >> 2) + 1 if z >= 0 else seg0
            n = j + 1 - rs
            lst[rs:j + 1] = _DESC[256 - count - n:256 - count]
            return
        count += 1
        lst[j] = count
        j -= 1


def alignment_rule(rule: str, min_align_mask: int, alloc_align_mask: int,
                   big: bool) -> tuple[int, int, int]:
    """The per-version alignment rule of the slot search, as ``(cmp_mask, zero_mask, stride)``.

    A candidate slot address ``t`` is skipped (step 1) if ``t & zero_mask`` or if
    ``t & cmp_mask != orig & cmp_mask`` (the comparison only when ``orig != 0``); a
    usable-looking but occupied candidate steps by ``stride``.  ``big`` is
    ``alloc_size >= PAGE_SIZE``.

    * v6.3-rc (7c3940bf81e5): compare the min_align bits >= 2 KiB; stride from
      min_align, doubled for big requests, at least the alloc_align stride.
    * v6.3/v6.6 (0eee5ae10256 + bbb73a103fbb): one mask, min_align | alloc_align,
      plus the page bits for big requests, compared against orig.
    * v6.9+ (04867a7a3332, af133562d5af): alloc_align (or, for big requests without
      any alignment, the page mask) must be zero; min_align bits above it compared.
    """
    if rule == ALIGN_V69:
        cmp_mask = min_align_mask
        if not alloc_align_mask and not cmp_mask and big:
            alloc_align_mask = PAGE_SIZE - 1
        zero_mask = alloc_align_mask | (IO_TLB_SIZE - 1)
        cmp_mask &= ~zero_mask
        return cmp_mask, zero_mask, get_max_slots(max(zero_mask, cmp_mask))
    if rule == ALIGN_V63:
        cmp_mask = min_align_mask | alloc_align_mask
        if big:
            cmp_mask |= PAGE_SIZE - 1
        cmp_mask &= ~(IO_TLB_SIZE - 1)
        return cmp_mask, 0, (cmp_mask >> IO_TLB_SHIFT) + 1
    if rule == ALIGN_V63RC:
        cmp_mask = min_align_mask & ~(IO_TLB_SIZE - 1)
        stride = (cmp_mask >> IO_TLB_SHIFT) + 1
        if big:
            stride = max(stride, stride << (12 - IO_TLB_SHIFT))
        return cmp_mask, 0, max(stride, (alloc_align_mask >> IO_TLB_SHIFT) + 1)
    raise ValueError(f"profile: unknown alignment rule {rule!r}")


def search_params(pool: IoTlbPool, min_align_mask: int, alloc_align_mask: int, big: bool,
                  boundary_mask: int) -> tuple:
    """The per-request-kind constants of the slot search in ``pool``, computed once and cached.

    Returns ``(shift, bmask, max_slots, zero_slots, cmp_slots, stride, unbounded)``:
    ``shift`` is the slot number of the pool's DMA start within its boundary
    (``nr_slots(tbl_dma_addr & boundary_mask)``), ``bmask``/``max_slots`` come from
    ``get_max_slots(boundary_mask)``, and the alignment rule of :func:`alignment_rule` is
    kept in slot units: both of its masks have no bits below ``IO_TLB_SHIFT`` (the zero
    mask's low bits test the always-zero offset of a slot-aligned address), so a candidate
    at ``shift + slot`` is tested with ``>> IO_TLB_SHIFT`` masks on small integers instead
    of on 64-bit addresses.  ``unbounded`` says the segment-boundary test can never fail
    in this pool (``shift + 2 * (nslabs + spare) <= max_slots``; true for ``ULONG_MAX``).
    Every profile (v6.3-rc to v6.11) recomputes these in its search function at every call;
    they depend only on the pool, the device and the kind of request, so the model keeps
    them in ``pool._params``.
    """
    key = (min_align_mask, alloc_align_mask, big, boundary_mask)
    p = pool._params.get(key)
    if p is None:
        tbl = pool.start & boundary_mask        # the model's DMA addresses equal physical ones
        max_slots = get_max_slots(boundary_mask)
        shift = nr_slots(tbl)
        cmp_mask, zero_mask, stride = alignment_rule(pool.profile.align_rule, min_align_mask,
                                                     alloc_align_mask, big)
        assert not cmp_mask & (IO_TLB_SIZE - 1) and tbl & (IO_TLB_SIZE - 1) == 0
        p = pool._params[key] = (shift, max_slots - 1, max_slots, zero_mask >> IO_TLB_SHIFT,
                                 cmp_mask >> IO_TLB_SHIFT, stride,
                                 shift + 2 * (pool.nslabs + SPARE_SLOTS) <= max_slots)
    return p


def search_pool_area(pool: IoTlbPool, area_index: int, orig_addr: int, alloc_size: int,
                     alloc_align_mask: int, min_align_mask: int, boundary_mask: int) -> int:
    """Search one area of ``pool`` for ``nr_slots(alloc_size)`` free slots and take them.

    Models ``swiotlb_do_find_slots`` (v6.3-rc at 7c3940bf81e5 and v6.3 at 0459ff487373),
    ``swiotlb_area_find_slots`` (v6.6) and ``swiotlb_search_pool_area`` (v6.9+, read at
    afd81d914f6f).  ``alloc_size`` already includes the sub-slot offset (and, in v6.9+,
    the padding and the rounding to the alignment).  Returns the index of the first
    allocated slot, or -1.  The area's ``index`` advances with ``wrap_area_index`` (a
    reset to 0, not a modulo); failures change nothing.
    The pool start is its DMA address (``phys_to_dma_unencrypted`` is the identity here).
    """
    key = (min_align_mask, alloc_align_mask, alloc_size >= PAGE_SIZE, boundary_mask)
    params = pool._params.get(key)
    if params is None:
        params = search_params(pool, *key)
    return _search_area(pool, area_index, orig_addr, alloc_size, min_align_mask, params)


def record_slots(pool: IoTlbPool, index: int, end: int, pad: int, orig_addr: int) -> None:
    """What ``swiotlb_tbl_map_single`` writes in the slots ``index`` to ``end`` it was given
    (v6.3-rc to v6.11): ``pad_slots`` in the first real slot, ``pad`` slots in (6.9+,
    af133562d5af; a free slot's is 0 already, as ``release_slots`` zeroes it), and from there
    in each slot the original address it stands for, ``orig_addr + i * IO_TLB_SIZE``
    (``phys_addr_t``: wraps at 2**64)."""
    if pad:
        index += pad
        pool._pad[index] = pad
    orig = pool._orig
    a = orig_addr
    for i in range(index, end):
        orig[i] = a & U64
        a += IO_TLB_SIZE


def pool_find_slots(pool: IoTlbPool, dev, orig_addr: int, alloc_size: int, alloc_align_mask: int,
                    cpu: int, record: int = -1) -> int:
    """Search every area of one pool, from ``cpu & (nareas - 1)`` round-robin: the body of
    ``swiotlb_find_slots`` in v6.3 and without ``CONFIG_SWIOTLB_DYNAMIC``, and
    ``swiotlb_pool_find_slots`` (v6.6).  Returns the first slot or -1.  With ``record`` of 0
    or more, the slots found also get ``swiotlb_tbl_map_single``'s record of the mapping,
    with ``record`` padding slots (:func:`record_slots`): its next step, taken here so that
    a long run makes one compiled call for both."""
    global _budget
    mam = dev.min_align_mask
    key = (mam, alloc_align_mask, alloc_size >= PAGE_SIZE, dev.seg_boundary)
    if _find is None:
        if _budget > 0:
            _budget -= 1
            if not _budget:
                _load_compiled()
    elif not _search_probes and orig_addr <= _I64:
        q = pool._twin_params.get(key)
        if q is None:
            q = pool._twin_params[key] = np.array((mam, *(pool._params.get(key) or search_params(pool, *key))),
                                                  dtype=np.int64)
        return _find(pool.store, pool.layout, q, cpu, orig_addr, alloc_size, record)
    params = pool._params.get(key) or search_params(pool, *key)
    nareas = pool.nareas
    start = i = cpu & (nareas - 1)
    while True:
        index = _search_area(pool, i, orig_addr, alloc_size, mam, params)
        if index >= 0:
            if record >= 0:
                record_slots(pool, index, index + nr_slots(alloc_size), record, orig_addr)
            return index
        i += 1
        if i >= nareas:
            i = 0
        if i == start:
            return -1


def _search_area(pool: IoTlbPool, area_index: int, orig_addr: int, alloc_size: int,
                 min_align_mask: int, params: tuple) -> int:
    """:func:`search_pool_area` with the request's :func:`search_params` already looked up
    (the callers that search several areas look them up once).

    The loop is the kernel's: candidates from the area's ``index``, skipped one by one
    when their address breaks the alignment rule, by ``stride`` when they are aligned but
    the free run there is too short or would cross a segment boundary, until the whole
    area has been checked.  Only the order of two side-effect-free tests differs (the
    free-run count is read before the boundary arithmetic, which usually cannot fail).
    Each call fires :data:`~swiotlb_lib.debug.SEARCH_AREA` once, at its end, when a probe
    is registered.
    """
    shift, bmask, max_slots, zero_slots, cmp_slots, stride, unbounded = params
    nslots = (alloc_size + IO_TLB_SIZE - 1) >> IO_TLB_SHIFT
    area_nslabs = pool.area_nslabs
    pool._alocks[area_index] += 1
    if nslots > area_nslabs - pool._aused[area_index]:
        if _search_probes:
            SEARCH_AREA.fire(pool, area_index, -1, nslots, 0, -1)
        return -1
    # a candidate is skipped by one slot if its zero-mask bits are set or, when orig_addr
    # is not 0, its compared bits differ from orig_addr's: one test, as the masks are
    # disjoint and orig_bits has no zero-mask bits
    if cmp_slots and orig_addr:
        orig_bits = (orig_addr >> IO_TLB_SHIFT) & cmp_slots
        skip_mask = zero_slots | cmp_slots
    else:
        orig_bits = 0
        skip_mask = zero_slots
    base = area_index * area_nslabs
    end = base + area_nslabs
    index = pool._aindex[area_index]
    if pool.round_start:
        index = (index + stride - 1) & ~(stride - 1)
        if index >= area_nslabs:
            index = 0
    slot = base + index
    lst = pool._list
    checked = examined = 0
    while checked < area_nslabs:
        examined += 1
        if skip_mask and ((shift + slot) & skip_mask) != orig_bits:
            slot += 1
            checked += 1
        elif lst[slot] >= nslots and (unbounded or ((shift + slot) & bmask) + nslots <= max_slots):
            break
        else:
            slot += stride
            checked += stride
        if slot >= end:
            slot = base
    else:
        pool._exam[0] += examined
        if _search_probes:
            SEARCH_AREA.fire(pool, area_index, base + index, nslots, examined, -1)
        return -1
    pool._exam[0] += examined

    # the slots' alloc_size: what is left of the request from each slot on (size_t, so
    # a negative rest wraps modulo 2**64 as in the kernel)
    lst[slot:slot + nslots] = _TAKEN[nslots]            # list = 0: the slots are in use
    asize = pool._asize
    rest = alloc_size - (orig_addr & min_align_mask & (IO_TLB_SIZE - 1)) if min_align_mask else alloc_size
    for k in range(slot, slot + nslots):
        asize[k] = rest if rest >= 0 else rest & U64
        rest -= IO_TLB_SIZE
    if slot & _SEG_LAST and lst[slot - 1]:
        _renumber_before(pool, slot, 0)
    nxt = slot - base + nslots
    pool._aindex[area_index] = nxt if nxt < area_nslabs else 0
    pool._aused[area_index] += nslots
    if _search_probes:                  # index: where this search started
        SEARCH_AREA.fire(pool, area_index, base + index, nslots, examined, slot)
    return slot


def release_slots(pool: IoTlbPool, tlb_addr: int, min_align_mask: int) -> int:
    """Give the slots of the buffer at ``tlb_addr`` back; return how many.

    Models ``swiotlb_release_slots`` (v6.3-rc to v6.11; the padding slots of 6.9+,
    af133562d5af, in the v6.11 profile): the count comes from the ``alloc_size`` stored in
    the first slot plus the sub-slot offset; the freed run merges with the free run
    after it (inside the segment) and renumbers the free slots before it.  The area
    ``index`` is not touched.  The caller has checked that the buffer is live.
    """
    if _release is not None:            # the offset in the pool keeps tlb_addr's in-slot bits
        return _release(pool.store, pool.layout, tlb_addr - pool.start, min_align_mask)
    offset = tlb_addr & min_align_mask & (IO_TLB_SIZE - 1)
    index = (tlb_addr - offset - pool.start) >> IO_TLB_SHIFT
    # 6.9+: step back over the padding slots to the first slot; only the first real slot
    # records their number (swiotlb_tbl_map_single), so it is the one pad_slots to clear
    npad = pool._pad[index] if pool.has_pad else 0
    if npad:
        pool._pad[index] = 0
        index -= npad
    asize = pool._asize
    size = asize[index]
    if offset:
        size = (size + offset) & U64                     # size_t arithmetic
    nslots = (size + IO_TLB_SIZE - 1) >> IO_TLB_SHIFT
    aindex = index // pool.area_nslabs
    lst = pool._list
    pool._alocks[aindex] += 1
    end = index + nslots
    count = lst[end] if end & _SEG_LAST else 0      # the free run after it, inside the segment
    # the kernel's loop from the last slot down: list = ++count, orig_addr =
    # INVALID_PHYS_ADDR, alloc_size = 0, pad_slots = 0; here one slice per array (pad_slots:
    # the one entry that was not 0 is cleared above)
    lst[index:end] = _DESC[256 - count - nslots:256 - count]
    count += nslots
    pool._orig[index:end] = _FREED_ORIG[nslots]
    asize[index:end] = _FREED_SIZE[nslots]
    if index & _SEG_LAST and lst[index - 1]:
        _renumber_before(pool, index, count)
    pool._aused[aindex] -= nslots
    return nslots
