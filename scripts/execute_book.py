"""Execute the book's notebooks in parallel into Jupyter Book's execution cache.

Usage (from the repository root, with the venv's Python; scripts/setup_and_build.sh runs it):

    .venv/bin/python scripts/execute_book.py CACHE_DIR [--jobs N]

Every notebook that ``_toc.yml`` lists is run from ``book/`` (the build's ``run_in_temp:
false``) with nbclient, the same call (``jupyter_cache.executors.utils.single_nb_execution``)
and the same timeout and ``allow_errors`` (from ``_config.yml``) that myst-nb uses when it
executes a notebook itself; N notebooks at a time (default: one per core), the longest first.
Each executed notebook, with the widget state nbclient saved in its metadata, goes into the
jupyter-cache at CACHE_DIR, from which ``jupyter-book build`` (``execute_notebooks: cache``)
then takes every output without running anything again.

The replay engine is not compiled here: the chapters replay short traces, which
``replay(engine="auto")`` runs on the readable engine (``swiotlb_lib.trace.fast.worth_it``);
scripts/setup_and_build.sh compiles it into Numba's cache beside ``jupyter-book build``,
which keeps only one core busy.

jupyter-cache matches a notebook by its code only, not by the library it imports, so
CACHE_DIR must hold nothing but this run's results: the build script empties it whenever any
input of the book changed. Any notebook that fails: its traceback is printed and the exit
status is 1 (the build does not start). Run times are kept in CACHE_DIR/../exec-seconds.json
to order the next run; on a fresh clone the order comes from the CPU seconds measured
per notebook in ``scripts/seconds.json`` (then from file sizes).
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path

import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

ROOT = Path(__file__).resolve().parents[1]
#: CPU seconds measured per notebook, to start the longest first on a fresh clone.
DEFAULTS = Path(__file__).resolve().parent / "seconds.json"

def toc_notebooks(toc_path: Path) -> list[Path]:
    """The ``*.ipynb`` files that _toc.yml lists (root, chapters, sections), in toc order."""
    found: list[Path] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    path = ROOT / (node[key] + ("" if node[key].endswith(".ipynb") else ".ipynb"))
                    if path.is_file() and path not in found:
                        found.append(path)
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(yaml.safe_load(toc_path.read_text()))
    return found


def execute_settings(config_path: Path) -> tuple[int, bool]:
    """(timeout, allow_errors) of the ``execute:`` section of _config.yml."""
    execute = (yaml.safe_load(config_path.read_text()) or {}).get("execute") or {}
    if execute.get("run_in_temp"):
        sys.exit(f"error: {config_path}: execute.run_in_temp must be false (this script runs "
                 "every notebook in its own folder)")
    return int(execute.get("timeout", 30)), bool(execute.get("allow_errors", False))


def plan(notebooks: list[Path], seconds: dict) -> list[Path]:
    """The notebooks in the order they start: longest first (``seconds``, else file size)."""
    rel = {nb: str(nb.relative_to(ROOT)) for nb in notebooks}
    return sorted(notebooks, key=lambda nb: (-seconds.get(rel[nb], 0.0), -nb.stat().st_size))


def run_job(job):
    """A pool job ``(worker, ProcessData)``: one notebook.  Returns ``(status, uri)``."""
    worker, process_data = job
    return worker(process_data)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache_dir", type=Path, help="jupyter-cache folder (e.g. _build/.jupyter_cache)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="notebooks executed at a time (default: one per core)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs: expected a positive integer, got {args.jobs}")

    timeout, allow_errors = execute_settings(ROOT / "_config.yml")
    notebooks = toc_notebooks(ROOT / "_toc.yml")
    if not notebooks:
        print("error: _toc.yml lists no notebook", file=sys.stderr)
        return 1

    # Longest first (last run's times, else the measured defaults, else file size), so no
    # long chapter starts last.
    times_path = args.cache_dir.parent / "exec-seconds.json"
    try:
        defaults = json.loads(DEFAULTS.read_text())
    except (OSError, ValueError) as e:
        print(f"error: {DEFAULTS}: {e}", file=sys.stderr)
        return 1
    if not (isinstance(defaults, dict) and isinstance(defaults.get("seconds"), dict)):
        print(f"error: {DEFAULTS}: expected an object with 'seconds' ({{path: seconds}})", file=sys.stderr)
        return 1
    try:
        last = json.loads(times_path.read_text())
    except (OSError, ValueError):
        last = {}
    nproc = min(args.jobs, len(notebooks))
    order = plan(notebooks, {**defaults["seconds"], **last})

    cache = get_cache(str(args.cache_dir))
    records = {nb: cache.add_nb_to_project(str(nb)) for nb in order}
    worker = ExecutionWorkerLocalMProc()
    jobs = [(worker, ProcessData(records[nb].pk, records[nb].uri, cache, timeout, allow_errors)) for nb in order]
    print(f"==> executing {len(order)} notebooks, {nproc} at a time", flush=True)

    start = time.monotonic()
    seconds: dict[str, float] = {}
    failed: list[str] = []
    multiprocessing.log_to_stderr(logging.WARNING)   # the workers' errors, not their chatter
    with multiprocessing.get_context("fork").Pool(nproc) as pool:
        for status, uri in pool.imap_unordered(run_job, jobs, chunksize=1):
            name = str(Path(uri).relative_to(ROOT))
            if status == 0:
                record = cache.get_cached_project_nb(records[Path(uri)].pk)
                seconds[name] = float((record.data or {}).get("execution_seconds", 0.0))
                print(f"    {name}: {seconds[name]:.1f} s", flush=True)
            else:
                failed.append(name)
                print(f"    {name}: FAILED", flush=True)
    print(f"==> executed in {time.monotonic() - start:.1f} s", flush=True)

    if failed:
        for name in failed:
            record = cache.get_project_record(str(ROOT / name))
            print(f"\nERROR: {name} failed:\n{record.traceback or '(no traceback recorded)'}",
                  file=sys.stderr)
        return 1
    times_path.write_text(json.dumps(dict(last, **seconds), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
