"""The control of the section on the merged design on a real kernel: choose a boot of
``data/realkernel-dynamic/`` (D1-D4) and see its pools over time, kernel beside model
(precomputed, so it works on the static page)."""
from __future__ import annotations

from ..plots import dynamic612 as plots
from ..plots.common import img_html
from ..report import esc
from ..scenarios import dynamic612 as scen
from .common import precomputed


def boot_state(boot: str) -> str:
    """One boot's state: its figure and the text of the side-by-side experiment."""
    v = scen.side_by_side(boot)
    fig = plots.plot_pools_over_time(v)
    alt = (f"Boot {boot}: slots in use and pools added over trace time, the kernel's "
           f"{len(v['kernel']['worker'])} worker and {len(v['kernel']['transient'])} transient pools "
           f"against the model's {v['own']['pools_added']} and {v['own']['transient_pools']}")
    text = "<br>".join(esc(line) for line in scen.side_by_side_lines(v))
    return img_html(fig, alt) + f"<div style='font-family:monospace;font-size:85%'>{text}</div>"


def boot_picker(boots=tuple(scen.BOOTS)):
    """Precomputed toggle buttons over the boots (D2 selected when offered)."""
    return precomputed(boots, boot_state, description="boot",
                       value="D2" if "D2" in boots else None, kind="toggle")
