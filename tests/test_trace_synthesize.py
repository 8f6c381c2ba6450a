"""Synthetic traces (swiotlb_lib.trace.synthesize)."""
from swiotlb_lib import trace as T


def test_synthetic_trace_is_seeded():
    a = list(T.synthesize_trace(500, seed=5))
    assert a == list(T.synthesize_trace(500, seed=5)) and a != list(T.synthesize_trace(500, seed=6))
    tr = T.parse_trace(a)
    assert len(tr.mappings) == 500 and not tr.errors and tr.header["entries_in_buffer"] == 500
