#!/usr/bin/env bash
# README command 1: set up everything and build the book into _build/html.
#
#   1. .venv/ with the exact pins of requirements.txt, installed by uv (itself pinned there and
#      bootstrapped into .venv with pip), and swiotlb_lib itself from this checkout in editable
#      mode (the same as pip install -e .); re-installed only when requirements.txt or
#      pyproject.toml change
#   2. book/_vendor/: the widget manager, require.js and MathJax from the npm registry, so the
#      built pages load nothing from a CDN (skipped when already there)
#   3. the book, rebuilt from nothing whenever any of its inputs changed (book/, swiotlb_lib/,
#      data/, _config.yml, _toc.yml, requirements.txt, pyproject.toml, this script: one sha256
#      over all of them, kept in _build/inputs.sha256 after a successful build), else left as
#      it is ("up to date"). A rebuild executes every notebook against the current library,
#      one per core at a time (scripts/execute_book.py, into _build/.jupyter_cache), then
#      jupyter-book build -W -n turns those executed notebooks into the pages
#      (execute_notebooks: cache in _config.yml). Any warning or failing cell is an error.
#   4. the compiled replay engine (swiotlb_lib/trace/fast.py) into Numba's cache, for the tests
#      and for long traces: from the start of step 3 at the lowest priority (nice 19 in a
#      session of its own, see below), so it takes only the CPU the chapters leave idle, then
#      a core of its own beside jupyter-book build, which keeps one core busy (the chapters
#      replay short traces on the readable engine and do not need it)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
say() { echo "==> [${SECONDS} s] $*"; }   # each step with the seconds since the start

HTML_MANAGER=@jupyter-widgets/html-manager@1.0.15
REQUIREJS=requirejs@2.3.7
MATHJAX=mathjax@3.2.2

# --- 1. Python environment --------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] || ! .venv/bin/python -c "import swiotlb_lib" 2>/dev/null; then
    say "installing requirements.txt and swiotlb_lib (editable) into .venv"
    uv_pin=$(grep -E '^uv==' requirements.txt)
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "$uv_pin"
    .venv/bin/uv pip install --quiet --python .venv/bin/python -r requirements.txt
    .venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .
    echo "$want" > "$stamp"
else
    say ".venv is up to date with requirements.txt"
fi

# --- 2. Browser JavaScript, vendored from the npm registry ---------------------------------
VENDOR=book/_vendor
if [ -f $VENDOR/embed-amd.js ] && [ -f $VENDOR/require.js ] && [ -f $VENDOR/mathjax/tex-mml-chtml.js ]; then
    say "$VENDOR is already populated"
else
    say "vendoring $HTML_MANAGER $REQUIREJS $MATHJAX into $VENDOR"
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
    rm -rf "$tmp"
    trap - EXIT
fi

# --- 3. Build ----------------------------------------------------------------------------
# One sha256 over every input of the book: file names and contents (not times).
inputs_sha256() {
    find book swiotlb_lib data _config.yml _toc.yml requirements.txt pyproject.toml \
         scripts/setup_and_build.sh scripts/execute_book.py \
         -type d \( -name __pycache__ -o -name .ipynb_checkpoints -o -path book/_vendor \) -prune \
         -o -type f -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
inputs=$(inputs_sha256)
if [ -f _build/html/index.html ] && [ "$(cat _build/inputs.sha256 2>/dev/null || true)" = "$inputs" ]; then
    say "the book in _build/html is up to date with its inputs: not rebuilt"
    say "loading the replay engine (Numba cache in swiotlb_lib/trace/__pycache__)"
    .venv/bin/python -c "from swiotlb_lib.trace.fast import warm; print(f'    {warm():.1f} s')"
else
    # No stale pages from renamed chapters and no executed notebook from an older library:
    # the cache only ever holds this build's executions (jupyter-cache matches code only).
    say "building the book: executing every notebook, then jupyter-book build"
    find _build -mindepth 1 -maxdepth 1 ! -name exec-seconds.json -exec rm -rf {} + 2>/dev/null || true
    # The replay engine compiles from the start at the lowest priority: while the chapters
    # execute on every core it only takes what they leave idle (the last chapters leave a
    # core free), then it has a core of its own beside jupyter-book build.  Each notebook's
    # kernel runs in a session of its own, and with the scheduler's autogroups (Debian's
    # default) nice only ranks processes of one session: so the compile gets a session of
    # its own (setsid) whose autogroup is set to nice 19 (sched(7), "The autogroup feature").
    warm_log=$(mktemp)
    setsid -w sh -c '{ echo 19 > /proc/self/autogroup; } 2>/dev/null; exec nice -n 19 "$@"' sh \
        .venv/bin/python -c "from swiotlb_lib.trace.fast import warm; print(f'{warm():.1f}')" > "$warm_log" 2>&1 &
    warm_pid=$!
    trap 'pkill -P "$warm_pid" 2>/dev/null; kill "$warm_pid" 2>/dev/null; rm -f "$warm_log"' EXIT
    .venv/bin/python scripts/execute_book.py _build/.jupyter_cache
    say "jupyter-book build -W -n: the pages, from the executed notebooks; beside it, the replay engine still compiling"
    # a failed build ends the script at once (set -e): the EXIT trap stops the compile
    .venv/bin/jupyter-book build -W -n --keep-going "$ROOT"
    warm_status=0
    wait "$warm_pid" || warm_status=$?
    trap - EXIT
    if [ "$warm_status" -ne 0 ]; then
        echo "ERROR: compiling the replay engine failed:" >&2
        cat "$warm_log" >&2
        rm -f "$warm_log"
        exit 1
    fi
    say "replay engine compiled (or loaded from Numba's cache) in $(tail -1 "$warm_log") s"
    rm -f "$warm_log"
    # The pages must not load anything from the network.
    if grep -rlE 'cdn\.jsdelivr|cdnjs|unpkg\.com|googleapis' _build/html --include='*.html'; then
        echo "ERROR: the pages above reference a CDN" >&2
        exit 1
    fi
    echo "$inputs" > _build/inputs.sha256   # as they were when the build began
fi
say "done: open _build/html/index.html"
