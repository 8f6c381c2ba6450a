"""scripts/longest_first.py, the pytest plugin of README command 2 (scripts/run_tests.sh)."""
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_rfc3987_parsers_are_not_built_at_import():
    """With the plugin loaded first (as ``-p`` does), importing jsonschema (what nbformat does)
    no longer builds rfc3987_syntax's parsers: ``syntax_helpers`` stays unimported, and
    jsonschema still registers its "iri" check (on the stand-in's lazy ``is_valid_syntax``).
    (That the check then answers as the real parser does, e.g. True for
    "http://example.com/ä" and False for "not an iri", was checked by hand: checking it here
    would cost the 3 s of parser building the plugin saves.)"""
    code = ("import sys, longest_first, jsonschema\n"
            "print('rfc3987_syntax.syntax_helpers' in sys.modules)\n"
            "print('iri' in jsonschema.FormatChecker().checkers)\n"
            "print(longest_first.lazy_rfc3987_syntax())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SCRIPTS), "PATH": ""}).stdout.split()
    # not built; the check registered; a second call finds the stand-in installed, does nothing
    assert out == ["False", "True", "False"]
