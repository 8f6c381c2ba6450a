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

The first job compiles the replay engine into Numba's cache (``swiotlb_lib.trace.fast.warm``,
in ``swiotlb_lib/trace/__pycache__``), so that the chapters find it compiled instead of
each compiling it at once.  Beside it run only notebooks that never replay a trace (listed
in ``scripts/seconds.json``, ``without_engine``), longest first, as many as the
compilation lasts; the others come after it.  A notebook wrongly listed there costs time,
never a wrong output: it compiles the engine itself.

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
import subprocess
import sys
import time
from pathlib import Path

import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

ROOT = Path(__file__).resolve().parents[1]
#: Measured seconds per notebook and the notebooks that never replay a trace (see above).
DEFAULTS = Path(__file__).resolve().parent / "seconds.json"
#: The first job: compile the replay engine into Numba's cache (or load it from there).
WARM = "from swiotlb_lib.trace.fast import warm; print(f'{warm():.1f}')"
#: Its key in exec-seconds.json (the compilation's seconds, to plan the next run).
WARM_KEY = "swiotlb_lib/trace/fast.py"


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


def plan(notebooks: list[Path], seconds: dict, without_engine: set, jobs: int) -> list[Path]:
    """The notebooks in the order they start: longest first (``seconds``, else file size),
    except that the longest notebooks of ``without_engine`` come first until they fill the
    ``jobs - 1`` workers for as long as the engine compiles (``seconds[WARM_KEY]``)."""
    rel = {nb: str(nb.relative_to(ROOT)) for nb in notebooks}
    order = sorted(notebooks, key=lambda nb: (-seconds.get(rel[nb], 0.0), -nb.stat().st_size))
    beside, filled = [], 0.0
    for nb in order:
        if filled >= seconds.get(WARM_KEY, 30.0) * (jobs - 1):
            break
        if rel[nb] in without_engine:
            beside.append(nb)
            filled += seconds.get(rel[nb], 0.0)
    return beside + [nb for nb in order if nb not in beside]


def run_job(job):
    """A pool job: ``("warm", None)`` compiles the engine in a fresh interpreter; a
    notebook job is ``("notebook", (worker, ProcessData))``.  Returns ``(status, uri, text)``."""
    kind, data = job
    if kind == "warm":
        done = subprocess.run([sys.executable, "-c", WARM], cwd=ROOT, capture_output=True, text=True)
        return done.returncode, None, (done.stdout.strip() if done.returncode == 0 else done.stderr)
    worker, process_data = data
    status, uri = worker(process_data)
    return status, uri, ""


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
    if not (isinstance(defaults, dict) and isinstance(defaults.get("seconds"), dict)
            and isinstance(defaults.get("without_engine"), list)):
        print(f"error: {DEFAULTS}: expected an object with 'seconds' ({{path: seconds}}) and "
              "'without_engine' (a list of notebooks)", file=sys.stderr)
        return 1
    try:
        last = json.loads(times_path.read_text())
    except (OSError, ValueError):
        last = {}
    nproc = min(args.jobs, len(notebooks) + 1)
    order = plan(notebooks, {**defaults["seconds"], **last}, set(defaults["without_engine"]), nproc)

    cache = get_cache(str(args.cache_dir))
    records = {nb: cache.add_nb_to_project(str(nb)) for nb in order}
    worker = ExecutionWorkerLocalMProc()
    jobs = [("warm", None)] + [
        ("notebook", (worker, ProcessData(records[nb].pk, records[nb].uri, cache, timeout, allow_errors)))
        for nb in order]
    print(f"==> compiling the replay engine and executing {len(order)} notebooks, {nproc} at a time",
          flush=True)

    start = time.monotonic()
    seconds: dict[str, float] = {}
    failed: list[str] = []
    multiprocessing.log_to_stderr(logging.WARNING)   # the workers' errors, not their chatter
    with multiprocessing.get_context("fork").Pool(nproc) as pool:
        for status, uri, text in pool.imap_unordered(run_job, jobs, chunksize=1):
            if uri is None:                           # the engine's compilation
                if status != 0:
                    print(f"ERROR: compiling the replay engine failed:\n{text}", file=sys.stderr)
                    pool.terminate()
                    return 1
                seconds[WARM_KEY] = float(text.splitlines()[-1])
                print(f"    replay engine compiled (or loaded from Numba's cache): {text} s", flush=True)
                continue
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
