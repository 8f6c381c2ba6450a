"""Replay of golden-vector files: drive the model, print its own answers.

The vectors (``data/oracle/``, format described in ``data/oracle/README.md``, "Line format")
were produced by the
kernel's own ``kernel/dma/swiotlb.c`` built in user space.  :func:`replay` reads such a
file, **ignores every ``expect``**, runs each operation on a fresh model and yields the
model's result in the ``expect`` shape (``{}`` for lines without one).  Tests compare
the two; ``python -m swiotlb_lib oracle FILE`` prints them as JSON lines.
"""
from __future__ import annotations

import json
from typing import Iterable, Iterator

from .constants import DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, IO_TLB_SHIFT
from .device import Device
from .memory import PhysMemory
from .swiotlb import DmaMappingError, IoTlbMem
from .versions import get_profile

NO_EXPECT = ("meta", "scenario", "sequence")


def _hex(v: int) -> str:
    return f"{v:#x}"


def _int(v) -> int:
    return int(v, 0) if isinstance(v, str) else int(v)


class OracleSession:
    """State of one replay: the allocator, its devices and the map ids."""

    def __init__(self, profile) -> None:
        self.profile = get_profile(profile)
        self.mem: IoTlbMem | None = None
        self.devs: dict[str, Device] = {}
        self.maps: dict[int, tuple] = {}

    def _need_mem(self, op: str) -> IoTlbMem:
        if self.mem is None:
            raise ValueError(f"op: {op!r} before any 'init' line")
        return self.mem

    def step(self, rec: dict) -> dict:
        op = rec.get("op")
        if op in NO_EXPECT:
            return {}
        if op == "init":
            self.mem = IoTlbMem(self.profile, memory=PhysMemory(), nr_cpus=1 << 16)
            pool = self.mem.init_pool(_int(rec["start"]), _int(rec["nslabs"]), _int(rec["nareas"]))
            for dev in self.devs.values():      # devices outlive an init; mappings do not
                dev.dma_io_tlb_mem = self.mem
            self.maps.clear()
            return {"nslabs": pool.nslabs, "nareas": pool.nareas, "area_nslabs": pool.area_nslabs}
        if op == "dev":
            mem = self._need_mem(op)
            dev = Device(rec["name"], dma_mask=_int(rec["dma_mask"]),
                         min_align_mask=_int(rec["min_align_mask"]),
                         seg_boundary_mask=_int(rec["seg_boundary_mask"]))
            dev.dma_io_tlb_mem = mem
            self.devs[dev.name] = dev
            return {"max_mapping_size": mem.max_mapping_size(dev)}
        if op in ("map", "swiotlb_map"):
            return self._map(op, rec)
        if op == "unmap":
            return self._unmap(rec)
        if op in ("dump", "dumpfull"):
            mem = self._need_mem(op)
            pool = mem.defpool
            out = {"used": pool.used, "areas": [[i, u] for i, u in zip(pool.area_index, pool.area_used)],
                   "list_hash": pool.list_hash()}
            if op == "dumpfull":
                out["list"] = [int(x) for x in pool.list[: pool.nslabs]]
            return out
        raise ValueError(f"op: unknown operation {op!r}")

    def _map(self, op: str, rec: dict) -> dict:
        mem = self._need_mem(op)
        try:
            dev = self.devs[rec["dev"]]
        except KeyError:
            raise ValueError(f"dev: unknown device {rec.get('dev')!r}") from None
        orig, size, cpu = _int(rec["orig"]), _int(rec["size"]), _int(rec.get("cpu", 0))
        align = _int(rec.get("align", 0))
        pool = mem.defpool
        used_before = pool.used
        mem.log.take_tags()
        out: dict
        try:
            if op == "map":
                tlb = mem.tbl_map_single(dev, orig, size, None, align, DMA_BIDIRECTIONAL, 0, cpu)
            else:
                tlb = mem.swiotlb_map(dev, orig, size, DMA_BIDIRECTIONAL, 0, cpu)
        except DmaMappingError as e:
            out = {"tlb": None, "slot": -1}
            if e.rejected_tlb is not None:
                out["rejected_tlb"] = _hex(e.rejected_tlb)
                out["rejected_slot"] = e.rejected_slot
            self.maps[_int(rec["id"])] = None
            if pool.used != used_before:
                out["used_delta"] = pool.used - used_before
        else:
            buf = mem.live[tlb]
            slot = (tlb - pool.start) >> IO_TLB_SHIFT
            out = {"tlb": _hex(tlb), "slot": slot, "first_slot": buf.first_slot, "nslots": buf.nslots}
            if buf.first_slot + buf.nslots > pool.nslabs:
                out["beyond_pool_end"] = True
            self.maps[_int(rec["id"])] = (dev, tlb, size)
        tags = mem.log.take_tags()
        if tags:
            out["warn"] = tags
        return out

    def _unmap(self, rec: dict) -> dict:
        mem = self._need_mem("unmap")
        mid = _int(rec["id"])
        if mid not in self.maps:
            raise ValueError(f"id: unmap of id {mid} that was never mapped")
        entry = self.maps.pop(mid)
        if entry is None:
            return {"freed": 0, "skipped": True}
        dev, tlb, size = entry
        freed = mem.tbl_unmap_single(dev, tlb, size, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
        return {"freed": freed}


def replay(lines: Iterable[str], kernel: str | None = None) -> Iterator[dict]:
    """Yield the model's ``expect`` object for every non-empty input line.

    The profile is ``kernel`` if given, else the file's ``meta.version``, else the
    default.  ``expect`` fields in the input are never read.
    """
    session = None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {n}: not valid JSON ({e.msg})") from None
        if session is None:
            version = kernel or (rec.get("version") if rec.get("op") == "meta" else None)
            session = OracleSession(version)
        try:
            yield session.step(rec)
        except (KeyError, TypeError) as e:
            raise ValueError(f"line {n}: malformed {rec.get('op')!r} line ({e})") from None
        except ValueError as e:
            raise ValueError(f"line {n}: {e}") from None

