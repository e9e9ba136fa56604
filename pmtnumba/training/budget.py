"""Where a fit's wall-clock time goes: loading data, compiling kernels, training, evaluation,
checkpoints and other run-directory writes (``metrics.json`` ``time_budget``, the CLI's summary).

Compilation cannot be timed directly (Numba compiles, or loads from its cache, inside the first
call of each kernel), so it is estimated: the first training step of a process minus the mean of
the other steps of its epoch, plus an evaluation of one user before the first validation (which
compiles the ranking kernels and costs nothing else measurable). What the estimate takes from the
first step is not counted as training.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

#: the categories, in the order they are reported
KINDS = ("load", "compile", "train", "evaluate", "checkpoint", "io")


class TimeBudget:
    """Seconds per category of one process's fit, and the wall time since it was created."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.seconds = {k: 0.0 for k in KINDS}

    def add(self, kind: str, seconds: float) -> None:
        self.seconds[kind] += max(0.0, float(seconds))

    @contextmanager
    def measure(self, kind: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(kind, time.perf_counter() - t)

    def as_dict(self) -> dict:
        """Rounded seconds per category, ``total`` (wall time so far) and ``other`` (the rest:
        set-up, Python between the measured parts)."""
        total = time.perf_counter() - self.t0
        out = {k: round(v, 3) for k, v in self.seconds.items()}
        out["other"] = round(max(0.0, total - sum(self.seconds.values())), 3)
        out["total"] = round(total, 3)
        return out


def format_budget(b: dict) -> str:
    """One line: ``time 80.1s: load 0.4s, compile 11.2s, train 33.9s, evaluate 30.0s, ...``."""
    parts = [f"{k} {b[k]:.1f}s" for k in (*KINDS, "other") if k in b]
    return f"time {b['total']:.1f}s: " + ", ".join(parts)
