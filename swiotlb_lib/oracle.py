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

from .constants import DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, IO_TLB_SHIFT, U64
from .device import Device
from .memory import PhysMemory
from .swiotlb import DmaMappingError, IoTlbMem
from .versions import get_profile

NO_EXPECT = ("meta", "scenario", "sequence")


def _hex(v: int) -> str:
    return f"{v:#x}"


#: The largest ``init`` the replay accepts: 2**21 slots (4 GiB).  A boot pool lives below
#: ``ARCH_LOW_ADDRESS_LIMIT`` (4 GiB on x86_64; ``swiotlb_memblock_alloc()`` in
#: ``kernel/dma/swiotlb.c`` at afd81d914f6f), so no kernel builds a larger one; the model
#: keeps several arrays per slot and refuses larger pools before allocating them.
MAX_NSLABS = 1 << 21
_MISSING = object()


def _int(rec: dict, key: str, default=_MISSING) -> int:
    """Field ``key`` of a record as an integer (JSON number or ``"0x..."`` text)."""
    v = rec.get(key, default)
    if v is _MISSING:
        raise ValueError(f"{key}: missing (the {rec.get('op')!r} line needs it)")
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError(f"{key}: expected an integer or \"0x...\" text, got {json.dumps(v)[:40]}")
    if isinstance(v, int):
        return v
    try:
        return int(v, 0)
    except ValueError:
        raise ValueError(f"{key}: expected an integer or \"0x...\" text, got {v[:40]!r}") from None


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
            start, nslabs, nareas = _int(rec, "start"), _int(rec, "nslabs"), _int(rec, "nareas")
            if not 1 <= nslabs <= MAX_NSLABS:     # before anything is allocated
                raise ValueError(f"nslabs: must be in 1..{MAX_NSLABS} (a pool of at most 4 GiB), "
                                 f"got {nslabs}")
            if not 1 <= nareas <= nslabs:
                raise ValueError(f"nareas: must be in 1..nslabs ({nslabs}), got {nareas}")
            if not 0 <= start <= U64 - (nslabs << IO_TLB_SHIFT):
                raise ValueError(f"start: must be in 0..{U64 - (nslabs << IO_TLB_SHIFT):#x} (the pool "
                                 f"must end within 64 bits), got {start:#x}")
            mem = IoTlbMem(self.profile, memory=PhysMemory(), nr_cpus=1 << 16)
            pool = mem.init_pool(start, nslabs, nareas)
            self.mem = mem
            for dev in self.devs.values():      # devices outlive an init; mappings do not
                dev.dma_io_tlb_mem = self.mem
            self.maps.clear()
            return {"nslabs": pool.nslabs, "nareas": pool.nareas, "area_nslabs": pool.area_nslabs}
        if op == "dev":
            mem = self._need_mem(op)
            name = rec.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError(f"name: expected the device's name as text, got {json.dumps(name)[:40]}")
            dev = Device(name, dma_mask=_int(rec, "dma_mask"), min_align_mask=_int(rec, "min_align_mask"),
                         seg_boundary_mask=_int(rec, "seg_boundary_mask"))
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
        raise ValueError(f"op: unknown operation {op!r} (known: meta, scenario, sequence, init, dev, map, "
                         "swiotlb_map, unmap, dump, dumpfull)")

    def _map(self, op: str, rec: dict) -> dict:
        mem = self._need_mem(op)
        dev = self.devs.get(rec.get("dev")) if isinstance(rec.get("dev"), str) else None
        if dev is None:
            raise ValueError(f"dev: unknown device {rec.get('dev')!r}")
        orig, size, cpu = _int(rec, "orig"), _int(rec, "size"), _int(rec, "cpu", 0)
        align = _int(rec, "align", 0)
        mid = _int(rec, "id")
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
            self.maps[mid] = None
            if pool.used != used_before:
                out["used_delta"] = pool.used - used_before
        else:
            buf = mem.live[tlb]
            slot = (tlb - pool.start) >> IO_TLB_SHIFT
            out = {"tlb": _hex(tlb), "slot": slot, "first_slot": buf.first_slot, "nslots": buf.nslots}
            if buf.first_slot + buf.nslots > pool.nslabs:
                out["beyond_pool_end"] = True
            self.maps[mid] = (dev, tlb, size)
        tags = mem.log.take_tags()
        if tags:
            out["warn"] = tags
        return out

    def _unmap(self, rec: dict) -> dict:
        mem = self._need_mem("unmap")
        mid = _int(rec, "id")
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
        except (json.JSONDecodeError, RecursionError) as e:
            raise ValueError(f"line {n}: not valid JSON ({getattr(e, 'msg', 'nested too deeply')}); "
                             "expected one JSON object per line (data/oracle/README.md)") from None
        if not isinstance(rec, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
                type(rec), "a number")
            raise ValueError(f"line {n}: expected a JSON object like {{\"op\": \"init\", ...}}, got {kind}")
        if not isinstance(rec.get("op"), str):
            raise ValueError(f"line {n}: op: missing or not text (expected e.g. \"op\": \"map\")")
        if session is None:
            version = kernel or (rec.get("version") if rec.get("op") == "meta" else None)
            session = OracleSession(version)
        try:
            yield session.step(rec)
        except (KeyError, TypeError) as e:
            raise ValueError(f"line {n}: malformed {rec.get('op')!r} line ({e})") from None
        except ValueError as e:
            raise ValueError(f"line {n}: {e}") from None

