"""Where the evidence lives: the ``data/`` folder of the Bounce repository.

The golden vectors (``data/oracle/``, results of the kernel's own allocator code) and the
recordings of real kernels (``data/realkernel*/``) sit beside this package in the repository,
each folder with a README that says what was run and how.  Tests, chapters and commands all
read them through :func:`data_path`, so there is one copy of every file.

The folder is part of the repository, not of the installed package: an editable install
(``pip install -e .`` from a clone) finds it; a copy of ``swiotlb_lib`` without the repository
around it does not, and :func:`data_path` says so.
"""
from __future__ import annotations

from pathlib import Path

#: ``data/`` of the repository this package was installed from.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def data_path(*parts: str) -> Path:
    """The path of ``data/<parts...>``; ``FileNotFoundError`` naming it if it is not there."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: not found; the evidence ships in the data/ folder of the Bounce repository "
            f"(install swiotlb_lib from a clone with pip install -e .)")
    return path
