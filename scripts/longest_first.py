"""pytest plugin of README command 2 (``scripts/run_tests.sh`` loads it with ``-p``): the
longest files start first.

pytest-xdist's ``--dist loadfile`` hands each file (so each notebook) whole to one worker,
in collection order when ``--no-loadscope-reorder`` is given (by default it orders files by
their number of tests, which says little about their time).  This plugin sorts the
collected items by their file's seconds in ``scripts/seconds.json`` (CPU seconds measured
per notebook and per test file), longest first, and keeps each file's own order of items;
a file not listed there (a new one, of unknown length) comes first.  It changes the order
only: every collected item still runs.
"""
from __future__ import annotations

import json
from pathlib import Path

SECONDS = Path(__file__).resolve().parent / "seconds.json"
ROOT = SECONDS.parents[1]


def file_seconds() -> dict[str, float]:
    """``{path from the repository root: seconds}`` of ``scripts/seconds.json``."""
    seconds = json.loads(SECONDS.read_text()).get("seconds")
    if not isinstance(seconds, dict):
        raise ValueError(f"{SECONDS}: expected an object with 'seconds': {{path: seconds}}")
    return seconds


def pytest_collection_modifyitems(session, config, items) -> None:
    seconds = file_seconds()

    def longest_first(item) -> float:
        try:
            rel = Path(item.path).resolve().relative_to(ROOT).as_posix()
        except ValueError:
            return float("-inf")
        return -seconds.get(rel, float("inf"))

    items.sort(key=longest_first)     # stable: a file's items keep their order
