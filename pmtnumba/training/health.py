"""Training health checks at the end of every epoch: finite embeddings, no runaway loss.

A step already refuses a non-finite loss or gradient (:func:`.step.train_step`); these checks
catch what a step cannot see: a last update that turned the table into Inf/NaN, and a loss that
stays finite but grows by orders of magnitude (a divergence at 1e13-1e27 never becomes NaN
quickly enough to be noticed otherwise).
"""

from __future__ import annotations

import math

from ..errors import TrainingDiverged
from .step import all_finite

#: A task's epoch loss this many times larger than its first epoch's (at least 1 in magnitude)
#: is a divergence.
DIVERGENCE_FACTOR = 1e4


def check_table(E, epoch: int, when: str = "after epoch") -> None:
    """Refuse an embedding table holding NaN or Inf."""
    if not all_finite(E):
        raise TrainingDiverged(f"training diverged: the embeddings hold NaN/Inf {when} {epoch}; try a smaller --lr")


class LossWatch:
    """Flags a task whose epoch loss grew by :data:`DIVERGENCE_FACTOR` over its first epoch's."""

    def __init__(self, allow: bool = False, factor: float = DIVERGENCE_FACTOR):
        self.allow = allow
        self.factor = factor
        self.first: dict[str, tuple[int, float]] = {}
        self.flagged: set[str] = set()

    def observe(self, epoch: int, losses: dict[str, float]) -> list[str]:
        """Check one epoch's mean losses; raise TrainingDiverged, or return warnings if ``allow``."""
        warnings = []
        for task, loss in losses.items():
            if not math.isfinite(loss):
                continue
            if task not in self.first:
                self.first[task] = (epoch, loss)
                continue
            e0, l0 = self.first[task]
            if abs(loss) > self.factor * max(abs(l0), 1.0) and task not in self.flagged:
                text = (f"training diverges: task {task!r} loss grew from {l0:.4g} (epoch {e0}) to {loss:.4g} "
                        f"(epoch {epoch})")
                if not self.allow:
                    raise TrainingDiverged(f"{text}; try a smaller --lr, or pass --allow-divergence to go on")
                self.flagged.add(task)
                warnings.append(f"warning: {text}; going on (--allow-divergence)")
        return warnings
