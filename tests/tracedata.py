"""Shared data of the trace tests (tests/test_trace_*.py, tests/test_cli_traces.py).

The recorded traces are in data/realkernel/ (Linux 6.12.117 and 6.1.192 under QEMU); their
event counts come from boots.jsonl and data/realkernel/README.md.
"""
import json

import pytest

from swiotlb_lib import trace as T
from swiotlb_lib.evidence import data_path

DATA = data_path("realkernel")
T1 = DATA / "trace-force-2G.txt"
T2 = DATA / "trace-force-2G-kprobes.txt"
T3 = DATA / "trace-512-force-2G.txt"
T61 = DATA / "trace-force-2G-linux6.1.txt"
PHASES = ["direct write bs=4k count=4", "direct read bs=4k count=4", "direct write bs=64k count=4",
          "direct read bs=64k count=4", "direct write bs=256k count=4", "direct read bs=256k count=4",
          "direct write bs=1M count=4", "direct read bs=1M count=4", "buffered read bs=1M count=2 skip=8",
          "buffered write bs=1M count=2 seek=12 conv=fsync", "parallel 4x direct write bs=1M count=4",
          "parallel 4x direct read bs=1M count=4", "workload end"]


def boot(name):
    for line in (DATA / "boots.jsonl").read_text().splitlines():
        b = json.loads(line)
        if b["boot"] == name:
            return b
    raise KeyError(name)


def trace_fixture(name, path):
    """A module-scoped fixture ``name`` that reads ``path`` once per test module."""
    return pytest.fixture(scope="module", name=name)(lambda: T.read_trace(path))


def line(t, cpu, size, addr=0x1000000, task="dd-100", flag="FORCE", mask="ffffffffffffffff"):
    return (f"{task:>16}     [{cpu:03d}] d..1. {t:12.6f}: swiotlb_bounced: dev_name: 0000:00:02.0 "
            f"dma_mask={mask} dev_addr={addr:x} size={size} {flag}")


def lone_trace(times, size=4096):
    """Lone 4 KiB mappings (no request shape) on CPU 0 at the given times."""
    return T.parse_trace([line(t, 0, size, 0x1000000 + k * 0x10000) for k, t in enumerate(times)])
