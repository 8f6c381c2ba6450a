"""Replay that follows the recording (swiotlb_lib/trace/follow.py), on hand-made kprobe traces."""
import json

import pytest

from swiotlb_lib import trace as T
from swiotlb_lib.boot import Machine
from swiotlb_lib.trace.follow import infer_min_align_mask

DEV = "0000:00:02.0"


def kmap(t, orig, size, tlb, cpu=0):
    """swiotlb_bounced + map + map_ret of one mapping (tlb None: the kernel failed)."""
    ret = 0xFFFFFFFFFFFFFFFF if tlb is None else tlb
    return [f"dd-1 [{cpu:03d}] d..1. {t:.6f}: swiotlb_bounced: dev_name: {DEV} dma_mask=ffffffffffffffff "
            f"dev_addr={orig:x} size={size} FORCE",
            f"dd-1 [{cpu:03d}] d..1. {t + 1e-6:.6f}: map: (swiotlb_tbl_map_single+0x4/0x770) orig={orig:#x} "
            f"size={size} align_mask=0x0 dir=1 attrs=0x0",
            f"dd-1 [{cpu:03d}] d..1. {t + 2e-6:.6f}: map_ret: (swiotlb_map+0x6c/0x280 <- swiotlb_tbl_map_single) "
            f"tlb={ret:#x}"]


def kunmap(t, tlb, size=4096):
    return [f"<idle>-0 [000] d.h1. {t:.6f}: unmap: (__swiotlb_tbl_unmap_single+0x4/0x60) tlb={tlb:#x} "
            f"size={size} dir=1"]


CMD = "swiotlb=128,force"


@pytest.fixture(scope="module")
def start():
    m = Machine(ram="2G", cpus=1, cmdline=CMD, kernel="v6.11")
    return m.swiotlb.defpool.start


def slot(start, k):
    return start + k * 2048


def test_follow_compares_each_decision_on_the_kernel_state(start):
    # one CPU, one 128-slot area, 4 KiB mappings (2 slots each), worked by hand:
    # A at slot 0 (model: 0, same); B at slot 4 (model: 2, the first divergence; the kernel's
    # slot 4 is applied, index 6); C at 6 (model 6: same, no cascade); A unmapped; D failed in
    # the kernel (model: slot 8, a failure it does not share; index stays 8); E at 8 (same);
    # F at slot 4, which the model still holds for B: B's unmap was lost (released, counted);
    # model: 10 (differs).  Then C, E, F are unmapped.
    lines = (kmap(1.0, 0x100000, 4096, slot(start, 0)) + kmap(1.1, 0x200000, 4096, slot(start, 4))
             + kmap(1.2, 0x300000, 4096, slot(start, 6)) + kunmap(1.25, slot(start, 0))
             + kmap(1.3, 0x400000, 4096, None) + kmap(1.4, 0x500000, 4096, slot(start, 8))
             + kmap(1.5, 0x600000, 4096, slot(start, 4))
             + kunmap(1.6, slot(start, 6)) + kunmap(1.6, slot(start, 8)) + kunmap(1.6, slot(start, 4)))
    tr = T.parse_trace(lines)
    r = T.replay(tr, "v6.11", CMD, cpus=1)
    x = r.result.extra
    assert x["follow"] is True
    assert r.result.attempted == 6 and r.result.failed == 0
    assert x["failure_agreement"] == "0/1" and x["kernel_failed"] == 1
    assert x["slot_agreement"] == "3/5"
    assert x["lost_unmaps"] == 1 and x["lost_unmaps_reused"] == 1
    d = x["first_divergence"]
    assert d["line"] == 5 and d["kernel"] == f"{slot(start, 4):#x}" and d["model"] == f"{slot(start, 2):#x}"
    j = json.loads(json.dumps(r.to_dict()))
    for k in ("failed", "failure_agreement", "slot_agreement", "lost_unmaps", "first_divergence"):
        assert k in j
    assert "first divergence: line 5" in "\n".join(r.summary_lines())


def test_follow_model_failure_is_counted(start):
    # 128 slots: A takes 64 slots (128 KiB) at slot 0, B 64 slots at 64: the pool is full.
    # C (2 slots) is mapped by the kernel at slot 0: A's unmap was lost; it is released
    # first (the kernel's state had slot 0 free), so the model finds slot 0 too.  D (256 KiB,
    # 128 slots) fails in the kernel and in the model: 1/1.  C is never unmapped: counted
    # as lost at the end.
    lines = (kmap(1.0, 0x100000, 131072, slot(start, 0)) + kmap(1.1, 0x200000, 131072, slot(start, 64))
             + kmap(1.2, 0x300000, 4096, slot(start, 0)) + kmap(1.3, 0x400000, 262144, None))
    r = T.replay(T.parse_trace(lines + kunmap(2.0, slot(start, 64), 131072)), "v6.11", CMD, cpus=1)
    x = r.result.extra
    assert x["slot_agreement"] == "3/3" and x["failure_agreement"] == "1/1" and r.result.failed == 1
    assert x["lost_unmaps"] == 2 and x["lost_unmaps_reused"] == 1    # A by reuse, C at the end


