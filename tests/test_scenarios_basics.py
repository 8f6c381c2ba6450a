"""Experiments of chapters 2 and 3 (swiotlb_lib.scenarios.basics) and their figures.

The model drivers of the chapters, each registered experiment run once through the
registry (text and JSON), with a value the chapter states.
"""
import json

import pytest

from swiotlb_lib.plots.memory_map import overview_figure
from swiotlb_lib.scenarios import basics as B
from swiotlb_lib.scenarios import get_experiment


# -- chapter 2 --------------------------------------------------------------------------

@pytest.mark.parametrize("label,outcome", [
    ("NVMe · buffer at 5 GiB", "direct"),
    ("32-bit PCI · buffer at 5 GiB", "bounce"),
    ("32-bit PCI · buffer at 5 GiB · swiotlb=noforce", "fail"),
    ("RPi 4 vc4 · buffer at 32 MiB", "direct"),
    ("RPi 4 vc4 · buffer at 1.25 GiB", "bounce"),
    ("RPi 4 v3d · buffer at 5 GiB", "direct"),
    ("virtio, confidential guest · buffer at 32 MiB", "bounce"),
])
def test_map_case_outcomes(label, outcome):
    _, machine, device, paddr = next(c for c in B.MAP_CASES if c[0] == label)
    r = B.run_map_case(machine, device, paddr)
    assert r.outcome == outcome
    if outcome == "bounce":
        assert r.pool[0] <= r.dma < r.pool[1] and r.dma <= r.dev.reach


def test_decision_table_lists_every_case():
    table = B.decision_table()
    assert len(table.splitlines()) == len(B.MAP_CASES) + 1


def test_overview_figure_has_two_machines():
    assert len(B.overview_maps()) == 2
    fig = overview_figure()
    assert len(fig.axes) == 2


# -- chapter 3 --------------------------------------------------------------------------

def test_slot_walk_shows_wrap_and_area_spill():
    steps = B.slot_walk()
    assert steps[7].index_before[0] == 160 and steps[7].index_after[0] == 0      # wrap to 0
    assert steps[3].highlight == (256, 32)                                      # CPU 1 -> area 1
    assert steps[9].highlight == (384, 128)                                     # area 0 too full
    assert steps[6].snap.list[1] == 3                                           # merge on unmap


@pytest.mark.parametrize("kernel", ["v6.3", "v6.11"])
def test_sync_cases_move_real_bytes(kernel):
    no_sync = B.sync_case("no sync: CPU reads at once", kernel)
    assert no_sync.rows[-1][1] == B.OLD and no_sync.rows[-1][2] == B.PACKET
    assert no_sync.rows[0][2] == B.STALE                      # slot held an earlier mapping
    assert no_sync.rows[1][2] == B.OLD                        # map copied even FROM_DEVICE
    assert B.sync_case("dma_sync_single_for_cpu, then read", kernel).rows[-1][1] == B.PACKET
    assert B.sync_case("wrong direction: mapped TO_DEVICE", kernel).rows[-1][1] == B.OLD
    part = B.sync_case("device writes 10 bytes, unmap", kernel).rows[-1][1]
    assert part == B.PACKET[:10] + B.OLD[10:]


def test_spec_request_3_differs_between_profiles():
    v63 = B.spec_requests("v6.3")[0]
    v611 = B.spec_requests("v6.11")[0]
    assert [r[4] for r in v63] == [0, 2, 3, 5, 8192, None]
    assert [r[4] for r in v611] == [0, 2, 4, 7, 8192, None]
    assert "3 → 0x7c001800" in B.spec_table() and "4 → 0x7c002000" in B.spec_table()


def test_slot_choice_result():
    c = B.slot_choice("v6.3", "0x800", "4 KiB", "none")
    assert (c.slot, c.tlb) == (3, 0x7C001800)
    assert B.slot_choice("v6.11", "0x800", "4 KiB", "none").slot == 4


@pytest.mark.parametrize("kernel,copied", [("v6.3", False), ("v6.6", False), ("v6.11", True)])
def test_partial_sync(kernel, copied):
    ok, _dma, _target, _got, log = B.partial_sync(kernel)
    assert ok == copied
    assert any("Access before mapping start detected" in line for line in log) != copied


# -- the registered experiments ------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("dma-decisions", "32-bit PCI · buffer at 5 GiB · swiotlb=noforce"),     # ... fails
    ("slot-walk", "FAILED (pool_full)"),
    ("worked-requests", "3 → 0x7c001800"),
    ("slot-choice", "slot 3, bounce address 0x7c001800"),
    ("sync-cases", "dma_sync_single_for_cpu(…, DMA_FROM_DEVICE)"),
    ("partial-sync", "v6.11  buffer"),
])
def test_registered_experiment_runs(name, expected):
    r = get_experiment(name).run()
    text = str(r)
    assert expected in text
    assert json.loads(r.to_json())["experiment"] == name


def test_dma_decisions_values():
    rows = {r["case"]: r for r in get_experiment("dma-decisions").run().value}
    assert rows["32-bit PCI · buffer at 5 GiB · swiotlb=noforce"]["outcome"] == "fail"
    assert rows["32-bit PCI · buffer at 5 GiB"]["outcome"] == "bounce"
    assert get_experiment("partial-sync").run(kernels=("v6.11",)).value["v6.11"][0] is True
