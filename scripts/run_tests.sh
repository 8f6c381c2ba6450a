#!/usr/bin/env bash
# README command 2: all tests. Run README command 1 (scripts/setup_and_build.sh) first:
# it creates .venv, and the browser tests check the book it builds in _build/html.
#
#   1. pytest over tests/: the library tests and tests/browser/ (the built pages in headless
#      Chromium, and one chapter run live in JupyterLab). The browser tests are skipped when
#      chromium is missing, except under CI=true, where that is a failure.
#   2. pytest --nbval over book/: every chapter notebook is run again and its outputs must
#      match the committed ones (cells tagged nbval-ignore-output are run, not compared).
#
# Both runs always happen; the exit code is the first non-zero pytest exit code, else 0.
set -euo pipefail

cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    echo "ERROR: .venv is missing: run README command 1 first (bash scripts/setup_and_build.sh)" >&2
    exit 2
fi

status=0

echo "==> pytest tests/"
.venv/bin/python -m pytest tests || status=$?

echo "==> pytest --nbval book/"
nbval_status=0
.venv/bin/python -m pytest --nbval --nbval-current-env \
    --nbval-sanitize-with tests/nbval_sanitize.cfg book || nbval_status=$?
[ "$status" -ne 0 ] || status=$nbval_status

exit "$status"
