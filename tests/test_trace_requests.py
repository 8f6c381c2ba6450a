"""Request grouping (swiotlb_lib.trace.requests): virtio-blk requests in the recordings."""
import pytest

from swiotlb_lib import trace as T
from tracedata import T1, T3, trace_fixture

t1 = trace_fixture("t1", T1)
t3 = trace_fixture("t3", T3)


def test_requests_grouped_as_virtio_blk(t1, t3):
    reqs, mode = T.group_requests(t1.mappings)
    assert mode == "virtio-blk" and len(reqs) == 75 and not any(r.aborted for r in reqs)
    sizes = [t1.mappings[i].size for i in reqs[0].members]
    assert sizes == [16, 4096, 1, 48]                     # header, data, status, indirect table
    reqs3, _ = T.group_requests(t3.mappings)
    assert sum(r.aborted for r in reqs3) == 40            # 242 headers, 202 status bytes
    assert T.group_requests(t1.mappings, "none")[1] == "none"
    with pytest.raises(ValueError, match="requests"):
        T.group_requests(t1.mappings, "scsi")


# -- NVMe (drivers/nvme/host/pci.c at v6.12: nvme_map_data) -------------------------------------
NVME = "0000:00:04.0"
NO_WARN = 0x100


def nmap(t, orig, size, tlb, cpu=0, dir=1, attrs=NO_WARN):
    """One NVMe data segment as a kprobe trace records it (tlb None: the kernel failed it)."""
    ret = 0xFFFFFFFFFFFFFFFF if tlb is None else tlb
    return [f"kworker-9 [{cpu:03d}] ..... {t:.6f}: swiotlb_bounced: dev_name: {NVME} "
            f"dma_mask=ffffffffffffffff dev_addr={orig:x} size={size} FORCE",
            f"kworker-9 [{cpu:03d}] ..... {t + 1e-7:.7f}: map: (swiotlb_tbl_map_single+0x4/0x770) "
            f"orig={orig:#x} size={size} align_mask=0x0 dir={dir} attrs={attrs:#x}",
            f"kworker-9 [{cpu:03d}] ..... {t + 2e-7:.7f}: map_ret: (swiotlb_map+0x6c/0x280 <- "
            f"swiotlb_tbl_map_single) tlb={ret:#x}"]


def nunmap(t, tlb, size=4096, dir=1):
    return [f"<idle>-0 [000] d.h1. {t:.6f}: unmap: (__swiotlb_tbl_unmap_single+0x4/0x60) tlb={tlb:#x} "
            f"size={size} dir={dir}"]


