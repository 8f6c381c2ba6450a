"""``rfc-v1-bugs``: RFC v1 patch 3/4 as posted, met by a workload that reuses freed pages.

Patch 3/4 (0334a54332ab75312c9de825548b616439dcc9f5.1679309810.git.petr.tesarik.ext@huawei.com)
keys its maple tree with ``xa_mk_value(PHYS_PFN(paddr))`` = ``2*pfn + 1`` and stores
``[key, key + PFN_UP(alloc_size) - 1]``; ``swiotlb_dyn_unmap()`` calls
``mt_find(&mem->dyn_slots, &index, index)``, which advances ``index`` to the found range's
last key + 1 (``lib/maple_tree.c: mt_find()``), and then ``mtree_erase(&mem->dyn_slots,
index)``.  :func:`rfc_v1_bugs` maps, partially syncs and unmaps multi-page dynamic buffers
on one machine, with a seeded order, and counts what the profile's tree does:

``stale_entries_after_unmap``
    tree ranges left pointing at freed descriptors once every buffer is unmapped;
``use_after_free_lookups``
    lookups (``is_swiotlb_buffer()``, ``swiotlb_dyn_bounce()``, ``swiotlb_dyn_unmap()``)
    that returned a freed descriptor: later syncs inside reused pages, and the unmap
    and sync checks dma-direct makes for a 64-bit device's own (never bounced) pages;
``unbounced_sync_bytes``
    bytes a ``dma_sync_single_for_cpu()`` inside a live dynamic buffer should have
    copied and did not;
``zeroed_bytes``, ``decrypt_calls``
    what ``dma_direct_alloc_pages()`` does for every buffer (they belong to the design:
    both profiles count them; ``decrypt_calls`` only in a confidential guest).

Where a lookup returns a freed descriptor the model counts it and copies nothing; the
kernel would go on to read the freed ``struct io_tlb_dyn_slot`` (and, at an unmap, free its
pages a second time).  That is the model's stopping point, not kernel behaviour.

``restricted_pool`` repeats one mapping through a restricted DMA pool
(``rmem_swiotlb_device_init()``): as posted, ``swiotlb=dynamic`` reaches it.
"""
from __future__ import annotations

import random

from ..boot import Machine
from ..constants import (DMA_ATTR_MAY_SLEEP, DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE,
                         KiB, PAGE_SHIFT, PAGE_SIZE)
from ..page_alloc import GFP_KERNEL
from ..swiotlb import IoTlbMem
from ..versions import get_profile
from . import Experiment, register

#: the profiles the scenario runs on
RFC_KERNELS = ("rfc-v1", "rfc-v1-posted")
#: the keys every result has at top level, in this order
KEYS = ("stale_entries_after_unmap", "use_after_free_lookups", "unbounced_sync_bytes",
        "zeroed_bytes", "decrypt_calls")
SYNC_BYTES = 512


def check_kernel(kernel) -> str:
    """The profile name, or ValueError if it has no RFC v1 dynamic buffers."""
    p = get_profile(kernel)
    if p.dynamic != "rfc-v1":
        raise ValueError(f"kernel: scenario rfc-v1-bugs needs a profile with RFC v1 dynamic "
                         f"buffers ({', '.join(RFC_KERNELS)}), got {p.name!r}")
    return p.name


def restricted_pool(kernel: str, cmdline: str = "swiotlb=dynamic") -> dict:
    """One 16 KiB ``DMA_TO_DEVICE`` mapping by a device behind a 1 MiB restricted DMA pool
    (``for_alloc``, ``force_bounce``, set up as ``rmem_swiotlb_device_init()`` does)."""
    m = Machine(ram="4G", cpus=4, cmdline=cmdline, kernel=kernel)
    from ..dynamic import RfcDynamic
    start = m.pages.alloc_pages(GFP_KERNEL, 8, limit=0xFFFFFFFF, owner="restricted-dma-pool")
    rmem = IoTlbMem(m.profile, memory=m.memory, log=m.log, force_bounce=True, for_alloc=True,
                    name="restricted-dma-pool")
    rmem.init_pool(start, 512, 1)
    rmem.dyn = RfcDynamic(rmem, m.pages, allow_dyn=m.setup.dynamic)
    dev = m.add_device("pci32", "restricted")
    dev.dma_io_tlb_mem = rmem
    orig = m.pages.alloc_pages(GFP_KERNEL, 2, limit=0xFFFFFFFF, owner="driver")
    m.memory.fill(orig, 16 * KiB, 0xA5)
    dma = m.dma.map_single(dev, orig, 16 * KiB, DMA_TO_DEVICE)
    m.dma.unmap_single(dev, dma, 16 * KiB, DMA_TO_DEVICE)
    c = rmem.dyn.costs()
    return {"allow_dyn": rmem.dyn.allow_dyn,
            "dyn_buffers_from_pool": c.get("dyn_from_restricted_pool", 0),
            "unbounced_map_bytes": c.get("restricted_unbounced_bytes", 0),
            "leaked_descriptors": c.get("leaked_descriptors", 0),
            "tree_entries_after_unmap": len(rmem.dyn.tree)}


