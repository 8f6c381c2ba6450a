#!/usr/bin/env bash
# README command 1: set up everything and build the book into _build/html.
#
#   1. .venv/ with the exact pins of requirements.txt (re-installed only when that file changes)
#      and swiotlb_lib itself installed from this checkout in editable mode (pip install -e .)
#   2. book/_vendor/: the widget manager, require.js and MathJax from the npm registry, so the
#      built pages load nothing from a CDN (skipped when already there)
#   3. jupyter-book build, executing every notebook; any warning or failing cell is an error
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}

HTML_MANAGER=@jupyter-widgets/html-manager@1.0.15
REQUIREJS=requirejs@2.3.7
MATHJAX=mathjax@3.2.2

# --- 1. Python environment --------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] || ! .venv/bin/python -c "import swiotlb_lib" 2>/dev/null; then
    echo "==> installing requirements.txt and swiotlb_lib (editable) into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
    echo "$want" > "$stamp"
else
    echo "==> .venv is up to date with requirements.txt"
fi

# --- 2. Browser JavaScript, vendored from the npm registry ---------------------------------
VENDOR=book/_vendor
if [ -f $VENDOR/embed-amd.js ] && [ -f $VENDOR/require.js ] && [ -f $VENDOR/mathjax/tex-mml-chtml.js ]; then
    echo "==> $VENDOR is already populated"
else
    echo "==> vendoring $HTML_MANAGER $REQUIREJS $MATHJAX into $VENDOR"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "$HTML_MANAGER" "$REQUIREJS" "$MATHJAX" > /dev/null)
    for tgz in "$tmp"/*.tgz; do
        mkdir "${tgz%.tgz}"
        tar -xzf "$tgz" -C "${tgz%.tgz}"
    done
    rm -rf $VENDOR.tmp
    mkdir -p $VENDOR.tmp/mathjax/output/chtml/fonts
    cp "$tmp"/jupyter-widgets-html-manager-1.0.15/package/dist/embed-amd.js $VENDOR.tmp/
    cp "$tmp"/requirejs-2.3.7/package/require.js $VENDOR.tmp/
    cp "$tmp"/mathjax-3.2.2/package/es5/tex-mml-chtml.js $VENDOR.tmp/mathjax/
    cp -r "$tmp"/mathjax-3.2.2/package/es5/output/chtml/fonts/woff-v2 $VENDOR.tmp/mathjax/output/chtml/fonts/
    rm -rf $VENDOR
    mv $VENDOR.tmp $VENDOR   # all or nothing: a half-done download is never mistaken for done
fi

# --- 3. Build ----------------------------------------------------------------------------
echo "==> building the book (executes every notebook)"
rm -rf _build   # no stale pages from chapters that were renamed or removed
.venv/bin/jupyter-book build -W -n --keep-going "$ROOT"

# The pages must not load anything from the network.
if grep -rlE 'cdn\.jsdelivr|cdnjs|unpkg\.com|googleapis' _build/html --include='*.html'; then
    echo "ERROR: the pages above reference a CDN" >&2
    exit 1
fi
echo "==> done: open _build/html/index.html"
