"""The compiled engine's per-mapping window (:class:`swiotlb_lib.trace.fast.Window`), and the
timeline it thins as it goes (``timeline_points``).

A replay of a long trace keeps rows (``MI``, ``MF`` and the per-mapping results) only for the
mappings in flight: the rows of done mappings are reused, a few rows still in use move to
relocated rows, and the window doubles when more would have to.  Here the window starts at 2
or 8 rows, so random traces of tens to hundreds of mappings reuse rows all the time, relocate
some and make it grow, and each replay must leave the machine exactly as the reference engine
does (results, pools, transient pools, RFC v1's tree of live buffers, page allocator, log)."""
import random

import numpy as np
import pytest

from swiotlb_lib.boot import Machine
from swiotlb_lib.trace.engine import Engine, StopReplay
from swiotlb_lib.trace.fast import HAVE_NUMBA, CompiledEngine, ring_size
from swiotlb_lib.trace.lifetime import parse_lifetime
from swiotlb_lib.trace.read import Mapping
from swiotlb_lib.trace.requests import Request
from swiotlb_lib.trace.replay import prepare_replay, replay, thin_timeline
from swiotlb_lib.versions import get_profile

import test_trace_fast_dynamic as dyn_t
import test_trace_fast_rfc as rfc_t
from test_trace_fast import both, kprobe_trace, random_case

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="the window is the compiled engine's")
CASES = 120


def static_end_state(tr, profile, cmdline, lt, kw, cls, window=None, reqs=None) -> dict:
    """One replay of a profile without growth on engine class ``cls`` (of ``reqs``, a grouping
    made by hand, if given), and the machine after it."""
    prep = prepare_replay(tr, "auto", kw.get("device"))
    prof = get_profile(profile)
    m = Machine(ram=prep.ram_for(None, "6.12" if prof.pad_slots else "6.1"), cpus=kw.get("cpus", 4),
                cmdline=cmdline, kernel=prof)
    eng = cls(tr, m, parse_lifetime(lt, kw.get("seed", 1)), prep.reqs if reqs is None else reqs,
              kw.get("max_retries", 100),
              kw.get("livelock_repeats", 3), 0.003, kw.get("timeline", True), None, prep.template, None)
    eng.stop = kw.get("stop_when")
    if window is not None:
        eng.window = window
    try:
        eng.run()
    except StopReplay:
        pass
    if cls is CompiledEngine and eng.fallback is not None:
        assert eng.fallback == "no single boot pool", eng.fallback
        return None
    p = m.swiotlb.defpool
    return {"result": eng.finish().to_dict(), "tally": dict(eng.tally),
            "livelocks": [x.to_dict() for x in eng.livelocks],
            "pool": (p.list.tolist(), p.alloc_size.tolist(), p.orig_addr.tolist(), p.pad_slots.tolist(),
                     list(p.area_index), list(p.area_used), list(p.area_locks), p.slots_examined),
            "log": list(m.log.lines), "peak": eng.peak,
            "timeline": (list(eng.tl_t), list(eng.tl_u)) if eng.tl_t is not None else None,
            "window": ((eng.ring.w, eng.ring.reused, eng.ring.filled, eng.ring.relocated)
                       if window is not None else None)}


def agree(a: dict, b: dict, seen: dict, window: int, n: int, may_stop: bool) -> None:
    w, reused, made, relocated = b.pop("window")
    a.pop("window")
    diff = sorted(key for key in a if a[key] != b[key])
    assert not diff, f"engines differ on {diff}"
    seen["reused"] += reused > 0
    seen["grew"] += w > window
    seen["relocated"] += relocated > 0
    # a row was made for every mapping, unless the replay may have stopped early
    assert made == n or (may_stop and made < n), (made, n)
    assert 0 <= reused < max(made, 1), (w, reused, made)


def check(seen: dict) -> None:
    """Both ways of making room happened in many of the cases."""
    assert seen["reused"] >= CASES // 4 and seen["grew"] >= CASES // 10, seen


def test_window_size():
    assert [ring_size(n) for n in (0, 1, 2, 3, 64, 65, 1 << 16, (1 << 16) + 1, 10 ** 7)] == \
        [2, 2, 2, 4, 64, 128, 1 << 16, 1 << 16, 1 << 16]
    assert ring_size(100, 8) == 8


@pytest.mark.parametrize("profile", ["v6.3rc", "v6.11"])
def test_static_profiles_agree_through_a_small_window(profile):
    rng = random.Random(f"window-{profile}")
    seen = {"reused": 0, "grew": 0, "no pool": 0, "relocated": 0}
    for k in range(CASES):
        tr, prof, cmdline, lt, kw = random_case(rng, profile)
        kw.pop("follow", None)
        window = rng.choice([2, 8])
        b = static_end_state(tr, prof, cmdline, lt, kw, CompiledEngine, window)
        if b is None:                                   # a machine without a pool: nothing compiled
            seen["no pool"] += 1
            continue
        a = static_end_state(tr, prof, cmdline, lt, kw, Engine)
        agree(a, b, seen, window, len(tr.mappings), "stop_when" in kw)
    assert seen["no pool"] < CASES // 5 and seen["relocated"] >= CASES // 10, seen
    check(seen)


