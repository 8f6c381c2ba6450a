"""pytest plugin of README command 2 (``scripts/run_tests.sh`` loads it with ``-p``): the
longest files start first.

pytest-xdist's ``--dist loadfile`` hands each file (so each notebook) whole to one worker,
in collection order when ``--no-loadscope-reorder`` is given (by default it orders files by
their number of tests, which says little about their time).  This plugin sorts the
collected items by their file's seconds in ``scripts/seconds.json`` (CPU seconds measured
per notebook and per test file), longest first, and keeps each file's own order of items;
a file not listed there (a new one, of unknown length) comes first.  It changes the order
only: every collected item still runs.  With ``--record-seconds FILE`` it also writes the CPU
seconds each file took in the run to FILE, in the form of ``seconds.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

SECONDS = Path(__file__).resolve().parent / "seconds.json"
ROOT = SECONDS.parents[1]


def file_seconds() -> dict[str, float]:
    """``{path from the repository root: seconds}`` of ``scripts/seconds.json``."""
    seconds = json.loads(SECONDS.read_text()).get("seconds")
    if not isinstance(seconds, dict):
        raise ValueError(f"{SECONDS}: expected an object with 'seconds': {{path: seconds}}")
    return seconds


def file_of(item) -> str | None:
    """The path of ``item``'s file from the repository root, or None outside it."""
    try:
        return Path(item.path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return None


def pytest_collection_modifyitems(session, config, items) -> None:
    seconds = file_seconds()

    def longest_first(item) -> float:
        rel = file_of(item)
        return float("-inf") if rel is None else -seconds.get(rel, float("inf"))

    items.sort(key=longest_first)     # stable: a file's items keep their order


# -- measuring the seconds -------------------------------------------------------------------
def pytest_addoption(parser) -> None:
    parser.addoption("--record-seconds", metavar="FILE", default=None,
                     help="write the CPU seconds each file took in this run, as scripts/seconds.json's "
                          "'seconds' object, to FILE (longest_first)")


def _cpu() -> float:
    """CPU seconds (user + system) of this process and of its children already waited for
    (an nbval notebook's kernel, a test's subprocess)."""
    import resource
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


#: CPU seconds per file: this process's own, then (in xdist's controller) the workers' added
_SPENT: dict = {}


def _add(spent: dict) -> None:
    for k, v in spent.items():
        _SPENT[k] = _SPENT.get(k, 0.0) + v


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With ``--record-seconds``: add the CPU seconds of ``item`` (set-up, call, tear-down:
    a notebook's kernel stops in its last cell's) to its file, measured around pytest's own
    protocol.  The process's start and the collection are no file's (every file shares them)."""
    record = item.config.getoption("record_seconds") is not None
    start = _cpu() if record else 0.0
    yield
    if record:
        _add({file_of(item) or str(item.path): _cpu() - start})


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """In xdist's controller: a worker's seconds, sent back in its ``workeroutput``."""
    _add(node.workeroutput.get("longest_first_seconds", {}))


def pytest_sessionfinish(session) -> None:
    """An xdist worker hands its files' seconds to the controller (``workeroutput``); the
    controller, or a run without xdist, writes them all to FILE, longest first."""
    out = session.config.getoption("record_seconds")
    if out is None:
        return
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output["longest_first_seconds"] = dict(_SPENT)
        return
    Path(out).write_text(json.dumps({"seconds": {k: round(v, 1) for k, v in
                                                 sorted(_SPENT.items(), key=lambda kv: -kv[1])}}, indent=1) + "\n")
