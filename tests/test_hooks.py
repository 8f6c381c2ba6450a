"""The model's hook points (:mod:`swiotlb_lib.debug`): what a probe sees, worked out by hand
from the search rules of ``kernel/dma/swiotlb.c@afd81d914f6f: swiotlb_search_pool_area()``
(v6.11 profile), and that unsubscribing stops the delivery."""
from types import SimpleNamespace

import pytest

from swiotlb_lib import debug
from swiotlb_lib import trace as T
from swiotlb_lib.constants import ULONG_MAX
from swiotlb_lib.debug import (POOL_ADDED, REPLAY_MAP_FAILED, SEARCH_AREA, ReplayMapFailedEvent,
                               SearchAreaEvent, observe, subscribe)
from swiotlb_lib.memory import PhysMemory
from swiotlb_lib.pool import IoTlbPool, pool_find_slots, search_pool_area
from swiotlb_lib.swiotlb import IoTlbMem
from swiotlb_lib.versions import get_profile

KiB = 1024


def search(pool, area, size):
    """One area search of ``size`` bytes at original address 0, no alignment masks."""
    return search_pool_area(pool, area, 0, size, 0, 0, ULONG_MAX)


def test_search_area_events_worked_by_hand():
    # 256 slots in 2 areas of 128.  v6.11: a request of >= 4 KiB without alignment masks
    # must start on an even slot (zero mask 0xfff) and steps by 2; a 2 KiB one by 1.
    pool = IoTlbPool(0, 256, 2, get_profile("v6.11"))
    seen = []
    sub = subscribe("search_area", seen.append)
    assert search(pool, 0, 2 * KiB) == 0            # slot 0 free: taken, area 0 index -> 1
    assert search(pool, 0, 4 * KiB) == 2            # slot 1 odd: skipped; slot 2 has 126 free
    assert search(pool, 1, 256 * KiB) == 128        # all of area 1 (index wraps to 0)
    assert search(pool, 1, 2 * KiB) == -1           # area 1 full: not searched at all
    # area 0 has 125 free slots (3..127), but a 125-slot buffer must start on an even
    # slot: from index 4 the even slots 4..126 (62 candidates) and, after the wrap,
    # 0 and 2 are examined, 128 slots checked in all, and none has 125 free after it
    assert search(pool, 0, 125 * 2 * KiB) == -1
    # through pool_find_slots from CPU 1: area 1 first (full), then area 0 from index 4
    dev = SimpleNamespace(min_align_mask=0, seg_boundary=ULONG_MAX)
    assert pool_find_slots(pool, dev, 0, 2 * KiB, 0, cpu=1) == 4
    sub.unsubscribe()
    assert seen == [
        SearchAreaEvent(pool, 0, 0, 1, 1, 0),
        SearchAreaEvent(pool, 0, 1, 2, 2, 2),
        SearchAreaEvent(pool, 1, 128, 128, 1, 128),
        SearchAreaEvent(pool, 1, -1, 1, 0, -1),
        SearchAreaEvent(pool, 0, 4, 125, 64, -1),
        SearchAreaEvent(pool, 1, -1, 1, 0, -1),
        SearchAreaEvent(pool, 0, 4, 1, 1, 4),
    ]
    assert pool.slots_examined == sum(e.examined for e in seen) == 69
    assert seen[1]._asdict() == {"pool": pool, "area": 0, "start": 1, "nslots": 2, "examined": 2, "slot": 2}


def test_unsubscribe_stops_delivery():
    pool = IoTlbPool(0, 128, 1, get_profile("v6.11"))
    a, b = [], []
    sub_a = subscribe(SEARCH_AREA, a.append)
    with observe("search_area", b.append) as sub_b:
        search(pool, 0, 2 * KiB)
        assert sub_b.active
    assert not sub_b.active
    search(pool, 0, 2 * KiB)
    sub_a.unsubscribe()
    sub_a.unsubscribe()                             # a second time does nothing
    search(pool, 0, 2 * KiB)
    assert [e.slot for e in a] == [0, 1] and [e.slot for e in b] == [0]
    assert SEARCH_AREA.probes == []
    with subscribe("search_area", a.append):        # the handle is a context manager too
        search(pool, 0, 2 * KiB)
    search(pool, 0, 2 * KiB)
    assert [e.slot for e in a] == [0, 1, 3] and SEARCH_AREA.probes == []


def test_observe_unsubscribes_when_the_block_raises():
    with pytest.raises(RuntimeError):
        with observe("replay_map_failed", print):
            raise RuntimeError("boom")
    assert REPLAY_MAP_FAILED.probes == []


def test_bad_subscriptions():
    with pytest.raises(ValueError, match="point: must be one of search_area, pool_added, replay_map_failed"):
        subscribe("swiotlb_bounced", print)
    with pytest.raises(TypeError, match="fn: must be callable"):
        subscribe("search_area", None)
    assert set(debug.TRACEPOINTS) == {"search_area", "pool_added", "replay_map_failed"}


def test_pool_added_fires_for_the_default_pool():
    mem = IoTlbMem("v6.11", memory=PhysMemory(), nr_cpus=4)
    seen = []
    with observe(POOL_ADDED, seen.append):
        pool = mem.init_pool(0x7C000000, 256, 2)
    assert [(e.mem, e.pool) for e in seen] == [(mem, pool)]


def _line(t, size, addr):
    return (f"{'dd-100':>16}     [000] d..1. {t:12.6f}: swiotlb_bounced: dev_name: 0000:00:02.0 "
            f"dma_mask=ffffffffffffffff dev_addr={addr:x} size={size} FORCE")


def test_replay_map_failed_fires_at_the_failed_attempts():
    # swiotlb=128,force on one CPU: a 128-slot pool.  Lone 128 KiB mappings (64 slots each)
    # that live 2.5 ms, at 0, 1, 2, 2.2 and 3 ms: the first two fill the pool, the ones at
    # 2 and 2.2 ms fail with 128 slots in use (and are dropped), the first completes at
    # 2.5 ms and the one at 3 ms gets its slots.
    times = [0.0, 0.001, 0.002, 0.0022, 0.003]
    tr = T.parse_trace([_line(t, 128 * KiB, 0x1000000 + k * 0x100000) for k, t in enumerate(times)])
    seen = []
    with observe("replay_map_failed", seen.append):
        r = T.replay(tr, "v6.11", "swiotlb=128,force", "fixed:2500us", requests="none", cpus=1)
    assert r.nslabs == 128 and r.result.failed == 2 and r.result.mapped == 3
    assert seen == [ReplayMapFailedEvent(0.002, 128, 131072, 3), ReplayMapFailedEvent(0.0022, 128, 131072, 4)]
    T.replay(tr, "v6.11", "swiotlb=128,force", "fixed:2500us", requests="none", cpus=1)
    assert len(seen) == 2                           # not subscribed any more
