"""The compiled twins of the slot search and release of :mod:`swiotlb_lib.pool`, on the
pools' arrays.

Used by the compiled replay engine (:mod:`swiotlb_lib.trace.fast`) and by the Python API
itself: :func:`swiotlb_lib.pool.pool_find_slots` and :func:`swiotlb_lib.pool.release_slots`
call :func:`find_slots` and :func:`release_pool_slots` on the pool's own
:attr:`~swiotlb_lib.pool.IoTlbPool.store` unless a probe is registered on the search's hook
point or the compiled twins are switched off (:func:`swiotlb_lib.pool.use_compiled`).  The
readable functions of :mod:`swiotlb_lib.pool` are the reference; tests run both on random
sequences of every profile and compare every slot, counter and failure.

In the replay engine, every pool's per-slot arrays
(``list``, ``alloc_size``, ``orig_addr``, ``pad_slots``) and per-area arrays (``index``,
``used``, lock counts) sit in one array each, a pool's slots from its offset ``off`` (its
``nslabs`` slots and the spare descriptors after them), its areas from ``aoff``; a slot
number is the pool's own (``kernel/dma/swiotlb.c`` v6.3-rc to v6.11).

The search and release read those arrays as fields of one object ``A``: the compiled loop's
state itself (:data:`~swiotlb_lib.trace.fast_state.STATE_FIELDS` ``p_list``, ``p_asize``,
``p_orig``, ``p_pad``, ``a_index``, ``a_used``, ``a_locks``, ``pp_exam``), or a
:class:`SlotArrays` of the same fields made from separate arrays (:func:`search_area` and
:func:`release_slots`: a fresh transient pool, the oracle test).  One object rather than
seven arrays because Numba counts references with atomic operations: every array passed to
a function, or held in a variable across a branch, costs an increment and a decrement per
call, and seven of them per search and per release were, with the state's own, most of the
compiled loop's time (``benchmarks/replay.py``, measured with ``perf`` at commit 3cd126c).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

import pathlib

from .constants import INVALID_PHYS_ADDR, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE
from .jit import drop_stale_cache, jit, jit_inline
from .pool import (LAYOUT_AREA_NSLABS, LAYOUT_AREAS, LAYOUT_ASIZE, LAYOUT_BYTES, LAYOUT_EXAM, LAYOUT_HAS_PAD,
                   LAYOUT_LIST, LAYOUT_N, LAYOUT_NAREAS, LAYOUT_ORIG, LAYOUT_PAD, LAYOUT_ROUND_START)

_HERE = pathlib.Path(__file__).parent
drop_stale_cache(_HERE / "__pycache__", "fast_pool*.nb[ic]",
                 [_HERE / f for f in ("fast_pool.py", "jit.py", "pool.py", "constants.py")])

SEG_LAST = IO_TLB_SEGSIZE - 1

#: separate arrays under the state's field names (what :func:`search_slots` and
#: :func:`release` read of ``A``)
SlotArrays = namedtuple("SlotArrays", "p_list p_asize p_orig p_pad a_index a_used a_locks pp_exam")


@jit_inline
def renumber_before(A, off, s, count):
    """Twin of :func:`swiotlb_lib.pool._renumber_before`: the free slots just before slot
    ``s`` in its segment get ``count + 1``, ``count + 2``, ... walking back to a used slot or
    the segment start.  As in the reference, the run is found first (a load-only scan) and
    then written in one pass, which the compiler vectorizes; the values are the kernel loop's.
    ``s`` is not the first slot of its segment (the callers check)."""
    first = s & ~SEG_LAST
    j = s - 1
    while j >= first and A.p_list[off + j]:
        j -= 1
    for i in range(j + 1, s):
        A.p_list[off + i] = count + (s - i)


@jit_inline
def search_slots(A, pid, off, aoff, a, nslots, rest, shift, bmask, max_slots, stride, unbounded, skip_mask,
                 orig_bits, area_nslabs, round_start):
    """Twin of :func:`swiotlb_lib.pool.search_pool_area` for area ``a`` of the pool whose
    slots start at ``off`` and areas at ``aoff`` in the arrays of ``A``
    (``swiotlb_search_pool_area``, v6.9+; ``swiotlb_area_find_slots``, v6.6;
    ``swiotlb_do_find_slots``, v6.3-rc and v6.3).  ``rest`` is what the first slot's
    ``alloc_size`` records; the slots examined are added to ``A.pp_exam[pid]``.  Returns the
    pool's first slot or -1."""
    ai = aoff + a
    A.a_locks[ai] += 1
    if nslots > area_nslabs - A.a_used[ai]:
        return -1
    base = a * area_nslabs
    end = base + area_nslabs
    index = A.a_index[ai]
    if round_start:
        index = (index + stride - 1) & ~(stride - 1)
        if index >= area_nslabs:
            index = 0
    slot = base + index
    checked = 0
    examined = 0
    found = False
    while checked < area_nslabs:
        examined += 1
        if skip_mask and ((shift + slot) & skip_mask) != orig_bits:
            slot += 1
            checked += 1
        elif A.p_list[off + slot] >= nslots and (unbounded or ((shift + slot) & bmask) + nslots <= max_slots):
            found = True
            break
        else:
            slot += stride
            checked += stride
        if slot >= end:
            slot = base
    A.pp_exam[pid] += examined
    if not found:
        return -1
    for k in range(off + slot, off + slot + nslots):
        A.p_list[k] = 0
        A.p_asize[k] = np.uint64(rest)
        rest -= IO_TLB_SIZE
    if slot & SEG_LAST and A.p_list[off + slot - 1]:
        renumber_before(A, off, slot, 0)
    nxt = slot - base + nslots
    A.a_index[ai] = nxt if nxt < area_nslabs else 0
    A.a_used[ai] += nslots
    return slot


