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
