"""Sizing SWIOTLB from a real trace: readers, lifetime models, replay and a pool advisor.

One module per concern, in the order data flows through them:

* :mod:`~swiotlb_lib.trace.read` -- the text of ``/sys/kernel/tracing/trace`` and of
  ``trace-cmd report`` (``swiotlb:swiotlb_bounced``, the kprobe ``map``/``map_ret``/``unmap``
  events, ``trace_marker`` lines) and ``/sys/kernel/debug/swiotlb/``, with every skipped
  line kept with its number and reason;
* :mod:`~swiotlb_lib.trace.requests` -- mappings grouped into virtio-blk requests
  (``data/realkernel/README.md``, finding 13);
* :mod:`~swiotlb_lib.trace.lifetime` -- how long a bounce buffer stays mapped: the
  tracepoint records maps, not unmaps, so a model the user picks (``fixed:250us``,
  ``qd:32``, ``exp:200us``, ``lognormal:1.5ms,0.5``) or, with the kprobe unmaps, ``real``;
* :mod:`~swiotlb_lib.trace.engine` and :mod:`~swiotlb_lib.trace.replay` -- the mappings
  through a booted :class:`~swiotlb_lib.boot.Machine` of any kernel profile and
  ``swiotlb=`` setting, blk-mq's requeue of a request that cannot get its slots, and
  livelock detection (``data/realkernel/README.md``, finding 12);
* :mod:`~swiotlb_lib.trace.advise` -- the smallest pool the kernel can build that replays
  the trace without failures, per profile;
* :mod:`~swiotlb_lib.trace.synthesize` -- seeded synthetic traces of the same shape;
* :mod:`~swiotlb_lib.trace.sizing` -- the analyses of chapter 9b on the recordings in
  ``data/realkernel/`` and its registered experiments (imported on its own, not here).

The names callers use (``from swiotlb_lib import trace as T``; ``T.read_trace``,
``T.replay``, ``T.advise``, ``T.parse_lifetime``, ...) are re-exported here.  The functions
:func:`replay` and :func:`advise` have the names of their modules, so once this package is
imported ``swiotlb_lib.trace.replay`` is the function: reach a module's other names with
``from swiotlb_lib.trace.replay import ...``.

Nothing here copies kernel code; the behaviour modelled is cited where it is used.
"""
from __future__ import annotations

# The re-exports (no ``__all__``: the API appendix documents each name once, in its module).
from .advise import (ADVISE_PROFILES, Advice, advise, effective_nslabs, max_replays, pool_candidates,
                     pool_cmdline)
from .engine import Livelock, livelock_groups, livelock_warning
from .lifetime import (DEFAULT_LIFETIME, MAX_DURATION_S, Lifetime, lifetime_stats, parse_duration,
                       parse_lifetime, tracepoint_only)
from .read import (DEBUGFS_FILES, TLB_FAILED, Debugfs, Mapping, Skipped, Trace, parse_debugfs, parse_trace,
                   read_debugfs, read_trace)
from .replay import (BLK_MQ_RESOURCE_DELAY, DEFAULT_LIVELOCK_REPEATS, DEFAULT_MAX_RETRIES, PreparedTrace,
                     ReplayResult, Timeline, areas_from_trace, calibrate, default_cmdline, prepare_replay, replay)
from .requests import (MAX_MAPPING_BYTES, VIRTIO_BLK_HDR_BYTES, VIRTIO_BLK_STATUS_BYTES, VRING_DESC_BYTES,
                       Request, group_requests, min_request_slots, request_slots)
from .synthesize import synthesize_trace, temp_trace