def test_configuration_mismatch_is_one_clear_error(start):
    lines = kmap(1.0, 0x100000, 4096, slot(start, 0)) + kmap(1.1, 0x200000, 4096, 0x1000) \
        + kunmap(1.2, slot(start, 0))
    with pytest.raises(ValueError, match=r"line 5: the kernel's bounce address 0x1000 lies outside every pool"):
        T.replay(T.parse_trace(lines), "v6.11", CMD, cpus=1, follow=True)
    # wholly outside: a what-if at another configuration, said in a warning
    far = T.parse_trace(kmap(1.0, 0x100000, 4096, 0x1000) + kunmap(1.2, 0x1000))
    r = T.replay(far, "v6.11", CMD, cpus=1)
    assert "follow" not in r.result.extra and any("not following" in w for w in r.warnings)
    with pytest.raises(ValueError, match="outside every pool"):
        T.replay(far, "v6.11", CMD, cpus=1, follow=True)
    with pytest.raises(ValueError, match="follow: needs a kprobe trace"):
        T.replay(T.tracepoint_only(far), "v6.11", CMD, cpus=1, follow=True)


def test_min_align_mask_inferred_and_from_a_preset(start):
    # NVMe keeps the low 12 bits of the original (min_align_mask 0xfff): an original at
    # offset 0x800 in its page lands at an odd slot.
    tr = T.parse_trace(kmap(1.0, 0x100800, 4096, slot(start, 1)) + kunmap(1.1, slot(start, 1)))
    assert infer_min_align_mask(tr) == 0xFFF
    r = T.replay(tr, "v6.11", CMD, cpus=1)
    assert r.result.extra["slot_agreement"] == "1/1"
    virtio = T.parse_trace(kmap(1.0, 0x1000f8, 16, slot(start, 0)))
    assert infer_min_align_mask(virtio) == 0
    aligned = T.parse_trace(kmap(1.0, 0x100000, 4096, slot(start, 0)) + kunmap(1.1, slot(start, 0)))
    assert infer_min_align_mask(aligned) == 0          # the trace cannot tell: give the preset
    assert T.replay(aligned, "v6.11", CMD, cpus=1, device="nvme").result.extra["slot_agreement"] == "1/1"
    with pytest.raises(ValueError, match="device preset"):
        T.replay(aligned, "v6.11", CMD, cpus=1, device="floppy")


def test_public_traces():
    r = T.replay("data/realkernel/trace-512-force-2G-kprobes.txt", "v6.11", "swiotlb=512,2,force")
    x = r.result.extra
    assert abs(r.result.failed - 56) <= 2
    k, n = map(int, x["failure_agreement"].split("/"))
    assert n == 56 and k >= 54
    nv = T.replay("data/realkernel-nvme/trace-N1-force.txt", "v6.11", device="nvme")
    same, compared = nv.result.extra["slot_agreement"].split("/")
    assert same == compared == "6413" and nv.result.extra["lost_unmaps"] == 1056


def vblk(t, slots, sizes, base=0x100000, failed_at=None):
    """One virtio-blk request as a kprobe trace records it: header (16 bytes), data, status
    (1 byte), mapped by the kernel at ``slots``; ``failed_at``: index of the mapping the
    kernel failed (the attempt ends there)."""
    out = []
    for k, size in enumerate(sizes):
        out += kmap(t + k * 1e-5, base + k * 0x40000, size, None if k == failed_at else slots[k])
        if k == failed_at:
            break
    return out


def test_no_follow_releases_what_the_kernel_failed(start):
    # The kernel's first attempt of a request mapped its header (slot 0), failed its 4 KiB data
    # and unmapped the header; its retry (later in the trace) mapped header, data and status
    # and unmapped them.  The model, with an empty pool, maps the data the kernel failed: that
    # attempt is over (the trace has the retry), so the model gives it back at once instead of
    # holding it for ever.  Nothing fails, nothing is left in use.
    s0, s2, s4 = slot(start, 0), slot(start, 2), slot(start, 4)
    lines = (vblk(1.0, [s0], [16, 4096], failed_at=1) + kunmap(1.01, s0, 16)
             + vblk(1.1, [s0, s2, s4], [16, 4096, 1]) + kunmap(1.2, s0, 16) + kunmap(1.2, s2) + kunmap(1.2, s4, 1))
    r = T.replay(T.parse_trace(lines), "v6.11", CMD, cpus=1, follow=False, requests="virtio-blk")
    x = r.result.extra
    assert r.result.failed == 0 and x["live_at_end"] == 0 and x["aborted_in_trace"] == 1
    assert r.timeline.used[-1] == 0


