"""Remove execution noise from every book/**/*.ipynb before it is committed.

- ``metadata.widgets`` (notebook level): executing a notebook stores the state of every
  widget there, with model ids that are random on each run: hundreds of changed lines that
  mean nothing to a reviewer. The book build executes the notebooks again and re-creates it.
- ``metadata.execution`` (each cell): the timestamps nbclient records for every cell.

Outputs and execution counts stay: nbval compares the outputs.

Usage: .venv/bin/python scripts/strip_widget_state.py [NOTEBOOK ...]
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def strip(path: pathlib.Path) -> bool:
    """Strip one notebook in place; return True if it changed."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    changed = nb.get("metadata", {}).pop("widgets", None) is not None
    for cell in nb.get("cells", []):
        changed |= cell.get("metadata", {}).pop("execution", None) is not None
    if not changed:
        return False
    # The layout nbformat writes: indent 1, sorted keys, a trailing newline.
    text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return True


def main(argv: list[str]) -> int:
    if argv:
        paths = [pathlib.Path(a) for a in argv]
    else:
        paths = sorted(p for p in (ROOT / "book").rglob("*.ipynb")
                       if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts)
    for path in paths:
        if strip(path):
            print(f"stripped widget state and timings from {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
