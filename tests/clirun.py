"""``python -m swiotlb_lib`` for the CLI tests, in a subprocess or in-process.

A subprocess runs the command as a user does (the interpreter's start, the imports, the bytes
that reach the terminal, the exit status) and costs about a second of CPU before the command
starts; in-process, :func:`swiotlb_lib.cli.main` (what ``__main__`` calls) runs with standard
input, output and error replaced, so the same message and exit code are checked without that
second.  Each CLI test file keeps some subprocess runs of every command it covers."""
import contextlib
import io
import subprocess
import sys

from conftest import ROOT
from swiotlb_lib.cli import main


def cli(*args, stdin: bytes | None = None, process: bool = False, timeout: float = 300):
    """Run ``python -m swiotlb_lib *args`` with ``stdin`` on standard input; returns
    ``(exit code, stdout, stderr)`` as text.  In-process, an exception escaping ``main`` is
    raised to the test (as a subprocess would print a traceback); argparse's own errors
    (``SystemExit``) give their exit code."""
    args = [str(a) for a in args]
    if process:
        r = subprocess.run([sys.executable, "-m", "swiotlb_lib", *args], input=stdin, capture_output=True,
                           cwd=ROOT, timeout=timeout)
        return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(args)
            except SystemExit as e:
                rc = e.code
    finally:
        sys.stdin = saved
    return rc, out.getvalue(), err.getvalue()