def test_no_follow_requeues_as_blk_mq_does(start):
    # 128 slots, one area.  P (t=1.0): header 1 slot, data 128 KiB (64) and 64 KiB (32),
    # status 1: 98 slots, unmapped at 1.105.  Q (t=1.1): header 1, data 128 KiB (64): with
    # 98 + 1 in use, 29 free, the data fails (attempt 1).  blk_mq_dispatch_rq_list() reruns
    # the queue at once (no SCHED_RESTART yet): fails (2); then after BLK_MQ_RESOURCE_DELAY,
    # at 1.103: fails (3); P completes at 1.105 after its last unmap (the 128 KiB data;
    # __blk_mq_free_request() restarts the queue once per request, not after each unmap,
    # when Q would fail three more times): the queue runs and Q maps.  3 failed attempts,
    # 3 retries, 1 request requeued.
    P = vblk(1.0, [slot(start, 0), slot(start, 1), slot(start, 65), slot(start, 97)], [16, 131072, 65536, 1])
    # (recorded with a larger pool: Q's recorded slots lie beyond these 128)
    Q = vblk(1.1, [slot(start, 200), slot(start, 202), slot(start, 266)], [16, 131072, 1])
    lines = (P + Q + kunmap(1.105, slot(start, 97), 1) + kunmap(1.105, slot(start, 0), 16)
             + kunmap(1.105, slot(start, 65), 65536) + kunmap(1.105, slot(start, 1), 131072)
             + kunmap(1.2, slot(start, 200), 16) + kunmap(1.2, slot(start, 202), 131072)
             + kunmap(1.2, slot(start, 266), 1))
    r = T.replay(T.parse_trace(lines), "v6.11", CMD, cpus=1, follow=False, requests="virtio-blk")
    x = r.result.extra
    assert (r.result.failed, x["retries"], x["requests_requeued"]) == (3, 3, 1)
    assert x["requests_completed"] == 2 and x["gave_up"] == 0 and x["livelocked_requests"] == 0
    assert r.timeline.used[-1] == 0


def test_no_follow_on_the_public_two_cpu_trace():
    # the kernel failed 56 mappings (data/realkernel/README.md); a replay that takes every
    # decision itself must land within a factor of two, with no livelock and no pile-up
    r = T.replay("data/realkernel/trace-512-force-2G-kprobes.txt", "v6.11", "swiotlb=512,2,force", follow=False)
    x = r.result.extra
    assert 28 <= r.result.failed <= 112
    assert x["livelocked_requests"] == 0 and x["gave_up"] == 0 and x["live_at_end"] == 0


def test_lost_unmaps_are_inferred_for_a_what_if_replay(start):
    # Worked by hand.  A (t=1.0, 4 KiB at slot 0) and B (t=1.0, 4 KiB at slot 2) are lone
    # mappings; A's unmap is lost, B is unmapped at 1.002.  C (t=1.5) is mapped by the kernel
    # at slot 0 (A was gone by then) and unmapped at 1.6.  D (t=2.0, slot 4) has no unmap and
    # nothing reuses it.  E (t=3.0, slot 6, unmap lost) is reused by F at 3.0005, unmapped at
    # 3.1.  Recorded lifetimes: B 0.002, C 0.1, F 0.0995: median 0.0995.  So A: min(1.0995,
    # 1.5) = 1.0995; D: 2.0995; E: min(3.0995, 3.0005) = 3.0005.
    from swiotlb_lib.trace.lifetime import lost_unmap_times
    from swiotlb_lib.trace.requests import group_requests
    lines = (kmap(1.0, 0x100000, 4096, slot(start, 0)) + kmap(1.0, 0x200000, 4096, slot(start, 2))
             + kunmap(1.002, slot(start, 2)) + kmap(1.5, 0x300000, 4096, slot(start, 0))
             + kunmap(1.6, slot(start, 0)) + kmap(2.0, 0x400000, 4096, slot(start, 4))
             + kmap(3.0, 0x500000, 4096, slot(start, 6)) + kmap(3.0005, 0x600000, 4096, slot(start, 6))
             + kunmap(3.1, slot(start, 6)))
    tr = T.parse_trace(lines)
    got = lost_unmap_times(tr, group_requests(tr.mappings, "none")[0])
    assert sorted(got) == [0, 3, 4]
    assert got[0] == pytest.approx(1.0995) and got[3] == pytest.approx(2.0995)
    assert got[4] == pytest.approx(3.0005)
    r = T.replay(tr, "v6.11", CMD, cpus=1, follow=False, requests="none")
    assert r.result.extra["lost_unmaps"] == 3 and r.result.extra["live_at_end"] == 0
    assert r.timeline.used[-1] == 0


def test_nvme_what_if_replay_gives_back_lost_unmaps():
    # data/realkernel-nvme/README.md: 1056 unmap events lost, io_tlb_used_hiwater 1680.  Taking
    # every decision itself, with the lost unmaps inferred, the replay peaks where the kernel did.
    r = T.replay("data/realkernel-nvme/trace-N1-force.txt", "v6.11", follow=False)
    x = r.result.extra
    assert x["lost_unmaps"] == 1056 and x["live_at_end"] == 0
    assert r.result.peak_used_slots == 1680
    small = T.replay("data/realkernel-nvme/trace-N1-force.txt", "v6.11", "swiotlb=512,force", follow=False)
    assert small.result.extra["livelocked_requests"] == 0 and small.result.extra["live_at_end"] == 0
