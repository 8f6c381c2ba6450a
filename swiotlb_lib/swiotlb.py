"""The software IO TLB allocator: ``struct io_tlb_mem`` and the map/unmap/sync paths.

Models ``kernel/dma/swiotlb.c``: ``swiotlb_find_slots``, ``swiotlb_tbl_map_single``,
``swiotlb_tbl_unmap_single`` (``__swiotlb_tbl_unmap_single`` in 6.11),
``swiotlb_sync_single_for_{cpu,device}``, ``swiotlb_bounce``, ``swiotlb_map``,
``swiotlb_max_mapping_size``, ``is_swiotlb_buffer`` and the debugfs
values, for each :class:`~swiotlb_lib.versions.KernelProfile`.  Bytes really move: the
bounce copies go through :class:`~swiotlb_lib.memory.PhysMemory`.

Failures never pass silently: a mapping that the kernel would answer with
``DMA_MAPPING_ERROR`` raises :class:`DmaMappingError`; a call the kernel would not
survive (bad size, unknown address, double unmap) raises ``ValueError`` naming the
parameter, before any state changes.
"""
from __future__ import annotations

from dataclasses import dataclass

from .constants import (DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL,
                        DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, INVALID_PHYS_ADDR,
                        IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE, PAGE_SIZE, U32, U64)
from .checks import DMA_DIRS, MAX_SIZE, UNKNOWN_ATTRS, check_addr, check_attrs, check_dir, check_size
from .debug import POOL_ADDED, PR_FMT, KernelLog, TraceEvent
from .memory import PhysMemory
from .pool import IoTlbPool, nr_slots, pool_find_slots, record_slots, release_slots
from .versions import KernelProfile, get_profile




