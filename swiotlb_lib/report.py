"""Text tables of results, for the command line and the chapters.

:func:`compare_table` puts scenario results side by side, one column per kernel profile.
"""
from __future__ import annotations


def compare_table(results) -> str:
    """The scenario summaries side by side, one column per kernel profile."""
    rows = [("cmdline", lambda r: r.cmdline or "(none)"), ("attempted", lambda r: r.attempted),
            ("mapped", lambda r: r.mapped), ("bounced", lambda r: r.bounced), ("failed", lambda r: r.failed)]
    rows += [(f"  {c}", (lambda c: lambda r: r.failures[c])(c)) for c in ("too_big", "pool_full",
                                                                          "out_of_reach", "no_memory")]
    rows += [("peak used slots", lambda r: r.peak_used_slots),
             ("peak bounce MiB", lambda r: f"{r.peak_bounce_bytes / (1 << 20):.2f}"),
             ("end bounce MiB", lambda r: f"{r.end_bounce_bytes / (1 << 20):.2f}"),
             ("transient pools", lambda r: r.transient_pools), ("pools added", lambda r: r.pools_added),
             ("OOM events", lambda r: r.oom_events)]
    keys = []
    for r in results:
        for k in r.extra:
            if k not in keys:
                keys.append(k)
    rows += [(k, (lambda k: lambda r: r.extra.get(k, "-"))(k)) for k in keys]
    ckeys = []
    for r in results:
        for k, v in r.costs.items():
            if k not in ckeys and not isinstance(v, dict):
                ckeys.append(k)
    rows += [(f"cost: {k}", (lambda k: lambda r: r.costs.get(k, 0))(k)) for k in ckeys]
    table = [["", *[r.kernel for r in results]]] + [[name, *[str(f(r)) for r in results]] for name, f in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in table)