def rfc_v1_bugs(kernel: str = "rfc-v1-posted", seed: int = 1, mem_encrypt: bool = False,
                rounds: int = 60, cmdline: str | None = None) -> dict:
    """The seeded map/sync/unmap sequence; returns :data:`KEYS` and the details.

    An 8 GiB, 4-CPU x86 machine booted with ``swiotlb=dynamic`` (a confidential guest with
    ``mem_encrypt``).  A 32-bit device maps buffers of 2 to 8 pages above 4 GiB with
    ``DMA_ATTR_MAY_SLEEP`` (so the allocation may block and, in a confidential guest, is
    decrypted), keeps up to four live, syncs 512 bytes inside a random page of each for
    the CPU, and unmaps them in random order; after each unmap a 64-bit device maps a
    page it got from the page allocator directly, and dma-direct's unmap of it asks
    ``is_swiotlb_buffer()``."""
    kernel = check_kernel(kernel)
    if type(rounds) is not int or not 1 <= rounds <= 10000:
        raise ValueError(f"rounds: must be an integer in 1..10000, got {rounds!r}")
    rng = random.Random(seed)
    m = Machine(ram="8G", cpus=4, mem_encrypt=bool(mem_encrypt), kernel=kernel,
                cmdline=cmdline if cmdline is not None else "swiotlb=dynamic")
    d = m.swiotlb.dyn
    if d is None or not d.allow_dyn:
        raise ValueError("cmdline: scenario rfc-v1-bugs needs dynamic buffers on; add swiotlb=dynamic")
    dev = m.add_device("pci32")
    nvme = m.add_device("nvme")
    live: list[tuple[int, int]] = []
    unbounced = syncs = direct_lookups = direct_hits = 0
    orig = 0x100000000 + (1 << 30)                 # above 4 GiB: the 32-bit device must bounce

    def unmap_one() -> None:
        nonlocal direct_lookups, direct_hits
        dma, n = live.pop(rng.randrange(len(live)))
        m.dma.unmap_single(dev, dma, n * PAGE_SIZE, DMA_BIDIRECTIONAL)
        page = m.pages.alloc_pages(GFP_KERNEL, 0, limit=0xFFFFFFFF, owner="driver")
        if page is not None:
            # dma_direct_unmap_page() of the 64-bit device's own page: is_swiotlb_buffer()
            direct_lookups += 1
            direct_hits += m.swiotlb.is_swiotlb_buffer(nvme, page)
            m.pages.free_pages(page, 0)

    for r in range(rounds):
        n = rng.randint(2, 8)
        src = orig + r * 8 * PAGE_SIZE
        dma = m.dma.map_single(dev, src, n * PAGE_SIZE, DMA_BIDIRECTIONAL, DMA_ATTR_MAY_SLEEP)
        live.append((dma, n))
        k = rng.randrange(n)
        before = m.swiotlb.bytes_copied
        m.dma.sync_single_for_cpu(dev, dma + k * PAGE_SIZE, SYNC_BYTES, DMA_FROM_DEVICE)
        unbounced += SYNC_BYTES - (m.swiotlb.bytes_copied - before)
        syncs += 1
        while len(live) > 4 or (live and rng.random() < 0.4):
            unmap_one()
    while live:
        unmap_one()
    c = d.costs()
    out = {"stale_entries_after_unmap": d.stale_entries(),
           "use_after_free_lookups": c.get("use_after_free_lookups", 0),
           "unbounced_sync_bytes": unbounced,
           "zeroed_bytes": c.get("zeroed_bytes", 0),
           "decrypt_calls": c.get("decrypt_calls", 0),
           "kernel": kernel, "mem_encrypt": bool(mem_encrypt), "seed": seed,
           "buffers": rounds, "syncs": syncs, "sync_bytes_each": SYNC_BYTES,
           "direct_unmap_lookups": direct_lookups, "direct_unmap_stale_hits": direct_hits,
           "encrypt_calls": c.get("encrypt_calls", 0), "tree_erase_misses": c.get("tree_erase_misses", 0),
           "zones": {z: c[f"dyn_zone_{z}"] for z in ("DMA", "DMA32", "Normal") if c.get(f"dyn_zone_{z}")},
           "restricted_pool": restricted_pool(kernel)}
    return out


