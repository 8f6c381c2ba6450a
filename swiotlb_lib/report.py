"""Tables of results, as text (command line, printed cell outputs) and as HTML (widgets).

The one formatter of the project: :func:`text_table` and :func:`html_table` lay out rows;
:func:`compare_table` puts scenario results side by side, one column per kernel profile.
"""
from __future__ import annotations

import html

from .debug import CAUSES


def mib(x: float) -> str:
    """Bytes as a short human label (KiB/MiB/GiB)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if x >= 1 << shift:
            v = x / (1 << shift)
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{int(x)} B"


def esc(x) -> str:
    """``x`` as text safe inside HTML (quotes escaped too)."""
    return html.escape(str(x), quote=True)


def text_table(header, rows, *, strip: bool = False) -> str:
    """Rows as fixed-width text: the first column left-aligned, the others right-aligned,
    two spaces apart.  ``strip`` removes the trailing blanks of each line."""
    table = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in table)
    return "\n".join(line.rstrip() if strip else line for line in lines)


def html_table(header, rows, caption: str = "", *, pad: str = "2px 8px") -> str:
    """A small HTML table (used inside widget states); ``pad`` is the cells' CSS padding."""
    cap = (f"<caption style='caption-side:top;text-align:left'><b>{esc(caption)}</b></caption>"
           if caption else "")
    th = "".join(f"<th style='padding:{pad};text-align:left'>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='padding:{pad}'>{esc(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table style='border-collapse:collapse;font-size:90%'>{cap}<tr>{th}</tr>{body}</table>"


def compare_table(results) -> str:
    """The scenario summaries side by side, one column per kernel profile."""
    rows = [("cmdline", lambda r: r.cmdline or "(none)"), ("attempted", lambda r: r.attempted),
            ("mapped", lambda r: r.mapped), ("bounced", lambda r: r.bounced), ("failed", lambda r: r.failed)]
    # every cause but "no_pool": the scenarios always boot with a pool
    rows += [(f"  {c}", (lambda c: lambda r: r.failures[c])(c)) for c in CAUSES if c != "no_pool"]
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
    return text_table(["", *[r.kernel for r in results]], [[name, *[f(r) for r in results]] for name, f in rows])
