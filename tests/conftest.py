"""Shared fixtures and paths.

The evidence the tests check the model against (golden vectors, recordings of real kernels)
is part of the repository: ``data/``, read through :func:`swiotlb_lib.evidence.data_path`, which
fails with the missing file's name.  Nothing here skips for want of data.
"""
import pathlib

import pytest

from swiotlb_lib.evidence import data_path

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def data():
    """``data("oracle", name)``: a file of the repository's ``data/`` folder."""
    return data_path