def lines(r: dict) -> list[str]:
    """The result as text: the five counters, then the details."""
    out = [f"rfc-v1-bugs on {r['kernel']}" + (" (confidential guest)" if r["mem_encrypt"] else "")
           + f", seed {r['seed']}: {r['buffers']} buffers of 2-8 pages, {r['syncs']} syncs of "
           f"{r['sync_bytes_each']} bytes"]
    out += [f"  {k:26} {r[k]}" for k in KEYS]
    out.append(f"  64-bit device's unmaps that is_swiotlb_buffer() took for bounce buffers: "
               f"{r['direct_unmap_stale_hits']} of {r['direct_unmap_lookups']}")
    out.append(f"  erases that found nothing: {r['tree_erase_misses']}; re-encryptions at free: "
               f"{r['encrypt_calls']}; zones: {r['zones']}")
    rp = r["restricted_pool"]
    out.append(f"  restricted DMA pool: allow_dyn={rp['allow_dyn']}, dynamic buffers carved from "
               f"the pool {rp['dyn_buffers_from_pool']}, bytes not bounced at map "
               f"{rp['unbounced_map_bytes']}, descriptors never freed {rp['leaked_descriptors']}")
    return out


register(Experiment("rfc-v1-bugs", rfc_v1_bugs,
                    "RFC v1 patch 3/4 as posted: stale tree entries, use-after-free lookups, unbounced syncs",
                    chapter="ch07", kernels="one", seeded=True, lines=lines,
                    defaults={"kernel": "rfc-v1-posted"}))


def tree_keys(kernel: str = "rfc-v1-posted", pages: int = 4) -> dict:
    """The tree of one ``pages``-page buffer before and after its unmap, for the figure:
    the buffer's first PFN ``pfn``, each page's lookup key and whether a lookup of it finds
    the buffer, and the stored ranges (relative to the first page's key) at each stage."""
    kernel = check_kernel(kernel)
    if type(pages) is not int or not 1 <= pages <= 64:
        raise ValueError(f"pages: must be an integer in 1..64, got {pages!r}")
    m = Machine(ram="8G", cpus=4, cmdline="swiotlb=dynamic", kernel=kernel)
    dev = m.add_device("pci32")
    d = m.swiotlb.dyn
    dma = m.dma.map_single(dev, 0x140000000, pages * PAGE_SIZE, DMA_BIDIRECTIONAL)
    pfn = dma >> PAGE_SHIFT
    base = d.key(pfn)

    def stage(label):
        return {"label": label,
                "ranges": [(a - base, b - base, bool(s.freed)) for a, b, s in d.tree.ranges()],
                "page_keys": [(k, d.key(pfn + k) - base, d.tree.mt_find(d.key(pfn + k), d.key(pfn + k))[0] is not None)
                              for k in range(pages)]}
    mapped = stage("after dma_map")
    _, advanced = d.tree.mt_find(base, base)           # what swiotlb_dyn_unmap() will find
    erase_at = d.erase_index(base, advanced)
    m.dma.unmap_single(dev, dma, pages * PAGE_SIZE, DMA_BIDIRECTIONAL)
    return {"kernel": kernel, "pages": pages, "pfn": pfn, "key0": base,
            "erase_at": erase_at - base,
            "stages": [mapped, stage("after dma_unmap")]}


def tree_keys_lines(r: dict) -> list[str]:
    out = [f"{r['kernel']}: a {r['pages']}-page buffer at PFN {r['pfn']:#x}, first key {r['key0']:#x}; "
           f"unmap erases at key0+{r['erase_at']}"]
    for s in r["stages"]:
        rng = ", ".join(f"[key0+{a}, key0+{b}]{' (freed descriptor)' if f else ''}" for a, b, f in s["ranges"]) or "empty"
        found = " ".join(f"page{k}:{'hit' if h else 'miss'}" for k, _, h in s["page_keys"])
        out.append(f"  {s['label']:16} tree {rng}; lookups {found}")
    return out


register(Experiment("rfc-v1-tree-keys", tree_keys,
                    "the maple tree of one 4-page RFC v1 buffer before and after unmap (keys, lookups)",
                    chapter="ch07", kernels="one", seeded=False, lines=tree_keys_lines,
                    defaults={"kernel": "rfc-v1-posted"}))