class DmaMappingError(Exception):
    """A mapping failed: the model's ``DMA_MAPPING_ERROR`` (what ``swiotlb_tbl_map_single``
    and ``dma_direct_map_page`` return on failure, v6.3-rc to v6.11).

    ``cause`` is one of :data:`swiotlb_lib.debug.CAUSES`; ``dma_addr`` is ``DMA_MAPPING_ERROR`` so code
    written like a driver can still compare; ``rejected_tlb`` is set when
    ``swiotlb_map`` found slots but the bounce address failed ``dma_capable``.
    """

    dma_addr = DMA_MAPPING_ERROR

    def __init__(self, cause: str, message: str, *, rejected_tlb: int | None = None,
                 rejected_slot: int | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        self.rejected_tlb = rejected_tlb
        self.rejected_slot = rejected_slot


@dataclass(slots=True)
class BounceBuffer:
    """A live bounce buffer: what the kernel keeps in the slots, kept whole for checks."""

    dev: object
    pool: IoTlbPool
    tlb_addr: int
    orig_addr: int
    mapping_size: int
    first_slot: int
    nslots: int
    dir: int


def check_map_args(mem: "IoTlbMem", addr_name: str, addr, size, dir, attrs, cpu) -> None:
    """The checks every map entry point makes before touching any state.

    Fast tests for plain, in-range arguments: one comparison for the largest RAM range,
    then the other ranges; anything else goes through the full checks, which name the
    first bad argument."""
    if (type(addr) is type(size) is type(dir) is type(attrs) is type(cpu) is int and mem is not None
            and 0 < size <= MAX_SIZE and dir in DMA_DIRS and not attrs & UNKNOWN_ATTRS
            and 0 <= cpu < mem.nr_cpus):
        ram = mem.memory
        if ram.ram_lo <= addr and addr + size <= ram.ram_hi:   # so also 0 <= addr < U64
            return
        if 0 <= addr < U64 and ram.in_ram(addr, addr + size):   # in another RAM range
            return
    if mem is None:
        raise ValueError("dev: not attached to a machine; attach it with Machine.add_device(dev) first")
    check_addr(addr_name, addr)
    check_size("size" if addr_name == "paddr" else "mapping_size", size)
    check_dir(dir)
    check_attrs(attrs)
    if type(cpu) is not int or not 0 <= cpu < mem.nr_cpus:
        raise ValueError(f"cpu: must be in 0..{mem.nr_cpus - 1}, got {cpu!r}")
    mem.memory.check_range(addr, size, addr_name)


class IoTlbMem:
    """A software IO TLB allocator (``struct io_tlb_mem``): its pools, counters and log.

    ``pools`` is in search order (newest first, as ``list_add_rcu`` puts them; the boot
    pool ``defpool`` is last).  ``nslabs`` counts non-transient pools.  ``total_used``,
    ``used_hiwater`` and ``transient_nslabs`` are the debugfs atomics (6.4+/6.9+).
    """

    def __init__(self, profile: KernelProfile | str | None = None, *,
                 memory: PhysMemory | None = None, log: KernelLog | None = None,
                 force_bounce: bool = False, for_alloc: bool = False, nr_cpus: int = 8192,
                 default_nareas: int | None = None, name: str = "swiotlb") -> None:
        self.profile = get_profile(profile)
        self.memory = memory if memory is not None else PhysMemory()
        self.log = log if log is not None else KernelLog()
        self.force_bounce = force_bounce
        self.for_alloc = for_alloc
        self.nr_cpus = nr_cpus
        self.default_nareas = default_nareas
        self.name = name
        self.pools: list[IoTlbPool] = []
        self.defpool: IoTlbPool | None = None
        self.nslabs = 0
        self.total_used = 0
        self.used_hiwater = 0
        self.transient_nslabs = 0
        self.live: dict[int, BounceBuffer] = {}
        self.trace: list[TraceEvent] = []
        #: ``events/swiotlb/swiotlb_bounced/enable``: off by default, as in the kernel
        self.trace_enabled = False
        self.bytes_copied = 0
        self.lookups = 0
        #: ``cc_platform_has(CC_ATTR_MEM_ENCRYPT)``: a confidential guest
        self.cc_mem_encrypt = False
        #: hook for dynamic profiles (set by swiotlb_lib.dynamic): growth and fallbacks
        self.dyn = None

    # -- pools ---------------------------------------------------------------------
    def add_pool(self, pool: IoTlbPool) -> None:
        """``add_mem_pool()`` (6.6+, 1aaa736815eb; v6.3 had its one pool): put the pool at the
        head of the list, count its slots; fires :data:`~swiotlb_lib.debug.POOL_ADDED`."""
        self.pools.insert(0, pool)
        self.nslabs += pool.nslabs
        if self.defpool is None:
            self.defpool = pool
            if self.default_nareas is None:
                self.default_nareas = pool.nareas
        if POOL_ADDED.probes:
            POOL_ADDED.fire(self, pool)

    def init_pool(self, start: int, nslabs: int, nareas: int, *, late_alloc: bool = False) -> IoTlbPool:
        """Create the default pool and zero its memory: ``swiotlb_init_io_tlb_mem`` (v6.3-rc,
        v6.3) / ``swiotlb_init_io_tlb_pool`` (6.6+)."""
        if self.defpool is not None:
            raise ValueError("start: this allocator already has its default pool")
        pool = IoTlbPool(start, nslabs, nareas, self.profile, late_alloc=late_alloc, name="defpool")
        self.memory.fill(pool.start, pool.end - pool.start, 0)
        self.add_pool(pool)
        return pool

    def mem_used(self) -> int:
        """``mem_used()``: the ``total_used`` atomic (6.4+ with DEBUG_FS, as Debian
        builds), else the sum of the areas' ``used`` (v6.3)."""
        if self.profile.has_hiwater:
            return self.total_used
        return sum(p.used for p in self.pools if not p.transient)

    def is_swiotlb_buffer(self, dev, paddr: int) -> bool:
        """``is_swiotlb_buffer()``: without dynamic pools a range check of the default
        pool; with them (6.6+), ``dev->dma_uses_io_tlb`` and then the pool walk."""
        self.lookups += 1
        if self.dyn is not None:
            return self.dyn.is_swiotlb_buffer(dev, paddr)
        p = self.defpool
        return p is not None and p.start <= paddr < p.end

    def max_mapping_size(self, dev) -> int:
        """``swiotlb_max_mapping_size()`` (v6.3-rc to v6.11): 256 KiB less
        ``roundup(min_align_mask, 2 KiB)``."""
        m = dev.min_align_mask
        min_align = ((m + IO_TLB_SIZE - 1) // IO_TLB_SIZE) * IO_TLB_SIZE if m else 0
        return IO_TLB_SIZE * IO_TLB_SEGSIZE - min_align

    # -- map -----------------------------------------------------------------------
    def tbl_map_single(self, dev, orig_addr: int, mapping_size: int, alloc_size: int | None = None,
                       alloc_align_mask: int = 0, dir: int = DMA_BIDIRECTIONAL, attrs: int = 0,
                       cpu: int = 0) -> int:
        """``swiotlb_tbl_map_single()``: find slots, record the original address, copy
        the original into the bounce buffer (always, whatever ``dir``: 901c7280ca0d) and
        return the bounce buffer's physical address.

        ``alloc_size`` (v6.3/v6.6 signature) defaults to ``mapping_size``; 6.11 has no such
        argument and rejects a different value.  Raises :class:`DmaMappingError` where
        the kernel returns ``DMA_MAPPING_ERROR`` (the "buffer is full" line is logged
        unless ``DMA_ATTR_NO_WARN``).
        """
        check_map_args(self, "orig_addr", orig_addr, mapping_size, dir, attrs, cpu)
        if alloc_size is None:
            alloc_size = mapping_size
        check_size("alloc_size", alloc_size)
        if self.profile.pad_slots and alloc_size != mapping_size:
            raise ValueError("alloc_size: 6.11 has no separate alloc_size argument; "
                             "leave it unset or equal to mapping_size")
        if type(alloc_align_mask) is not int or not 0 <= alloc_align_mask <= U32 \
                or alloc_align_mask & (alloc_align_mask + 1):
            raise ValueError(f"alloc_align_mask: must be 2**n - 1 in 0..0xffffffff, got {alloc_align_mask!r}")
        return self.map_checked_args(dev, orig_addr, mapping_size, alloc_size, alloc_align_mask, dir, attrs, cpu)

    def map_checked_args(self, dev, orig_addr: int, mapping_size: int, alloc_size: int, alloc_align_mask: int,
             dir: int, attrs: int, cpu: int) -> int:
        """``swiotlb_tbl_map_single`` for callers that have checked the arguments already
        (:meth:`tbl_map_single`, dma-direct, the trace replay): the sizes and the sub-slot
        offset for the profile, the slot search with the slots' record of the mapping
        (:func:`~swiotlb_lib.pool.record_slots`), and on success the bookkeeping: used
        counters, the live-buffer record, and the map-time copy."""
        pool = self.defpool
        if pool is None or not self.nslabs:
            self.log.ratelimited("swiotlb_tbl_map_single", f"{dev.dev_name}: Can not allocate SWIOTLB "
                                 "buffer earlier and can't now provide you with the DMA bounce buffer")
            raise DmaMappingError("no_pool", "no SWIOTLB pool")
        if self.cc_mem_encrypt:
            self.log.once("mem_encrypt", PR_FMT + "Memory encryption is active and system is using DMA bounce buffers")
        mam = dev.min_align_mask
        has_pad = pool.has_pad
        if has_pad:
            if alloc_align_mask > PAGE_SIZE - 1:
                self.log.tag("align_gt_page")
                self.warn_align(dev)
            offset = orig_addr & mam & (alloc_align_mask | (IO_TLB_SIZE - 1)) if mam else 0
            if alloc_align_mask:
                size = -(-(mapping_size + offset) // (alloc_align_mask + 1)) * (alloc_align_mask + 1)
            else:
                size = mapping_size + offset
        else:
            if mapping_size > alloc_size:
                self.log.once(("sizes", dev.name), f"{dev.dev_name}: Invalid sizes (mapping: "
                              f"{mapping_size} bytes, alloc: {alloc_size} bytes)")
                raise DmaMappingError("too_big", "mapping_size > alloc_size")
            offset = orig_addr & mam & (IO_TLB_SIZE - 1) if mam else 0
            size = alloc_size + offset
        # 6.9+: the padding slots before the first real one (af133562d5af)
        pad = offset >> IO_TLB_SHIFT if has_pad else 0
        dyn = self.dyn
        if dyn is None:
            # swiotlb_find_slots() without CONFIG_SWIOTLB_DYNAMIC: the default pool's areas,
            # and the slots' record of the mapping (below) in the same call
            index = pool_find_slots(pool, dev, orig_addr, size, alloc_align_mask, cpu, pad)
        else:
            # RFC v1: try a dynamically allocated buffer before the fixed slots
            r = dyn.before_map(dev, orig_addr, mapping_size, alloc_size, alloc_align_mask, dir, attrs, cpu)
            if r is not None:
                return r
            # swiotlb_find_slots() with CONFIG_SWIOTLB_DYNAMIC (swiotlb_lib.dynamic)
            pool, index = dyn.find_slots(dev, orig_addr, size, alloc_align_mask, cpu)
            if index >= 0:
                record_slots(pool, index, index + nr_slots(size), pad, orig_addr)
        if index < 0:
            log = self.log
            log.tag("full")
            cause = "too_big" if nr_slots(size) > IO_TLB_SEGSIZE else "pool_full"
            if dyn is not None:
                cause = dyn.failure_cause(cause)
            msg_size = size if has_pad else alloc_size     # 6.9+ print the padded size
            if not attrs & DMA_ATTR_NO_WARN:
                self.warn_full(dev, msg_size, self.mem_used())
            raise DmaMappingError(cause, f"swiotlb buffer is full (sz: {msg_size} bytes)")

        nslots = (size + IO_TLB_SIZE - 1) >> IO_TLB_SHIFT
        used = self.total_used = self.total_used + nslots      # inc_used_and_hiwater
        if used > self.used_hiwater:
            self.used_hiwater = used
        tlb_addr = pool.start + ((index + pad) << IO_TLB_SHIFT) + (offset & (IO_TLB_SIZE - 1))
        self.live[tlb_addr] = BounceBuffer(dev, pool, tlb_addr, orig_addr, mapping_size, index, nslots, dir)
        # swiotlb_bounce(TO_DEVICE) of a fresh mapping: its checks cannot fire (offset 0
        # into the recorded original, alloc_size >= mapping_size), so copy directly
        self.memory.copy_unchecked(tlb_addr, orig_addr, mapping_size)
        self.bytes_copied += mapping_size
        return tlb_addr

    # -- the map path's kernel messages (also printed by the compiled replay engine,
    # swiotlb_lib/trace/fast.py, after its run) ----------------------------------------
    def warn_full(self, dev, msg_size: int, used: int) -> None:
        """``swiotlb_tbl_map_single``'s ratelimited ``dev_warn`` when no slots are found
        (v6.3-rc to v6.11; 6.9+ print the padded size), with ``used`` slots in use then."""
        self.log.ratelimited("swiotlb_tbl_map_single",
                             f"{dev.dev_name}: swiotlb buffer is full (sz: {msg_size} bytes), "
                             f"total {self.nslabs} (slots), used {used} (slots)")

    def warn_overflow(self, dev, tlb: int, size: int) -> None:
        """``swiotlb_map``'s ``dev_WARN_ONCE`` when the bounce address is not DMA-able
        (v6.3-rc to v6.11)."""
        self.log.once(("swiotlb addr", dev.name),
                      f"{dev.dev_name}: swiotlb addr {tlb:#018x}+{size} overflow (mask "
                      f"{dev.dma_mask:x}, bus limit {dev.bus_dma_limit:x}).")

    def warn_align(self, dev) -> None:
        """``swiotlb_tbl_map_single``'s ``dev_WARN_ONCE`` for an ``alloc_align_mask`` above
        ``PAGE_SIZE - 1`` (6.9+, af133562d5af)."""
        self.log.once(("align", dev.name), f"{dev.dev_name}: Alloc alignment may prevent "
                      "fulfilling requests with max mapping_size")

    # -- unmap / sync ----------------------------------------------------------------
    def lookup(self, dev, tlb_addr: int, what: str = "tlb_addr") -> BounceBuffer:
        """The live bounce buffer that starts at ``tlb_addr`` for ``dev``, or ValueError."""
        check_addr(what, tlb_addr)
        buf = self.live.get(tlb_addr)
        if buf is None:
            raise ValueError(f"{what}: {tlb_addr:#x} is not a live bounce buffer "
                             "(never mapped, or already unmapped)")
        if buf.dev is not dev:
            raise ValueError(f"{what}: {tlb_addr:#x} was mapped by {buf.dev.name}, not {dev.name}")
        return buf

    def _containing(self, dev, addr: int, size: int, what: str) -> BounceBuffer:
        """The live buffer of ``dev`` that contains ``[addr, addr+size)`` (partial syncs)."""
        check_addr(what, addr)
        buf = self.live.get(addr)
        if buf is not None and buf.dev is dev:
            return buf
        for b in self.live.values():
            if b.dev is dev and b.tlb_addr <= addr and addr + size <= b.tlb_addr + b.mapping_size:
                return b
        raise ValueError(f"{what}: [{addr:#x}, {addr + size:#x}) is not inside a live bounce "
                         f"buffer of {dev.name}")

    def tbl_unmap_single(self, dev, tlb_addr: int, mapping_size: int, dir: int = DMA_BIDIRECTIONAL,
                         attrs: int = 0) -> int:
        """``swiotlb_tbl_unmap_single()``: copy back for FROM_DEVICE/BIDIRECTIONAL unless
        ``DMA_ATTR_SKIP_CPU_SYNC``, then release the slots (or, 6.6+, free a transient
        pool whole).  Returns the number of slots freed."""
        buf = self.lookup(dev, tlb_addr)
        check_size("mapping_size", mapping_size)
        check_dir(dir)
        check_attrs(attrs)
        return self.unmap_checked_args(dev, buf, mapping_size, dir, attrs)

    def unmap_checked_args(self, dev, buf: BounceBuffer, mapping_size: int, dir: int, attrs: int) -> int:
        """``swiotlb_tbl_unmap_single`` of a live ``buf`` for callers that have checked the
        arguments already (:meth:`tbl_unmap_single`, dma-direct, the trace replay)."""
        pool = buf.pool
        tlb_addr = buf.tlb_addr
        if not attrs & DMA_ATTR_SKIP_CPU_SYNC and dir != DMA_TO_DEVICE:
            self.bounce(dev, tlb_addr, mapping_size, DMA_FROM_DEVICE, pool)
        del self.live[tlb_addr]
        if pool is None:                       # RFC v1 dynamic buffer
            return self.dyn.unmap(dev, buf)
        if pool.transient:
            return self.dyn.del_transient(dev, pool)
        freed = release_slots(pool, tlb_addr, dev.min_align_mask)
        self.total_used -= freed
        return freed

    def sync_single_for_device(self, dev, tlb_addr: int, size: int, dir: int) -> None:
        """``swiotlb_sync_single_for_device()`` (v6.3-rc to v6.11): original -> bounce for TO_DEVICE and
        BIDIRECTIONAL; nothing for FROM_DEVICE."""
        check_dir(dir)
        check_size("size", size)
        buf = self._containing(dev, tlb_addr, size, "tlb_addr")
        if dir in (DMA_TO_DEVICE, DMA_BIDIRECTIONAL):
            self.bounce(dev, tlb_addr, size, DMA_TO_DEVICE, buf.pool)

    def sync_single_for_cpu(self, dev, tlb_addr: int, size: int, dir: int) -> None:
        """``swiotlb_sync_single_for_cpu()`` (v6.3-rc to v6.11): bounce -> original for FROM_DEVICE and
        BIDIRECTIONAL; nothing for TO_DEVICE."""
        check_dir(dir)
        check_size("size", size)
        buf = self._containing(dev, tlb_addr, size, "tlb_addr")
        if dir in (DMA_FROM_DEVICE, DMA_BIDIRECTIONAL):
            self.bounce(dev, tlb_addr, size, DMA_FROM_DEVICE, buf.pool)

    # -- the copy ------------------------------------------------------------------
    def bounce(self, dev, tlb_addr: int, size: int, dir: int, pool: IoTlbPool) -> int:
        """``swiotlb_bounce()``: copy between the original buffer and the bounce slot.

        The original address comes from the slot containing ``tlb_addr``.  v6.3/v6.6
        refuse an access before the mapping start and clamp an overflow with a warning;
        from 6.9 (e8068f2d756d "fix swiotlb_bounce() to do partial syncs correctly") the
        in-slot offset may be negative and only the clamp remains.  Returns bytes copied.
        """
        if pool is None:                       # RFC v1 dynamic buffer
            return self.dyn.bounce(dev, tlb_addr, size, dir)
        index = (tlb_addr - pool.start) >> IO_TLB_SHIFT
        orig = pool._orig[index]
        alloc_size = pool._asize[index]
        if orig == INVALID_PHYS_ADDR:
            return 0
        orig_off = orig & dev.min_align_mask & (IO_TLB_SIZE - 1)
        tlb_off = tlb_addr & (IO_TLB_SIZE - 1)
        log = self.log
        if self.profile.pad_slots:
            delta = tlb_off - orig_off
            orig = (orig + delta) & U64
            alloc_size = (alloc_size - delta) & U64
            if size > alloc_size:
                log.once(("overflow", dev.name), f"{dev.dev_name}: Buffer overflow detected. "
                         f"Allocation size: {alloc_size}. Mapping size: {size}.")
                size = alloc_size
        else:
            if tlb_off < orig_off:
                log.once(("before", dev.name), f"{dev.dev_name}: Access before mapping start "
                         f"detected. orig offset {orig_off}, requested offset {tlb_off}.")
                return 0
            tlb_off -= orig_off
            if tlb_off > alloc_size:
                log.once(("overflow", dev.name), f"{dev.dev_name}: Buffer overflow detected. "
                         f"Allocation size: {alloc_size}. Mapping size: {size}+{tlb_off}.")
                return 0
            orig += tlb_off
            alloc_size -= tlb_off
            if size > alloc_size:
                log.once(("overflow", dev.name), f"{dev.dev_name}: Buffer overflow detected. "
                         f"Allocation size: {alloc_size}. Mapping size: {size}.")
                size = alloc_size
        if dir == DMA_TO_DEVICE:
            self.memory.copy_unchecked(tlb_addr, orig, size)
        else:
            self.memory.copy_unchecked(orig, tlb_addr, size)
        self.bytes_copied += size
        return size

    # -- swiotlb_map -----------------------------------------------------------------
    def swiotlb_map(self, dev, paddr: int, size: int, dir: int = DMA_BIDIRECTIONAL,
                    attrs: int = 0, cpu: int = 0) -> int:
        """``swiotlb_map()`` (v6.3-rc to v6.11): trace event, ``swiotlb_tbl_map_single`` with no alignment,
        then re-check that the bounce address is DMA-able; if not, release the slots with
        ``DMA_ATTR_SKIP_CPU_SYNC``, warn "swiotlb addr ... overflow" and fail
        (cause ``out_of_reach``).  Returns the DMA address (identity mapping)."""
        check_map_args(self, "paddr", paddr, size, dir, attrs, cpu)
        return self.swiotlb_map_checked_args(dev, paddr, size, dir, attrs, cpu)

    def swiotlb_map_checked_args(self, dev, paddr: int, size: int, dir: int, attrs: int, cpu: int) -> int:
        """``swiotlb_map`` for callers that have checked the arguments already."""
        if self.trace_enabled:
            self.trace.append(TraceEvent(dev.name, dev.dma_mask, paddr, size, self.force_bounce,
                                         timestamp=self.log.now, cpu=cpu))
        tlb = self.map_checked_args(dev, paddr, size, size, 0, dir, attrs, cpu)
        if tlb + size - 1 > dev.reach:                  # dma_capable() of the bounce address
            buf = self.live[tlb]
            self.unmap_checked_args(dev, buf, size, dir, attrs | DMA_ATTR_SKIP_CPU_SYNC)
            self.log.tag("dma_mask_overflow")
            self.warn_overflow(dev, tlb, size)
            # an RFC v1 buffer of its own (allocated in the coherent mask's zone) has no slot
            slot = None if buf.pool is None else (tlb - buf.pool.start) >> IO_TLB_SHIFT
            raise DmaMappingError("out_of_reach", f"bounce buffer {tlb:#x}+{size} beyond the device's reach",
                                  rejected_tlb=tlb, rejected_slot=slot)
        return tlb

    # -- observability -----------------------------------------------------------------
    def debugfs(self) -> dict:
        """The files of ``/sys/kernel/debug/swiotlb/`` and their values, in creation order
        (``swiotlb_create_debugfs_files``: ``io_tlb_used_hiwater`` from 6.4,
        ``io_tlb_transient_nslabs`` with ``CONFIG_SWIOTLB_DYNAMIC`` in 6.6+).

        Empty when there is no pool (the directory exists but has no files)."""
        if not self.nslabs:
            return {}
        d = {"io_tlb_nslabs": self.nslabs, "io_tlb_used": self.mem_used()}
        if self.profile.has_hiwater:
            d["io_tlb_used_hiwater"] = self.used_hiwater
        if self.dyn is not None:
            d["io_tlb_transient_nslabs"] = self.transient_nslabs
        return d

    def costs(self) -> dict:
        """Deterministic cost counters: slots examined by the searches, lock acquisitions
        per area (pool by pool), unmap/sync lookups, bytes copied, and whatever the
        dynamic hook counts (pools searched, transient pools, worker runs, page orders)."""
        pools = list(self.pools)
        out = {"slots_examined": sum(p.slots_examined for p in pools),
               "area_locks": {f"{p.name or 'pool'}@{p.start:#x}": list(p.area_locks) for p in pools},
               "lock_acquisitions": sum(sum(p.area_locks) for p in pools),
               "bytes_copied": self.bytes_copied, "unmap_sync_lookups": self.lookups}
        if self.dyn is not None:
            d = self.dyn.costs()
            out["slots_examined"] += d.pop("slots_examined_freed_pools", 0)
            out.update(d)
        return out

    def reset_hiwater(self, value: int = 0) -> None:
        """Write to ``io_tlb_used_hiwater`` (``io_tlb_hiwater_set``, 6.4+): 0 resets it;
        anything else is EINVAL."""
        if value != 0:
            raise ValueError(f"value: io_tlb_used_hiwater only accepts 0 (EINVAL), got {value!r}")
        self.used_hiwater = 0
