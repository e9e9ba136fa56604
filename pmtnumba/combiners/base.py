"""The combiner interface: per-task row gradients in, one row gradient out.

A training step gathers every task's gradient over R, the rows any task touched in the step,
as ``G`` with shape ``[T, |R|, d]`` (task 0 is the main task). A combiner maps it to one
``[|R|, d]`` gradient that the optimizer applies. Nothing of size ``[T, N, d]`` is ever built.

Combiners are small objects so that stateful methods (GradVac, Nash-MTL) can keep state
across steps and write it into checkpoints. Every combiner is also usable as a plain function
on a NumPy array through :func:`Combiner.__call__`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class CombinerWarning(RuntimeWarning):
    """A combiner could not do its normal step and did something documented instead
    (e.g. Nash-MTL reusing the previous weights); the message names the step."""


@dataclass
class StepContext:
    """What a combiner may know about the current step.

    epoch : int   the epoch counter ``s``, starting at 1
    step : int    the global step counter, starting at 1
    rng : numpy.random.Generator   the run's seeded generator for stochastic methods
    rows : int64 [|R|] or None      global row ids of G's rows (users then items)
    n_users : int                   rows below n_users are users, the rest items
    """

    epoch: int = 1
    step: int = 1
    rng: np.random.Generator | None = None
    rows: np.ndarray | None = None
    n_users: int = 0


class Combiner:
    """Base class. Subclasses implement :meth:`combine`."""

    name = "base"

    def combine(self, G: np.ndarray, ctx: StepContext) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, G: np.ndarray, ctx: StepContext | None = None) -> np.ndarray:
        G = np.asarray(G)
        if G.ndim != 3:
            raise ValueError(f"combiner {self.name}: expected G of shape [T, rows, d], got {G.shape}")
        return self.combine(G, ctx if ctx is not None else StepContext())

    def state_dict(self) -> dict:
        """Arrays and numbers to store in a checkpoint (empty for stateless methods)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""

    def config(self) -> dict:
        """Hyper-parameters, for the run's resolved config."""
        return {}

    def events(self) -> dict:
        """Counts of notable events since construction (e.g. Nash-MTL's fallbacks); the training
        loop writes each epoch's increase to ``curve.csv`` as ``combiner_<name>``."""
        return {}


class EW(Combiner):
    """Equal weighting: ``g = sum_t G[t]`` (weights 1, not 1/T; LibMTL's EW).

    With one task the sum is ``G[0]`` itself, returned as a view without a copy (the same bits:
    the row sums of a training step never hold a -0.0 that ``G.sum(0)`` would turn into +0.0).
    """

    name = "ew"

    def combine(self, G: np.ndarray, ctx: StepContext) -> np.ndarray:
        if G.shape[0] == 1:
            return G[0]
        return G.sum(axis=0)
