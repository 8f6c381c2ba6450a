"""The compiled engine's per-mapping rows: what ``swiotlb_tbl_map_single()`` and dma-direct work
out from a mapping alone, before any search (the ``MI`` and ``MF`` fields of
:mod:`~swiotlb_lib.trace.fast_state`).

Part of the compiled engine (:mod:`swiotlb_lib.trace.fast`): :class:`~swiotlb_lib.trace.fast.Window`
makes the rows of the next mappings as a replay reaches them, straight into the state's window,
so a replay never holds rows for the whole trace.  The rules, for mapping ``i`` of device ``d``:

- the allocation size (``swiotlb_tbl_map_single()``, ``kernel/dma/swiotlb.c``): before 6.9
  the mapping's size plus its offset within a slot under the device's ``min_align_mask``; from
  6.9 (``pool.has_pad``, commit af133562d5af "swiotlb: extend buffer pre-padding to
  alloc_align_mask if necessary") the offset under ``min_align_mask & (alloc_align_mask |
  (IO_TLB_SIZE - 1))``, split into whole pad slots and the offset in the first slot, and the
  total rounded up to the alignment;
- the kind of request (device, ``alloc_align_mask``, a page or more) whose search constants
  (:func:`swiotlb_lib.pool.search_params`, made in Python once per kind) the search uses, and
  the alignment test's bits of the original address;
- whether dma-direct maps it without bouncing (``dma_capable()`` of its last byte, no force),
  whether ``swiotlb_map()`` checks the bounce address afterwards, and the flags of the messages
  it may print (``alloc_align_mask`` above a page on 6.9+, ``DMA_ATTR_NO_WARN``);
- for RFC v1, :func:`~swiotlb_lib.trace.fast_rfc.rfc_field`.

Columns that are the same for every mapping of a trace arrive as one element (:func:`one`).
"""
from __future__ import annotations

import numpy as np

from ..constants import DMA_ATTR_NO_WARN, IO_TLB_SHIFT, IO_TLB_SIZE, PAGE_SIZE, U64
from .fast_rfc import rfc_field
from .fast_state import (M_ALIGNWARN, M_ASIZE, M_CPU, M_DEV, M_DIRECT, M_END, M_ENDLINE, M_LINE, M_LOST,
                         M_NOWARN, M_NSLOTS, M_OBITS, M_PAD, M_PARAM, M_REST, M_RFC, M_SIZE, M_SKIP, M_SWMAP,
                         M_TIME, M_TLBOFF, NO_HANDLE, P_OLDEST, P_WMASK, Q_CMP, Q_ZERO, jit, jit_inline)

_SLOT_MASK = IO_TLB_SIZE - 1


def one(a: np.ndarray) -> np.ndarray:
    """Column ``a`` as the row functions take it: itself, or its one value when it is the same
    for every mapping (a broadcast view), so that both compile to one specialization."""
    return np.ascontiguousarray(a[:1]) if a.ndim and a.strides[0] == 0 else np.ascontiguousarray(a)


@jit_inline
def _at(a, i):
    """``a[i]``, or the one value of a column that has one (:func:`one`)."""
    return a[i] if a.shape[0] > 1 else a[0]


