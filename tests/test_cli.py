"""Every command of ``python -m swiotlb_lib``, with expected values worked out by hand from the
kernel rules each command models.  Each command runs at least once as a user runs it (a
subprocess: ``profiles``, ``scenarios``, ``scenario``, ``compare``, ``experiment``); the JSON
forms, ``experiment --list`` and the other bad names run in-process through
``swiotlb_lib.cli.main`` (tests/clirun.py), which checks the same output and exit code
without the interpreter's start and imports (a second or more of CPU each)."""
import json
from types import SimpleNamespace

import pytest

from clirun import cli
from conftest import ROOT

PROFILES = ["v6.3rc", "v6.3", "v6.6", "v6.11", "rfc-v1", "rfc-v1-posted", "v6.6-dynamic", "v6.11-dynamic"]
SCENARIOS = ["rpi4-fullhd", "rpi4-4k", "coco-guest", "arm-board-oom", "nvme", "storage"]


def run(*args, code=0, process=True):
    rc, out, err = cli(*args, process=process)
    assert rc == code, (rc, out[-2000:], err[-2000:])
    return SimpleNamespace(stdout=out, stderr=err)


def test_profiles_lists_every_profile_once_and_marks_the_default():
    lines = run("profiles").stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == PROFILES
    assert [ln.split()[0] for ln in lines if ln.endswith("(default)")] == ["v6.11"]


def test_scenarios_lists_the_named_systems():
    names = [ln.split()[0] for ln in run("scenarios").stdout.splitlines()]
    assert names == SCENARIOS


def test_scenario_nvme_in_a_confidential_guest():
    out = run("scenario", "nvme", "--kernel", "v6.11").stdout
    # NVMe's min_align_mask 0xfff costs one page of the 256 KiB segment: 262144 - 4096
    assert "max_mapping_size: 258048" in out
    # 6 % of 6 GiB is 368.64 MiB, printed truncated, then rounded up to a power of two for
    # 4 areas (swiotlb_adjust_size(), round_up_default_nslabs())
    assert "SWIOTLB bounce buffer size adjusted to 368MB" in out
    assert "SWIOTLB bounce buffer size roundup to 512MB" in out


def test_scenario_json_is_one_object_with_the_summary():
    d = json.loads(run("scenario", "coco-guest", "--kernel", "v6.3", "--json", process=False).stdout)
    assert d["kernel"] == "v6.3" and d["attempted"] == d["mapped"] + d["failed"]


def test_compare_puts_one_column_per_profile():
    out = run("compare", "rpi4-fullhd", "--kernel", "v6.3", "--kernel", "v6.11").stdout.splitlines()
    assert out[0] == "scenario rpi4-fullhd, seed 1"
    assert out[1].split() == ["v6.3", "v6.11"]
    failed = next(ln for ln in out if ln.startswith("failed")).split()
    # a 1920x1080x4 frame (8 MiB) is far over the 256 KiB segment: imports fail on both
    assert int(failed[1]) > 0 and int(failed[2]) > 0


def test_compare_json_is_a_list_in_the_order_given():
    d = json.loads(run("compare", "coco-guest", "--kernel", "v6.6", "--kernel", "v6.3", "--json", process=False).stdout)
    assert [r["kernel"] for r in d] == ["v6.6", "v6.3"]


def test_experiment_list_names_registered_experiments():
    from swiotlb_lib.scenarios import experiments
    lines = run("experiment", "--list", process=False).stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == list(experiments())


@pytest.mark.parametrize("args,words,process", [
    (["experiment", "no-such-thing"], ["experiment", "no-such-thing"], True),
    (["experiment"], ["NAME", "--list"], False),
    (["scenario", "no-such-thing"], ["no-such-thing"], True),
    (["scenario", "nvme", "--kernel", "v9"], ["kernel", "v9"], False),
    (["compare", "nvme", "--kernel", "v9"], ["kernel", "v9"], False),
])
def test_bad_names_give_one_line_and_exit_2(args, words, process):
    r = run(*args, code=2, process=process)
    assert r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr and all(w in r.stderr for w in words)


def test_api_appendix_lists_every_experiment_with_its_function():
    from swiotlb_lib.scenarios import experiments
    text = (ROOT / "book" / "api.md").read_text()
    for name, e in experiments().items():
        assert f"| `{name}` | {e.chapter} | `{e.func.__module__}.{e.func.__name__}` |" in text, name
