"""Measuring SWIOTLB: statistics for noisy runs, a concurrency simulation, dma_map_benchmark.

* :mod:`.stats` -- Welch and Fieller intervals, a seeded bootstrap of the ratio of
  medians, Mann--Whitney U with the Hodges--Lehmann shift, runs needed per arm, RMIT
  schedules, and the book's re-analysis of Petr Tesarik's v3 figures
  (``cover.1687859323.git.petr.tesarik.ext@huawei.com``);
* :mod:`.concurrency` -- a seeded discrete-event simulation of CPUs mapping through the
  model allocator with per-area locks (constants in :class:`~.concurrency.CostModel`,
  all assumptions);
* :mod:`.map_benchmark` -- ``dma_map_benchmark`` (kernel module and tool) on the model
  (its command, ``dma-map-benchmark``, is :mod:`swiotlb_lib.cli.benchmark`);
* :mod:`.studies` -- the measuring studies of chapter 10, registered as experiments.

Each module names its sources (papers, Message-IDs, kernel files at a commit) in its own
docstring.
"""
__all__ = ["CostModel", "DEFAULT_COSTS", "ConcurrencyResult", "simulate",
           "MapBenchmarkResult", "run_map_benchmark"]

_HOME = {"CostModel": "concurrency", "DEFAULT_COSTS": "concurrency",
         "ConcurrencyResult": "concurrency", "simulate": "concurrency",
         "MapBenchmarkResult": "map_benchmark", "run_map_benchmark": "map_benchmark"}


def __getattr__(name):
    # The names above are imported on first use, so that registering the
    # ``dma-map-benchmark`` command does not load the model (PEP 562).
    if name in _HOME:
        import importlib
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