@jit_inline
def _alloc(mam, orig, size, align, has_pad):
    """The allocation size with its offset (and 6.9+ padding and rounding), the offset in the
    first slot, the pad slots and the bytes the search must fit after the first slot's offset
    (``M_ASIZE``, ``M_TLBOFF``, ``M_PAD``, ``M_REST``)."""
    low = np.int64(orig & np.uint64(_SLOT_MASK))
    if has_pad:
        offset = np.int64(orig & np.uint64(mam & (align | _SLOT_MASK)))
        raw = size + offset
        asz = -(-raw // (align + 1)) * (align + 1) if align > 0 else raw
        return asz, offset & _SLOT_MASK, offset >> IO_TLB_SHIFT, asz - (low & mam)
    offset = low & mam
    return size + offset, offset, 0, size


@jit_inline
def _kind(dev, align, asz):
    """The kind of request: ``(device << 34) | (alloc_align_mask << 1) | big``."""
    return (dev << 34) | (align << 1) | (1 if asz >= PAGE_SIZE else 0)


@jit
def kinds(out, lo, dev, orig, size, align, d_mam, has_pad):
    """The kinds of request of mappings ``lo`` to ``lo + len(out)`` into ``out``."""
    for r in range(out.shape[0]):
        i = lo + r
        d = np.int64(dev[i])
        al = _at(align, i)
        asz = _alloc(d_mam[d], orig[i], size[i], al, has_pad)[0]
        out[r] = _kind(d, al, asz)


@jit
def fill_rows(S, lo, hi, dev, cpu, orig, size, align, attrs, line, endline, time, end, lost, d_mam, reach_u,
              has_pad, force, rfc, uniq, params):
    """The ``MI`` and ``MF`` rows of mappings ``lo..hi-1``, in the window's rows of ``S``, with
    their results not made yet (``tlb_of``, ``handle_of``, ``pool_of``)."""
    m = S.P[P_WMASK]
    MI, MF, tlb_of, handle_of, pool_of = S.MI, S.MF, S.tlb_of, S.handle_of, S.pool_of   # no call below
    for i in range(lo, hi):
        j = i & m
        d = np.int64(dev[i])
        o = orig[i]
        sz = size[i]
        al = _at(align, i)
        at = _at(attrs, i)
        mam = d_mam[d]
        asz, tlboff, pad, rest = _alloc(mam, o, sz, al, has_pad)
        q = np.searchsorted(uniq, _kind(d, al, asz))
        zero, cmp = params[q, Q_ZERO], params[q, Q_CMP]
        MI[j, M_DEV] = d
        MI[j, M_CPU] = cpu[i]
        MI[j, M_SIZE] = sz
        MI[j, M_PARAM] = q
        MI[j, M_NSLOTS] = (asz + IO_TLB_SIZE - 1) >> IO_TLB_SHIFT
        MI[j, M_REST] = rest
        MI[j, M_TLBOFF] = tlboff
        MI[j, M_PAD] = pad
        MI[j, M_SKIP] = (zero | cmp) if o != 0 else zero
        MI[j, M_OBITS] = (np.int64(o >> np.uint64(IO_TLB_SHIFT)) & cmp) if o != 0 else 0
        MI[j, M_DIRECT] = (o + np.uint64(sz - 1)) <= reach_u[d] and not force
        MI[j, M_SWMAP] = al == 0 and reach_u[d] != np.uint64(U64)
        MI[j, M_ALIGNWARN] = al > PAGE_SIZE - 1 and has_pad
        MI[j, M_NOWARN] = (at & DMA_ATTR_NO_WARN) != 0
        MI[j, M_LINE] = line[i]
        MI[j, M_ENDLINE] = _at(endline, i)
        MI[j, M_ASIZE] = asz
        MI[j, M_RFC] = rfc_field(sz, al, mam, at) if rfc else -1
        MF[j, M_TIME] = time[i]
        MF[j, M_END] = _at(end, i)
        MF[j, M_LOST] = _at(lost, i)
        tlb_of[j] = -1
        handle_of[j] = NO_HANDLE
        pool_of[j] = 0
    S.P[P_OLDEST] = max(S.P[P_OLDEST], hi - (m + 1))     # the mappings whose rows these were


@jit
def alloc_of(i, dev, orig, size, align, d_mam, has_pad):
    """``M_ASIZE``, ``M_PAD`` and ``M_NSLOTS`` of mapping ``i`` (for the write-back, after its
    row may have been reused)."""
    d = np.int64(dev[i])
    asz, tlboff, pad, rest = _alloc(d_mam[d], orig[i], size[i], _at(align, i), has_pad)
    return asz, pad, (asz + IO_TLB_SIZE - 1) >> IO_TLB_SHIFT