@jit_inline
def search_area(lst, asize, area_index, area_used, area_locks, exam, pid, off, aoff, a, nslots, rest, shift,
                bmask, max_slots, stride, unbounded, skip_mask, orig_bits, area_nslabs, round_start):
    """:func:`search_slots` on separate arrays (a transient pool's, the oracle test's); the
    fields the search does not read (``p_orig``, ``p_pad``) are filled with ``lst``."""
    return search_slots(SlotArrays(lst, asize, lst, lst, area_index, area_used, area_locks, exam), pid, off, aoff,
                        a, nslots, rest, shift, bmask, max_slots, stride, unbounded, skip_mask, orig_bits,
                        area_nslabs, round_start)


@jit_inline
def release(A, off, aoff, start, has_pad, area_nslabs, tlb, min_align_mask):
    """Twin of :func:`swiotlb_lib.pool.release_slots` (``swiotlb_release_slots``) on the
    arrays of ``A`` of the pool at ``off``/``aoff`` that starts at ``start``.  Returns the
    number of slots freed."""
    offset = tlb & min_align_mask & (IO_TLB_SIZE - 1)
    index = (tlb - offset - start) >> IO_TLB_SHIFT
    if has_pad:
        index -= A.p_pad[off + index]
    nslots = np.int64((A.p_asize[off + index] + np.uint64(offset) + np.uint64(IO_TLB_SIZE - 1))
                      >> np.uint64(IO_TLB_SHIFT))
    ai = aoff + index // area_nslabs
    A.a_locks[ai] += 1
    end = index + nslots
    count = np.int64(A.p_list[off + end]) if end & SEG_LAST else np.int64(0)
    for i in range(off + end - 1, off + index - 1, -1):
        count += 1
        A.p_list[i] = count
        A.p_orig[i] = np.uint64(INVALID_PHYS_ADDR)
        A.p_asize[i] = 0
        A.p_pad[i] = 0
    if index & SEG_LAST and A.p_list[off + index - 1]:
        renumber_before(A, off, index, count)
    A.a_used[ai] -= nslots
    return nslots


@jit_inline
def release_slots(lst, asize, orig, pad, area_used, area_locks, off, aoff, start, has_pad, area_nslabs, tlb,
                  min_align_mask):
    """:func:`release` on separate arrays (the oracle test's); the fields the release does not
    read (``a_index``, ``pp_exam``) are filled with ``area_used``."""
    return release(SlotArrays(lst, asize, orig, pad, area_used, area_used, area_locks, area_used), off, aoff, start,
                   has_pad, area_nslabs, tlb, min_align_mask)


@jit_inline
def init_slots(lst, asize, orig, pad, off, nslabs, nspare, tail_cap):
    """The per-slot arrays of a new pool, as :class:`swiotlb_lib.pool.IoTlbPool` makes them
    (``swiotlb_init_io_tlb_pool``): free runs to the segment end (from 6.7, the v6.11
    profile, also capped at the pool end), the spare descriptors after the pool zeroed."""
    for i in range(nslabs):
        v = IO_TLB_SEGSIZE - (i & SEG_LAST)
        if tail_cap and nslabs - i < v:
            v = nslabs - i
        lst[off + i] = v
    for i in range(nslabs, nslabs + nspare):
        lst[off + i] = 0
    for i in range(nslabs + nspare):
        orig[off + i] = np.uint64(INVALID_PHYS_ADDR)
        asize[off + i] = 0
        pad[off + i] = 0


