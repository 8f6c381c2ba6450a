"""Progress lines for the commands that can run longer than two seconds.

:class:`Progress` draws one line on standard error, redrawn at most ten times a second:
what runs, a bar, ``done/total``, the time so far and an estimate of the time left (the
rate so far times what is left; ``~`` marks a total that is itself an estimate).
:func:`progress_for` gives one only when standard error is a terminal or the user asked
with ``--progress``, so pipes and logs stay clean.  Nothing here touches the model.
"""
from __future__ import annotations

import sys
import time

__all__ = ["Progress", "progress_for", "format_eta"]


def format_eta(seconds: float) -> str:
    """``"12 s"``, ``"3 min 05 s"``: the estimate as a person reads it."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s"


class Progress:
    """A one-line progress bar on ``stream``: call it with ``(done, total)``.

    ``total`` None shows a count only; ``approx=True`` (or :meth:`approx_total`) marks the
    total as an estimate and raises it when ``done`` passes it."""

    def __init__(self, stream, label: str, clock=time.perf_counter) -> None:
        self.stream = stream
        self.label = label
        self.clock = clock
        self.t0 = clock()
        self.last = None
        self.drawn = False
        self.approx = None
        self.width = 0

    def phase(self, label: str) -> "Progress":
        """End the current line and start timing a new stage called ``label``."""
        self.finish()
        self.label = label
        self.t0 = self.clock()
        self.last = None
        self.approx = None
        self.width = 0
        return self

    def approx_total(self, total: int) -> "Progress":
        """Use ``total`` (an estimate) when callers report ``(done, None)``."""
        self.approx = total
        return self

    def text(self, done: int, total: int | None, secs: float) -> str:
        """The line for ``done`` of ``total`` after ``secs`` seconds (without ``\\r``)."""
        mark = ""
        if total is None and self.approx:
            total, mark = max(self.approx, done), "~"
        if not total:
            return f"{self.label}: {done:,} done  {secs:5.1f} s"
        frac = min(done / total, 1.0)
        bar = "#" * int(frac * 30)
        line = f"{self.label} [{bar:<30}] {frac:4.0%} {done:,}/{mark}{total:,}  {secs:5.1f} s"
        if 0 < done < total:
            line += f", about {format_eta(secs * (total - done) / done)} left"
        return line

    def __call__(self, done: int, total: int | None = None) -> None:
        now = self.clock()
        final = total is not None and done >= total
        if self.last is not None and now - self.last < 0.1 and not final:
            return
        self.last = now
        line = self.text(done, total, now - self.t0)
        self.width = max(self.width, len(line))
        self.stream.write("\r" + line.ljust(self.width))    # spaces cover a longer old line
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        """End the line (if one was drawn)."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def progress_for(a, label: str, stream=None) -> Progress | None:
    """A :class:`Progress` for the parsed arguments ``a`` when standard error is a terminal
    or ``a.progress`` is set; else None (no progress output at all)."""
    stream = sys.stderr if stream is None else stream
    if getattr(a, "progress", False) or stream.isatty():
        return Progress(stream, label)
    return None
