"""Measuring SWIOTLB: statistics for noisy runs, a concurrency simulation, dma_map_benchmark.

* :mod:`.stats` -- Welch and Fieller intervals, a seeded bootstrap of the ratio of
  medians, Mann--Whitney U with the Hodges--Lehmann shift, runs needed per arm, RMIT
  schedules, and the book's re-analysis of Petr Tesarik's v3 figures
  (``cover.1687859323.git.petr.tesarik.ext@huawei.com``);
* :mod:`.concurrency` -- a seeded discrete-event simulation of CPUs mapping through the
  model allocator with per-area locks (constants in :class:`~.concurrency.CostModel`,
  all assumptions);
* :mod:`.map_benchmark` -- ``dma_map_benchmark`` (kernel module and tool) on the model;
* :mod:`.cli` -- the ``dma-map-benchmark`` command (:func:`~.cli.register`, :func:`~.cli.main`).

Sources are listed in ``shared/spec/measurements.md`` sections 1, 2, 4 and 6 and
``shared/spec/kernel-swiotlb.md`` section 9.
"""
from .concurrency import CostModel, DEFAULT_COSTS, ConcurrencyResult, simulate
from .map_benchmark import MapBenchmarkResult, run_map_benchmark

__all__ = ["CostModel", "DEFAULT_COSTS", "ConcurrencyResult", "simulate",
           "MapBenchmarkResult", "run_map_benchmark"]
