"""swiotlb_lib: a model of the Linux kernel's SWIOTLB (software IO TLB, DMA bounce buffers).

It boots a model machine the way the kernel sizes and places its bounce-buffer pool, and maps
DMA buffers through the same slot/segment/area allocator as ``kernel/dma/swiotlb.c``, one
kernel version at a time (``python -m swiotlb_lib profiles``).  It is checked against golden
vectors from the kernel's own allocator code and against recordings of real kernels, both in
the repository's ``data/`` folder.

Start with three objects::

    from swiotlb_lib import Machine, Device, DMA_TO_DEVICE

    m = Machine(ram="2G", cpus=2, cmdline="swiotlb=force", kernel="v6.11")
    print(m.report())                        # what the kernel logs, debugfs values
    dev = m.add_device(Device("0000:00:02.0"))   # a device with a 64-bit DMA mask
    addr = m.dma.map_single(dev, 0x1000000, 4096, DMA_TO_DEVICE)
    m.dma.unmap_single(dev, addr, 4096, DMA_TO_DEVICE)

* ``Machine`` (:mod:`swiotlb_lib.boot`): RAM, CPUs, architecture and kernel command line; it
  owns the memory, the kernel log and the SWIOTLB allocator (``m.swiotlb``).
* ``Device`` (:mod:`swiotlb_lib.device`): DMA masks, ``min_align_mask``, segment limits;
  presets by name, e.g. ``m.add_device("nvme")`` or ``m.add_device("virtio-blk")``.
* ``m.dma`` (:class:`swiotlb_lib.direct.DmaApi`): ``map_single``, ``unmap_single``,
  ``sync_single_for_cpu/device``, ``map_sg``: the streaming DMA API as dma-direct runs it.

The same model runs from the shell: ``python -m swiotlb_lib --help`` (or ``swiotlb-sim``)
lists the commands: ``boot``, ``oracle``, ``scenario``, ``compare``, ``replay``, ``advise``,
``dma-map-benchmark`` and more.
"""
__version__ = '0.1.0'

__all__ = ["Machine", "Device", "DMA_TO_DEVICE", "DMA_FROM_DEVICE", "DMA_BIDIRECTIONAL",
           "__version__"]


def __getattr__(name):
    # Imported on first use, so that ``python -m swiotlb_lib --help`` and the commands that
    # do not boot a machine load only what they need.
    if name == "Machine":
        from .boot import Machine
        return Machine
    if name == "Device":
        from .device import Device
        return Device
    if name in ("DMA_TO_DEVICE", "DMA_FROM_DEVICE", "DMA_BIDIRECTIONAL"):
        from . import constants
        return getattr(constants, name)
    raise AttributeError(f"module 'swiotlb_lib' has no attribute {name!r}")
