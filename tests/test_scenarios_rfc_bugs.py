"""swiotlb_lib.scenarios.rfc_bugs and RfcDynamic as posted / as intended: values worked by
hand from patch 3/4's key arithmetic and lib/maple_tree.c's mt_find()/mtree_erase()."""
import json
import pytest

from test_cli import run as cli
from swiotlb_lib.boot import Machine
from swiotlb_lib.constants import DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, PAGE_SIZE
from swiotlb_lib.scenarios import get_experiment
from swiotlb_lib.scenarios.rfc_bugs import KEYS, restricted_pool, rfc_v1_bugs


def four_page_buffer(kernel):
    m = Machine(ram="8G", cpus=4, cmdline="swiotlb=dynamic", kernel=kernel)
    dev = m.add_device("pci32")
    dma = m.dma.map_single(dev, 0x140000000, 4 * PAGE_SIZE, DMA_BIDIRECTIONAL)
    return m, dev, dma


@pytest.mark.parametrize("kernel,page3_bytes", [("rfc-v1", 100), ("rfc-v1-posted", 0)])
def test_a_sync_in_page_3_of_a_4_page_buffer(kernel, page3_bytes):
    m, dev, dma = four_page_buffer(kernel)
    pfn = dma >> 12
    d = m.swiotlb.dyn
    # as posted: key 2*pfn+1, range [2pfn+1, 2pfn+4] (4 keys, ceil(4/2) = 2 pages covered);
    # as intended: [pfn, pfn+3]
    want = (2 * pfn + 1, 2 * pfn + 4) if kernel == "rfc-v1-posted" else (pfn, pfn + 3)
    assert [(a, b) for a, b, _ in d.tree.ranges()] == [want]
    # page 3 (offset 2 pages): key 2(pfn+2)+1 = 2pfn+5 > 2pfn+4 -> missed, 100 bytes not copied
    before = m.swiotlb.bytes_copied
    m.dma.sync_single_for_cpu(dev, dma + 2 * PAGE_SIZE, 100, DMA_FROM_DEVICE)
    assert m.swiotlb.bytes_copied - before == page3_bytes
    # page 2 (offset 1 page): key 2pfn+3 is covered on both
    before = m.swiotlb.bytes_copied
    m.dma.sync_single_for_cpu(dev, dma + PAGE_SIZE, 100, DMA_FROM_DEVICE)
    assert m.swiotlb.bytes_copied - before == 100


@pytest.mark.parametrize("kernel,stale", [("rfc-v1", 0), ("rfc-v1-posted", 1)])
def test_unmap_then_a_lookup_in_the_freed_pages(kernel, stale):
    m, dev, dma = four_page_buffer(kernel)
    m.dma.unmap_single(dev, dma, 4 * PAGE_SIZE, DMA_BIDIRECTIONAL)
    d = m.swiotlb.dyn
    # as posted mt_find() moved the index to 2pfn+5 and the erase there found nothing
    assert d.stale_entries() == stale
    assert d.costs().get("tree_erase_misses", 0) == stale
    # another device's own page at the buffer's first PFN: is_swiotlb_buffer() follows the
    # stale range to the freed descriptor on the posted code
    nvme = m.add_device("nvme")
    assert m.swiotlb.is_swiotlb_buffer(nvme, dma) is bool(stale)
    assert d.costs().get("use_after_free_lookups", 0) == stale


def test_dma_direct_alloc_pages_costs_of_one_buffer():
    m = Machine(ram="8G", cpus=4, cmdline="swiotlb=dynamic", kernel="rfc-v1-posted", mem_encrypt=True)
    dev = m.add_device("pci32")
    from swiotlb_lib.constants import DMA_ATTR_MAY_SLEEP
    dma = m.dma.map_single(dev, 0x140000000, 3 * PAGE_SIZE + 1, DMA_BIDIRECTIONAL, DMA_ATTR_MAY_SLEEP)
    m.dma.unmap_single(dev, dma, 3 * PAGE_SIZE + 1, DMA_BIDIRECTIONAL)
    c = m.swiotlb.dyn.costs()
    # PAGE_ALIGN(3 pages + 1) = 4 pages zeroed; one dma_set_decrypted, one dma_set_encrypted;
    # a 32-bit coherent mask picks ZONE_DMA32
    assert (c["zeroed_bytes"], c["decrypt_calls"], c["encrypt_calls"], c["dyn_zone_DMA32"]) == (16384, 1, 1, 1)


