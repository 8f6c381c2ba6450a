#!/usr/bin/env bash
# README command 2: all tests. Run README command 1 (scripts/setup_and_build.sh) first:
# it creates .venv, and the browser tests check the book it builds in _build/html.
#
# One pytest run, spread over the machine's cores by pytest-xdist (-n auto --dist loadfile:
# each file, so each notebook, runs whole and in order on one worker), over
#   - book/ with --nbval: every chapter notebook is run again and its outputs must match the
#     committed ones (cells tagged nbval-ignore-output are run, not compared).
#   - tests/: the library tests and tests/browser/ (the built pages in headless Chromium, and
#     one chapter run live in JupyterLab; each browser and server on its own free port and in
#     its own temporary folder). The browser tests are skipped when chromium is missing,
#     except under CI=true, where that is a failure.
# The files start longest first (scripts/longest_first.py, a pytest plugin, with the seconds
# measured per file in scripts/seconds.json), so the long notebooks start early and the short
# test files fill in behind them (to measure them again: --record-seconds FILE writes this
# run's CPU seconds per file, in the form of seconds.json).
# Every test and every notebook cell runs; the exit code is pytest's. Extra arguments go to
# pytest (e.g. --durations=20).
set -euo pipefail

cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    echo "ERROR: .venv is missing: run README command 1 first (bash scripts/setup_and_build.sh)" >&2
    exit 2
fi

echo "==> pytest --nbval book/ and pytest tests/, on $(nproc) cores"
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"   # for -p longest_first
exec .venv/bin/python -m pytest -n auto --dist loadfile --no-loadscope-reorder -p longest_first \
    --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
    book tests "$@"
