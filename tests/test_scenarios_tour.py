"""Tests of swiotlb_lib.scenarios.tour (the structures appendix) and plots.overview."""
import json

import pytest

from swiotlb_lib.scenarios import get_experiment
from swiotlb_lib.scenarios import tour as T


def test_slot_and_area_sizes():
    # io_tlb_slot: orig_addr 8 + alloc_size 8 + list 2 + pad_slots 2 = 20 bytes, padded to a
    # multiple of 8 (the alignment of phys_addr_t) = 24.  io_tlb_area: used 8 + index 4 +
    # lock 4 = 16, already a multiple of 8.
    assert T.sizeof("io_tlb_slot") == 24
    assert T.sizeof("io_tlb_area") == 16
    # io_tlb_pool: 4 x 8 = 32, late_alloc at 32, nareas at 36, area_nslabs at 40, areas
    # aligned up to 48, slots 56, node 64..80, rcu 80..96, transient at 96, padded to 104.
    offs = {f: off for f, off, _ in T.layout("io_tlb_pool")[0]}
    assert (offs["areas"], offs["transient"], T.sizeof("io_tlb_pool")) == (48, 96, 104)


def test_slot_overhead_experiment():
    r = get_experiment("slot-overhead").run()
    # Default pool: 64 MiB / 2 KiB = 32768 slots; 32768 x 24 = 786432 bytes (768 KiB),
    # already a multiple of 4096, so memblock takes exactly that.
    row = r.value[0]
    assert row[1:4] == (32768, 786432, 786432)
    # 1 GiB: 524288 slots x 24 = 12582912 bytes = 12 MiB.
    assert r.value[1][2] == 12 * 1024 * 1024
    # Grown 4 MiB pool: 2048 x 24 = 49152 bytes = 12 pages -> order 4 = 16 pages = 65536.
    assert r.value[2][3] == 65536
    assert "786432" in str(r)
    assert json.loads(r.to_json())["result"][0][2] == 786432


def test_zone_choice_rules():
    # A 36-bit device on a machine whose ZONE_DMA ends at 512 GiB: 2**36-1 <= 2**39-1, so
    # 6.12 asks ZONE_DMA; 6.11's zone_dma_bits is capped at 32, and 2**36-1 > 2**32-1.
    assert T.zone_choice((1 << 36) - 1, (1 << 39) - 1, "6.12") == "GFP_DMA"
    assert T.zone_choice((1 << 36) - 1, (1 << 39) - 1, "6.11") == "none"
    # x86_64: ZONE_DMA is 16 MiB under both rules; a 32-bit card gets GFP_DMA32.
    assert T.zone_choice(0xFFFFFFFF, (1 << 24) - 1, "6.11") == "GFP_DMA32"
    r = get_experiment("dyn-pool-zone").run()
    assert [row[3:] for row in r.value][-1] == ("none", "GFP_DMA")


def test_struct_sizes_experiment():
    r = get_experiment("struct-sizes").run()
    sizes = {row[0]: row[4] for row in r.value if row[1].startswith("sizeof")}
    assert sizes == {"io_tlb_slot": 24, "io_tlb_area": 16, "io_tlb_pool": 104}


@pytest.mark.parametrize("args, word", [((0, 1), "nslabs"), ((8, 0), "nareas"), ((8, 1, "heap"), "how")])
def test_bad_input(args, word):
    with pytest.raises(ValueError, match=word):
        T.slot_overhead(*args)


def test_bad_struct_and_rule():
    with pytest.raises(ValueError, match="name"):
        T.layout("io_tlb_foo")
    with pytest.raises(ValueError, match="rule"):
        T.zone_choice(0, 0, "6.10")


def test_overview_figure_is_deterministic():
    from swiotlb_lib.plots.common import png_bytes
    from swiotlb_lib.plots.overview import overview_figure
    assert png_bytes(overview_figure()) == png_bytes(overview_figure())
