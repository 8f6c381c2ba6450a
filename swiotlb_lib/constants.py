"""Constants of the software IO TLB.

Values follow ``include/linux/swiotlb.h`` and ``kernel/dma/swiotlb.c`` (all kernel
versions modelled: v6.3-rc, v6.3, v6.6, v6.11): the header read at
``include/linux/swiotlb.h@1aaa736815eb``, the ``.c`` file at ``kernel/dma/swiotlb.c@7c3940bf81e5``
and ``@009fbfc97b63`` (the dynamic pool cap in ``swiotlb_alloc_pool()`` of the latter).
"""

# Units and limits, defined once for the whole library.
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
#: All ones in 64 bits: the largest physical or DMA address, a full 64-bit mask.
U64 = (1 << 64) - 1
#: All ones in 32 bits.
U32 = (1 << 32) - 1

#: log2 of the slot ("slab") size (``IO_TLB_SHIFT``).
IO_TLB_SHIFT = 11
#: One slot: 2 KiB (``IO_TLB_SIZE``).
IO_TLB_SIZE = 1 << IO_TLB_SHIFT
#: Slots in one segment; a mapping never crosses a segment (``IO_TLB_SEGSIZE``).
IO_TLB_SEGSIZE = 128
#: Largest single bounce buffer: 128 slots = 256 KiB.
IO_TLB_SEGMENT_BYTES = IO_TLB_SIZE * IO_TLB_SEGSIZE
#: Default pool size, 64 MiB (``IO_TLB_DEFAULT_SIZE``).
IO_TLB_DEFAULT_SIZE = 64 << 20
#: Default pool size in slots (32768).
IO_TLB_DEFAULT_NSLABS = IO_TLB_DEFAULT_SIZE >> IO_TLB_SHIFT
#: Smallest boot pool and the dynamic worker's ``minslabs``: 1 MiB = 512 slots (``IO_TLB_MIN_SLABS``).
IO_TLB_MIN_SLABS = (1 << 20) >> IO_TLB_SHIFT

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
#: Slots per page (``SLABS_PER_PAGE``): 2 with 4 KiB pages.
SLABS_PER_PAGE = 1 << (PAGE_SHIFT - IO_TLB_SHIFT)
#: ``MAX_ORDER`` (inclusive since 6.4; ``MAX_PAGE_ORDER`` later): 4 MiB buddy blocks.
MAX_ORDER = 10
#: Largest dynamic pool: ``SLABS_PER_PAGE << MAX_ORDER`` = 2048 slots (4 MiB).
DYNAMIC_POOL_MAX_NSLABS = SLABS_PER_PAGE << MAX_ORDER

#: ``INVALID_PHYS_ADDR``: the ``orig_addr`` of a free slot.
INVALID_PHYS_ADDR = U64
#: ``DMA_MAPPING_ERROR``: all ones.
DMA_MAPPING_ERROR = U64
#: ``ULONG_MAX`` on 64-bit; the default segment boundary mask.
ULONG_MAX = U64

# swiotlb_init() flags (include/linux/swiotlb.h)
SWIOTLB_VERBOSE = 1 << 0
SWIOTLB_FORCE = 1 << 1
SWIOTLB_ANY = 1 << 2

# enum dma_data_direction (include/linux/dma-direction.h)
DMA_BIDIRECTIONAL = 0
DMA_TO_DEVICE = 1
DMA_FROM_DEVICE = 2
DMA_NONE = 3
DIRECTION_NAMES = {DMA_BIDIRECTIONAL: "DMA_BIDIRECTIONAL", DMA_TO_DEVICE: "DMA_TO_DEVICE",
                   DMA_FROM_DEVICE: "DMA_FROM_DEVICE"}

# DMA attributes (include/linux/dma-mapping.h)
DMA_ATTR_SKIP_CPU_SYNC = 1 << 5
DMA_ATTR_NO_WARN = 1 << 8
#: RFC v1 patch 1/4 only (ea0646e0e633...@huawei.com); never merged (bit 10 is DMA_ATTR_MMIO today).
DMA_ATTR_MAY_SLEEP = 1 << 10
KNOWN_ATTRS = DMA_ATTR_SKIP_CPU_SYNC | DMA_ATTR_NO_WARN | DMA_ATTR_MAY_SLEEP
