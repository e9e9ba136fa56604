"""Runs done / total and an estimate of the time left, for the commands that train many runs
(``compare``, ``sweep run``, ``sweep report``).

The estimate is made of measured seconds only, never of a guess about runs not yet seen:

* one run at a time (``compare``): each remaining run is expected to take the mean measured
  seconds of the finished runs of its own kind (its method), or of all finished runs when none of
  its kind has finished; the first run of a process includes compiling the kernels, so early
  estimates err high;
* runs in parallel (the sweep's Dask workers): the wall-clock seconds since the start divided by
  the runs finished since, times the runs left (the throughput, which counts the workers).

Before the first run finishes there is no estimate (``?``). :class:`LiveLine` redraws one status
line in place on a terminal; elsewhere callers print one plain line per finished run.
"""

from __future__ import annotations

import math
import sys
import threading
import time

__all__ = ["RunProgress", "LiveLine", "format_seconds"]


def format_seconds(s: float | None) -> str:
    """``42s``, ``12m05s``, ``3h07m``; ``?`` for no estimate."""
    if s is None or not math.isfinite(s):
        return "?"
    s = int(round(max(0.0, s)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class RunProgress:
    """Counts finished runs of a known total and estimates the time left from their seconds.

    ``done``: runs already finished before this session (a resumed comparison or sweep); they count
    as done but, not having been timed here, not in the estimate. ``parallel``: estimate from the
    throughput since the start (several runs at once) instead of per-run seconds."""

    def __init__(self, total: int, done: int = 0, *, parallel: bool = False, unit: str = "runs", clock=time.monotonic):
        self.total, self.done, self.parallel, self.unit = int(total), int(done), parallel, unit
        self.clock = clock
        self.t0 = clock()
        self.n_session = 0
        self.seconds: dict = {}  # kind -> measured seconds of its finished runs

    def finished(self, kind=None, seconds: float | None = None, count: int = 1) -> None:
        """``count`` more runs finished; ``seconds`` the measured seconds of this one (of ``kind``)."""
        self.done += count
        self.n_session += count
        if seconds is not None:
            self.seconds.setdefault(kind, []).append(float(seconds))

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def eta(self, remaining_kinds=None) -> float | None:
        """Seconds left, or None before any run of this session finished. ``remaining_kinds``: the
        kind of each run still to do (one-at-a-time mode; default: all of an unknown kind)."""
        left = max(0, self.total - self.done)
        if left == 0:
            return 0.0
        if self.parallel or not self.seconds:
            if self.n_session == 0:
                return None
            return self.elapsed() / self.n_session * left
        every = [s for v in self.seconds.values() for s in v]
        mean_all = sum(every) / len(every)
        kinds = list(remaining_kinds) if remaining_kinds is not None else [None] * left
        return sum(sum(self.seconds[k]) / len(self.seconds[k]) if k in self.seconds else mean_all for k in kinds)

    def line(self, remaining_kinds=None) -> str:
        """``4/27 runs done | 5m10s elapsed | ~31m12s left``."""
        eta = self.eta(remaining_kinds)
        left = "done" if self.done >= self.total else (
            "time left ? (no run finished yet)" if eta is None else f"~{format_seconds(eta)} left")
        return f"{self.done}/{self.total} {self.unit} done | {format_seconds(self.elapsed())} elapsed | {left}"


class LiveLine:
    """One status line kept at the bottom of a terminal and redrawn every ``interval`` seconds
    (elapsed time moves, the estimate counts down); permanent lines go through :meth:`echo` above
    it. Off a terminal (``enabled=False``, the default when ``stream`` is not a tty) it draws
    nothing and :meth:`echo` just prints."""

    def __init__(self, text_fn, stream=None, enabled: bool | None = None, interval: float = 1.0):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = (hasattr(self.stream, "isatty") and self.stream.isatty()) if enabled is None else enabled
        self.text_fn, self.interval = text_fn, interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def _draw(self) -> None:
        self.stream.write("\r\x1b[K" + self.text_fn())
        self.stream.flush()

    def _clear(self) -> None:
        self.stream.write("\r\x1b[K")

    def __enter__(self):
        if self.enabled:
            with self._lock:
                self._draw()
            self._thread = threading.Thread(target=self._run, name="pmtnumba-live-line", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._draw()

    def echo(self, line: str) -> None:
        with self._lock:
            if self.enabled:
                self._clear()
            self.stream.write(line + "\n")
            if self.enabled:
                self._draw()
            self.stream.flush()

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.enabled:
            with self._lock:
                self._clear()
                self.stream.flush()
        return False
