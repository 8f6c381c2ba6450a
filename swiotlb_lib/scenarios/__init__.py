"""Seeded experiments: the systems the book runs and every chapter's experiment.

Each experiment is a plain function of its parameters and a ``seed`` that the chapter calls
directly.  :class:`Experiment` registers it under a name, with what the command line needs
to run it on its own and print its answers (the OSTEP habit)::

    python -m swiotlb_lib experiment --list
    python -m swiotlb_lib experiment NAME [--kernel P ...] [--seed N] [--json]

Modules that hold experiments are listed in :data:`MODULES`; each calls :func:`register`
for its own experiments when it is imported.  Data flows one way: the model below, these
experiments, then plots, widgets and chapters above.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

#: Modules whose import registers experiments, in the order ``--list`` shows them.
MODULES = (
    "swiotlb_lib.scenarios.basics",
    "swiotlb_lib.scenarios.three_systems",
    "swiotlb_lib.scenarios.patches12",
    "swiotlb_lib.scenarios.dynamic",
    "swiotlb_lib.scenarios.review",
    "swiotlb_lib.scenarios.rfc_bugs",
    "swiotlb_lib.scenarios.dynamic612",
    "swiotlb_lib.trace.sizing",
    "swiotlb_lib.perf.studies",
    "swiotlb_lib.scenarios.today",
    "swiotlb_lib.scenarios.tour",
)

_REGISTRY: dict[str, "Experiment"] = {}


@dataclass(frozen=True)
class Experiment:
    """One named experiment.

    ``func`` is the chapter's function.  ``kernels`` says how it takes kernel profiles:
    ``"none"``, ``"one"`` (passed as ``kernel=``) or ``"many"`` (``kernels=``, a tuple).
    ``seeded`` says whether it takes ``seed=``.  ``lines`` turns its return value into the
    text the command prints; without it the value is printed as JSON.
    """

    name: str
    func: Callable[..., Any]
    summary: str
    chapter: str
    kernels: str = "none"
    seeded: bool = True
    lines: Callable[[Any], list[str]] | None = None
    defaults: dict = field(default_factory=dict)

    def run(self, seed: int | None = None, kernels: tuple[str, ...] = ()) -> "ExperimentResult":
        kw = dict(self.defaults)
        if seed is not None:
            if not self.seeded:
                raise ValueError(f"--seed: experiment {self.name!r} is not random; it takes no seed")
            kw["seed"] = seed
        if kernels:
            if self.kernels == "none":
                raise ValueError(f"--kernel: experiment {self.name!r} runs fixed profiles; it takes no --kernel")
            if self.kernels == "one":
                if len(kernels) != 1:
                    raise ValueError(f"--kernel: experiment {self.name!r} takes one profile, got {len(kernels)}")
                kw["kernel"] = kernels[0]
            else:
                kw["kernels"] = tuple(kernels)
        value = self.func(**kw)
        return ExperimentResult(self.name, kw, value, self.lines)


@dataclass
class ExperimentResult:
    """What an experiment returned, able to print itself as text or JSON."""

    name: str
    params: dict
    value: Any
    formatter: Callable[[Any], list[str]] | None = None

    def lines(self) -> list[str]:
        if self.formatter is not None:
            return list(self.formatter(self.value))
        if hasattr(self.value, "lines"):
            return list(self.value.lines())
        if isinstance(self.value, str):
            return self.value.splitlines()
        return json.dumps(jsonable(self.value), indent=1).splitlines()

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_json(self) -> str:
        return json.dumps({"experiment": self.name, "params": jsonable(self.params),
                           "result": jsonable(self.value)})


def jsonable(x):
    """``x`` as JSON-ready data: dataclasses, tuples, numpy values and dict keys included."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if hasattr(x, "to_dict"):
        return jsonable(x.to_dict())
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def register(exp: Experiment) -> Experiment:
    """Add ``exp`` to the registry (its name must be new)."""
    if exp.name in _REGISTRY and _REGISTRY[exp.name].func is not exp.func:
        raise ValueError(f"experiment {exp.name!r} is registered twice")
    _REGISTRY[exp.name] = exp
    return exp


def _load_all() -> None:
    for mod in MODULES:
        importlib.import_module(mod)


def experiments() -> dict[str, Experiment]:
    """Every registered experiment, by name, in the order of :data:`MODULES` (then of
    registration), whatever order the modules happened to be imported in."""
    _load_all()
    order = {m: i for i, m in enumerate(MODULES)}
    pos = {n: i for i, n in enumerate(_REGISTRY)}
    names = sorted(pos, key=lambda n: (order.get(_REGISTRY[n].func.__module__, len(MODULES)), pos[n]))
    return {n: _REGISTRY[n] for n in names}


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; ``ValueError`` naming the known ones otherwise.  An
    experiment whose module is already imported is returned without importing the others
    (importing all of them takes about 3 s of CPU)."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    exps = experiments()
    try:
        return exps[name]
    except KeyError:
        raise ValueError(f"experiment: unknown name {name!r}; 'experiment --list' names them") from None