@pytest.mark.parametrize("profile", dyn_t.GROWING)
def test_growing_profiles_agree_through_a_small_window(profile):
    rng = random.Random(f"window-{profile}")
    seen = {"reused": 0, "grew": 0, "no pool": 0, "relocated": 0}
    for k in range(CASES):
        tr, prof, cmdline, lt, kw = dyn_t.random_dyn_case(rng, profile)
        window = rng.choice([2, 8])
        a = dyn_t.end_state(tr, prof, cmdline, lt, kw, Engine)
        if a is None:                                   # no pool at boot: nothing compiled
            seen["no pool"] += 1
            continue
        b = dyn_t.end_state(tr, prof, cmdline, lt, kw, CompiledEngine, window=window)
        agree(a, b, seen, window, len(tr.mappings), "stop_when" in kw)
    assert seen["no pool"] < CASES // 5 and seen["relocated"] >= CASES // 10, seen
    check(seen)


def test_rfc_agrees_through_a_small_window():
    rng = random.Random("window-rfc")
    seen = {"reused": 0, "grew": 0, "relocated": 0}
    for k in range(CASES):
        tr, cmdline, lt, kw = rfc_t.random_rfc_case(rng)
        window = rng.choice([2, 8])
        a = rfc_t.end_state(tr, cmdline, lt, kw, Engine)
        b = rfc_t.end_state(tr, cmdline, lt, kw, CompiledEngine, window=window)
        agree(a, b, seen, window, len(tr.mappings), "stop_when" in kw)
    assert seen["relocated"] == 0, seen                 # RFC v1's window doubles instead (Window._keep)
    check(seen)


def long_lived_trace(n: int) -> object:
    """The first mapping is unmapped only at the end, after ``n`` others that live 30 us each."""
    events = []
    first = Mapping(0, 1.0, 0, "fio-1", "0000:00:04.0", (1 << 64) - 1, 0x10000000, 8192, "FORCE", dir=1)
    events.append((1.0, 0, first))
    for k in range(n):
        t = 1.0 + (k + 1) * 1e-5
        mp = Mapping(0, t, k % 4, "fio-1", "0000:00:04.0", (1 << 64) - 1, 0x20000000 + (k % 500) * 0x3000,
                     4096 + 512 * (k % 5), "FORCE", dir=1)
        events.append((t, 0, mp))
        events.append((t + 3e-5, 1, mp))
    events.append((1.0 + (n + 1) * 1e-5, 1, first))
    return kprobe_trace(events, "live-to-the-end")


@pytest.mark.parametrize("n, window", [(300, 8), (3000, 64)])
def test_a_mapping_live_to_the_end_keeps_its_row_relocated(n, window):
    """The first mapping's request stays live to the end, so its row stays in use: the window
    moves it to a relocated row and goes on reusing the others instead of growing to hold every
    mapping from it on, and its release frees its own slots (were its row reused, the unmap
    would release another mapping's slots, or none)."""
    tr = long_lived_trace(n)
    kw = {"cpus": 4}
    a = static_end_state(tr, "v6.11", "swiotlb=4096,force", "real", kw, Engine)
    b = static_end_state(tr, "v6.11", "swiotlb=4096,force", "real", kw, CompiledEngine, window)
    w, reused, made, relocated = b.pop("window")
    a.pop("window")
    assert a == b and made == n + 1
    assert w == window and reused > n - 2 * window and relocated >= 1
    assert np.all(np.array(b["pool"][0][:4096]) > 0) and b["result"]["failed"] == 0     # all free again


def test_the_window_doubles_when_relocated_rows_would_be_many():
    """Every mapping lives while the next 200 are made: far more rows in use than one in
    RELOCATE_SHARE of a 16-row window, so it doubles, to hold the mappings in flight (not the
    whole trace), with the reference engine's results."""
    events = []
    for k in range(2000):
        t = 1.0 + k * 1e-5
        mp = Mapping(0, t, k % 4, "fio-1", "0000:00:04.0", (1 << 64) - 1, 0x20000000 + (k % 500) * 0x3000,
                     4096, "FORCE", dir=1)
        events.append((t, 0, mp))
        events.append((t + 2e-3, 1, mp))
    tr = kprobe_trace(events, "many-live")
    kw = {"cpus": 4}
    a = static_end_state(tr, "v6.11", "swiotlb=4096,force", "real", kw, Engine)
    b = static_end_state(tr, "v6.11", "swiotlb=4096,force", "real", kw, CompiledEngine, 16)
    w, reused, made, _ = b.pop("window")
    a.pop("window")
    assert a == b and made == 2000 and 256 <= w <= 1024 and reused > 1000