def test_restricted_pool_gets_dynamic_buffers_only_as_posted():
    assert restricted_pool("rfc-v1")["allow_dyn"] is False
    r = restricted_pool("rfc-v1-posted")
    # swiotlb_alloc() carves the 16 KiB from the pool's own slots, which record no
    # original address: the map-time copy skips all 16384 bytes; the fixed-path unmap
    # never frees the descriptor nor its tree range
    assert r == {"allow_dyn": True, "dyn_buffers_from_pool": 1, "unbounced_map_bytes": 16384,
                 "leaked_descriptors": 1, "tree_entries_after_unmap": 1}


def test_scenario_counters_posted_vs_intended():
    posted = rfc_v1_bugs("rfc-v1-posted")
    intended = rfc_v1_bugs("rfc-v1")
    assert list(posted)[:5] == list(KEYS)
    for k in KEYS[:3]:
        assert posted[k] > 0 and intended[k] == 0, k
    # the costs belong to the design: equal on both (same seed, same allocations)
    assert posted["zeroed_bytes"] == intended["zeroed_bytes"] > 0
    assert posted["decrypt_calls"] == intended["decrypt_calls"] == 0
    # a confidential guest decrypts each of the 60 may-sleep buffers once
    assert rfc_v1_bugs("rfc-v1", mem_encrypt=True)["decrypt_calls"] == 60


def test_experiment_runs_and_the_chapter_value():
    r = get_experiment("rfc-v1-bugs").run()
    assert r.value["kernel"] == "rfc-v1-posted"
    assert "stale_entries_after_unmap" in str(r)
    assert json.loads(r.to_json())["result"]["unbounced_sync_bytes"] == r.value["unbounced_sync_bytes"]
    # each unbounced sync loses all its 512 bytes: a multiple of 512
    assert r.value["unbounced_sync_bytes"] % 512 == 0 and r.value["unbounced_sync_bytes"] > 0


def test_tree_keys_of_one_4_page_buffer():
    # Worked by hand from the patch.  As posted, the keys are 2*pfn+1: relative to the first
    # page's key, pages 0..3 look up keys 0, 2, 4, 6; the stored range is [0, 0+4-1] = [0, 3],
    # so pages 0 and 1 hit and pages 2 and 3 miss.  mt_find() leaves the index at 3+1 = 4,
    # where the erase finds nothing: the range stays, its descriptor freed.
    from swiotlb_lib.scenarios.rfc_bugs import tree_keys
    r = tree_keys("rfc-v1-posted", 4)
    mapped, unmapped = r["stages"]
    assert r["erase_at"] == 4
    assert [(k, key, hit) for k, key, hit in mapped["page_keys"]] == [(0, 0, True), (1, 2, True),
                                                                     (2, 4, False), (3, 6, False)]
    assert mapped["ranges"] == [(0, 3, False)] and unmapped["ranges"] == [(0, 3, True)]
    # As intended: PFN keys 0..3, all hit; the erase at the buffer's own key empties the tree.
    r = tree_keys("rfc-v1", 4)
    mapped, unmapped = r["stages"]
    assert r["erase_at"] == 0 and all(hit for _, _, hit in mapped["page_keys"])
    assert mapped["ranges"] == [(0, 3, False)] and unmapped["ranges"] == []


def test_other_profiles_are_refused():
    with pytest.raises(ValueError, match="^kernel: scenario rfc-v1-bugs needs"):
        rfc_v1_bugs("v6.11")


def test_cli_json_and_mem_encrypt():
    a = json.loads(cli("scenario", "rfc-v1-bugs", "--kernel", "rfc-v1-posted", "--json").stdout)
    assert a["stale_entries_after_unmap"] > 0 and a["decrypt_calls"] == 0
    b = json.loads(cli("scenario", "rfc-v1-bugs", "--kernel", "rfc-v1", "--json", "--mem-encrypt").stdout)
    assert (b["stale_entries_after_unmap"], b["use_after_free_lookups"], b["unbounced_sync_bytes"]) == (0, 0, 0)
    assert b["decrypt_calls"] == 60


def test_cli_refuses_a_profile_without_rfc_buffers():
    r = cli("scenario", "rfc-v1-bugs", "--kernel", "v6.6-dynamic", code=2)
    assert len(r.stderr.strip().splitlines()) == 1 and "rfc-v1-bugs needs" in r.stderr
    r = cli("scenario", "storage", "--mem-encrypt", code=2)
    assert "--mem-encrypt" in r.stderr and "Traceback" not in r.stderr
