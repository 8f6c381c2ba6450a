"""The chapter "SWIOTLB beyond the RFC": each experiment once through the registry, one
value the chapter states, worked by hand in the comment."""
import json

from conftest import check_precomputed
from swiotlb_lib.scenarios import get_experiment


def run(name):
    r = get_experiment(name).run()
    assert str(r)
    json.loads(r.to_json())
    return r.value


def test_iommu_bounce():
    rows = {r["label"]: r for r in run("iommu-bounce")}
    # ALIGN(0x100 + 0xa00, 0x10000) = 64 KiB = 32 slots, one of them padding
    r = rows["untrusted NVMe: 256 B at 0x1a00, 64 KiB granule"]
    assert (r["nslots"], r["pad_slots"], r["freed_at_unmap"]) == (32, 1, 32)
    assert not rows["trusted NIC: 256 B at 0x1234, 4 KiB granule"]["bounce"]


def test_pad_slots():
    p = run("pad-slots")["profiles"]
    # slot 0 is another device's; v6.11 must start the 4 KiB-aligned run at slot 2, pad 1
    assert (p["v6.11"]["first_slot"], p["v6.11"]["data_slot"], p["v6.11"]["freed"]) == (2, 3, 2)
    assert p["v6.11"]["granule_owned"] and not p["v6.6"]["granule_owned"]


def test_swiotlb_any():
    places = run("swiotlb-any")["places"]
    anyp = places["SWIOTLB_ANY (memblock_alloc)"]
    # 8 GiB on the x86_64 layout: 5 GiB above 4 GiB, the pool goes there; a 32-bit card cannot reach it
    assert not anyp["below_4g"] and anyp["maps"]["pci32"].startswith("DMA_MAPPING_ERROR")
    assert places["default (memblock_alloc_low)"]["below_4g"]


def test_restricted_alloc():
    r = run("restricted-alloc")
    # 12 KiB is order 2: 16 KiB-aligned, slot 8 (slots 2..7 are skipped)
    assert r["steps"][1]["slot"] == 8 and r["used_after_free_all"] == 0


def test_full_experiments():
    # 512 slots / 32 slots per 64 KiB mapping = 16
    assert run("full-pool-size")[0]["mapped"] == 16
    f = run("full-fragmentation")
    assert (f["used"], f["largest_free_run"], f["request_4k_ok"]) == (256, 1, False)
    cap = run("full-cap")
    # roundup(0xfff, 2048) = 4096: 262144 - 4096
    assert cap[2]["max_mapping_size"] == 258048 and cap[1]["result"].startswith("fails")
    leak = run("full-leak")
    # every 10th 4 KiB mapping (2 slots) is never unmapped: after 1000 requests 100 leaks
    # hold 200 slots; after 5120 requests 512 leaks hold all 1024, so request 5121 fails
    assert tuple(leak["series"][4]) == (1000, 200)
    assert leak["first_fail"] == 5121
    coco = run("full-coco")
    # 4 GiB guest: 6 % = 245.7 MiB -> 125824 slots -> roundup to 2**17 slots = 256 MiB
    assert coco["rows"][2]["pool_bytes"] == 256 << 20
    assert coco["explicit"]["pool_bytes"] == 256 << 20


def test_main_widget_static():
    from swiotlb_lib.widgets.today import IOMMU_KEYS, iommu_widget
    check_precomputed(iommu_widget(), len(IOMMU_KEYS), figures=True)