def test_thin_timeline_keeps_the_first_highest_of_each_stretch():
    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 3, 7, 8, 9, 100, 1000, 4097):
        for points in (1, 2, 3, 5, 64, 5000):
            t, used = np.arange(n) * 0.5, rng.integers(0, 4, n)
            got_t, got_u = thin_timeline(t, used, points)
            s = 1                                       # the shortest stretch of 2**k that fits
            while -(-n // s) > points:
                s *= 2
            want = [lo + int(np.argmax(used[lo:lo + s])) for lo in range(0, n, s)]
            assert got_t.tolist() == t[want].tolist() and got_u.tolist() == used[want].tolist()
            assert len(got_t) <= points


@pytest.mark.parametrize("profile", ["v6.11", "v6.11-dynamic", "rfc-v1"])
def test_engines_thin_the_timeline_alike(profile):
    """The compiled engine merges points in pairs as the timeline grows; the reference thins the
    whole timeline at the end: the same points."""
    rng = random.Random(f"thin-{profile}")
    thinned = 0
    for k in range(CASES // 2):
        if profile == "rfc-v1":
            tr, cmdline, lt, kw = rfc_t.random_rfc_case(rng)
            kw.pop("ram")
            prep = prepare_replay(tr)
        else:
            make = dyn_t.random_dyn_case if get_profile(profile).is_dynamic else random_case
            tr, _, cmdline, lt, kw = make(rng, profile)
            prep = prepare_replay(tr, "auto", kw.pop("device"))
            kw["device"] = prep.device
        kw["timeline"] = True
        points = rng.choice([1, 2, 3, 8, 50])
        full = replay(prep, profile, cmdline, lt, engine="reference", **kw).timeline
        out = both(prep, profile, cmdline, lt, timeline_points=points, **kw)
        if not out.get("compiled", True):
            continue
        assert len(out["timeline_t"]) <= points
        want = thin_timeline(full.t, full.used, points)
        assert (out["timeline_t"], out["timeline_used"]) == tuple(a.tolist() for a in want)
        thinned += len(full.t) > 2 * points
    assert thinned >= CASES // 8


@pytest.mark.parametrize("bad", [0, -3, 2.5, "100", True])
def test_timeline_points_is_checked(bad):
    tr = kprobe_trace([(1.0, 0, Mapping(0, 1.0, 0, "fio-1", "0000:00:04.0", (1 << 64) - 1, 0x10000000, 4096,
                                         "FORCE"))], "one")
    with pytest.raises(ValueError, match=r"^timeline_points: must be a positive integer or None, got "):
        replay(tr, "v6.11", "swiotlb=128,force", timeline_points=bad)


def test_a_requeued_request_maps_members_the_trace_has_not_reached():
    """Request B = mappings 4, 12 and 13 fails at 4 (the four 240 KiB mappings of request A fill
    the 512-slot pool) and, dispatched again from its queue, maps 12 and 13 before the loop
    reaches them: their rows must be made ahead, whatever the window (8 rows here)."""
    events = []
    sizes = [240 << 10] * 4 + [64 << 10] + [4096] * 7 + [64 << 10] * 2 + [4096] * 5
    for k, size in enumerate(sizes):
        t = 1.0 + (k + 1) * 1e-5
        mp = Mapping(0, t, 0, "fio-1", "0000:00:04.0", (1 << 64) - 1, 0x10000000 + k * 0x100000, size, "FORCE",
                     dir=1)
        events += [(t, 0, mp), (t + 1e-3, 1, mp)]
    tr = kprobe_trace(events, "ahead")
    reqs = sorted([Request([0, 1, 2, 3], "0000:00:04.0", 0, "mapping"),
                   Request([4, 12, 13], "0000:00:04.0", 0, "virtio-blk")]
                  + [Request([k], "0000:00:04.0", 1, "mapping") for k in [*range(5, 12), *range(14, 19)]],
                  key=lambda r: r.members[0])
    kw = {"cpus": 4, "max_retries": 3}
    a = static_end_state(tr, "v6.11", "swiotlb=128,force", "qd:2", kw, Engine, reqs=reqs)
    b = static_end_state(tr, "v6.11", "swiotlb=128,force", "qd:2", kw, CompiledEngine, 8, reqs=reqs)
    b.pop("window")
    a.pop("window")
    assert a == b
    assert a["result"]["failed"] > 0 and a["tally"]["requeued"] > 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, None])
def test_thin_timeline_checks_points(bad):
    with pytest.raises(ValueError, match=r"^points: must be a positive integer, got "):
        thin_timeline(np.arange(3.0), np.arange(3), bad)


def test_a_huge_timeline_points_runs_on_both_engines():
    tr = random_case(random.Random(3), "v6.11")[0]
    out = both(prepare_replay(tr), "v6.11", "swiotlb=256,force", "fixed:1ms", timeline_points=1 << 63)
    assert len(out["timeline_t"]) > 1