def test_nvme_requests_by_the_drivers_rules():
    # Worked by hand from the rules in _nvme_requests (one line per expected request):
    # CPU 0: A = 3 x 4 KiB sg segments, unmapped one after the other -> one request;
    #        B = 8 KiB without DMA_ATTR_NO_WARN (dma_map_bvec) -> a request of its own;
    #        C, D = 2 + 2 x 4 KiB reads back to back; B's unmap lies between C's and D's -> two;
    #        E = 4 KiB write after D's reads (another direction), unmap lost -> its own.
    # CPU 1: F = 64 x 4 KiB writes, unmaps lost: 63 (252 KiB) + 1;
    #        G = two reads, the second failed by the kernel (the attempt ends there:
    #        aborted), then G3, the retry's first segment -> a new request.
    tlb = iter(range(0x79900000, 0x7a000000, 0x1000))
    a = [next(tlb) for _ in range(3)]
    b, c, d, e = next(tlb), [next(tlb) for _ in range(2)], [next(tlb) for _ in range(2)], next(tlb)
    f = [next(tlb) for _ in range(64)]
    g1, g3 = next(tlb), next(tlb)
    L, t = [], 1.0
    for k, x in enumerate(a):
        L += nmap(t + k * 1e-5, 0x100000 + k * 0x1000, 4096, x)
    L += nmap(1.1, 0x200000, 8192, b, attrs=0)
    for k, x in enumerate(c + d):
        L += nmap(1.2 + k * 1e-5, 0x300000 + k * 0x1000, 4096, x, dir=2)
    L += nmap(1.3, 0x400000, 4096, e)
    for k, x in enumerate(f):
        L += nmap(1.4 + k * 1e-5, 0x500000 + k * 0x1000, 4096, x, cpu=1)
    L += nmap(1.5, 0x600000, 4096, g1, cpu=1, dir=2) + nmap(1.50001, 0x601000, 4096, None, cpu=1, dir=2)
    L += nunmap(1.50002, g1, dir=2) + nmap(1.6, 0x600000, 4096, g3, cpu=1, dir=2)
    L += nunmap(2.0, a[0]) + nunmap(2.0, a[1]) + nunmap(2.0, a[2])
    L += nunmap(2.1, c[0], dir=2) + nunmap(2.1, c[1], dir=2) + nunmap(2.1, b, 8192)
    L += nunmap(2.1, d[0], dir=2) + nunmap(2.1, d[1], dir=2) + nunmap(2.2, g3, dir=2)
    tr = T.parse_trace(L)
    reqs, mode = T.group_requests(tr.mappings)             # auto: the trace shows NVMe
    assert mode == "nvme"
    assert [len(r.members) for r in reqs] == [3, 1, 2, 2, 1, 63, 1, 2, 1]
    assert [r.cpu for r in reqs] == [0] * 5 + [1] * 4
    assert reqs[5].data_bytes == 252 * 1024
    assert [r.aborted for r in reqs] == [False] * 7 + [True, False]
    assert all(r.kind == "nvme" for r in reqs)
    # asked for by name, the virtio-blk shape (16-byte header first) finds only lone mappings
    vreqs, vmode = T.group_requests(tr.mappings, "virtio-blk")
    assert vmode == "virtio-blk" and all(r.kind == "mapping" for r in vreqs)


def test_nvme_grouping_of_the_public_trace():
    # data/realkernel-nvme/README.md: 6413 mappings, 91 of them without DMA_ATTR_NO_WARN
    # (one-segment requests, dma_map_bvec), the largest 258048 bytes (252 KiB, the queue's
    # max_hw_sectors_kb); no request can be larger or have more than 64 segments.
    tr = T.read_trace("data/realkernel-nvme/trace-N1-force.txt")
    reqs, mode = T.group_requests(tr.mappings)
    assert mode == "nvme"
    assert sum(len(r.members) for r in reqs) == 6413
    single = [r for r in reqs if len(r.members) == 1 and not tr.mappings[r.members[0]].attrs]
    assert len(single) == 91
    assert max(r.data_bytes for r in reqs) == 258048 and max(len(r.members) for r in reqs) <= 64
    assert not any(r.aborted for r in reqs)                   # the kernel failed no mapping


def test_tracepoint_only_traces_cannot_show_nvme_and_say_so():
    # the swiotlb_bounced tracepoint records no attributes: auto cannot tell NVMe, so the
    # replay says the mappings were replayed ungrouped; requests="nvme" groups them
    from tracedata import line
    tr = T.parse_trace([line(1.0 + k * 1e-5, 0, 4096, addr=0x100000 + k * 0x1000) for k in range(3)])
    assert T.group_requests(tr.mappings)[1] == "none"
    r = T.replay(tr, "v6.11", "swiotlb=force", "fixed:1ms", cpus=1)
    assert "ungrouped" in r.to_dict()["grouping_note"]
    assert "grouping: none (mappings replayed ungrouped" in "\n".join(r.summary_lines())
    reqs, mode = T.group_requests(tr.mappings, "nvme")
    assert mode == "nvme" and [len(q.members) for q in reqs] == [3]
    assert T.group_requests(tr.mappings, driver="nvme")[1] == "nvme"     # the device preset
    with pytest.raises(ValueError, match="nvme"):
        T.group_requests(tr.mappings, "scsi")