# -- the Python API's entry points: one pool's state as its store and layout ----------------
@jit_inline
def store_arrays(store, layout, search):
    """The :class:`SlotArrays` of a pool's :attr:`~swiotlb_lib.pool.IoTlbPool.store`: views,
    as :class:`~swiotlb_lib.pool.IoTlbPool` makes them (offsets from ``layout``).  A
    ``search`` reads them all; a :func:`release` does not read the areas' ``index`` or the
    examined count, which are left out (filled with ``used``): every view costs a reference
    count, atomically, made and dropped per call."""
    n = layout[LAYOUT_N]
    nareas = layout[LAYOUT_NAREAS]
    areas = store[layout[LAYOUT_AREAS]:layout[LAYOUT_EXAM]].view(np.int64)
    lst = store[layout[LAYOUT_LIST]:layout[LAYOUT_ASIZE]].view(np.int32)
    asize = store[layout[LAYOUT_ASIZE]:layout[LAYOUT_ORIG]].view(np.uint64)
    orig = store[layout[LAYOUT_ORIG]:layout[LAYOUT_PAD]].view(np.uint64)
    pad = store[layout[LAYOUT_PAD]:layout[LAYOUT_PAD] + 2 * n].view(np.uint16)
    used = areas[nareas:2 * nareas]
    locks = areas[2 * nareas:3 * nareas]
    if search:
        return SlotArrays(lst, asize, orig, pad, areas[0:nareas], used, locks,
                          store[layout[LAYOUT_EXAM]:layout[LAYOUT_BYTES]].view(np.int64))
    return SlotArrays(lst, asize, orig, pad, used, used, locks, used)


@jit
def find_slots(store, layout, q, cpu, orig_addr, alloc_size, record):
    """Twin of :func:`swiotlb_lib.pool.pool_find_slots` (``swiotlb_pool_find_slots``, v6.6;
    the body of ``swiotlb_find_slots`` before): every area of one pool from
    ``cpu & (nareas - 1)`` round-robin, and with ``record`` of 0 or more the twin of
    :func:`~swiotlb_lib.pool.record_slots` in the slots found (``orig_addr`` is below 2**63
    here, so ``orig_addr + i * IO_TLB_SIZE`` does not wrap).  ``q`` is the device's
    ``min_align_mask`` and then the request's :func:`~swiotlb_lib.pool.search_params`
    (``shift`` ... ``unbounded``).  Returns the first slot taken or -1."""
    A = store_arrays(store, layout, True)
    nareas = layout[LAYOUT_NAREAS]
    area_nslabs = layout[LAYOUT_AREA_NSLABS]
    min_align_mask, shift, bmask, max_slots, zero_slots, cmp_slots, stride = q[0], q[1], q[2], q[3], q[4], q[5], q[6]
    nslots = (alloc_size + IO_TLB_SIZE - 1) >> IO_TLB_SHIFT
    if cmp_slots and orig_addr:
        orig_bits = (orig_addr >> IO_TLB_SHIFT) & cmp_slots
        skip_mask = zero_slots | cmp_slots
    else:
        orig_bits = 0
        skip_mask = zero_slots
    rest = alloc_size - (orig_addr & min_align_mask & (IO_TLB_SIZE - 1))
    start = a = cpu & (nareas - 1)
    while True:
        slot = search_slots(A, 0, 0, 0, a, nslots, rest, shift, bmask, max_slots, stride, q[7] != 0, skip_mask,
                            orig_bits, area_nslabs, layout[LAYOUT_ROUND_START] != 0)
        if slot >= 0:
            if record >= 0:
                first = slot + record
                if record:
                    A.p_pad[first] = record
                for i in range(first, slot + nslots):
                    A.p_orig[i] = np.uint64(orig_addr + (i - first) * IO_TLB_SIZE)
            return slot
        a += 1
        if a >= nareas:
            a = 0
        if a == start:
            return -1


@jit
def release_pool_slots(store, layout, offset, min_align_mask):
    """:func:`release` on a pool's store, of the buffer at ``offset`` bytes into the pool
    (its address less the pool's start, a multiple of ``IO_TLB_SIZE``, so the in-slot bits
    are the address's): twin of :func:`swiotlb_lib.pool.release_slots`."""
    return release(store_arrays(store, layout, False), 0, 0, 0, layout[LAYOUT_HAS_PAD] != 0, layout[LAYOUT_AREA_NSLABS],
                   offset, min_align_mask)
