"""RLW, random loss weighting (Lin et al., 2021; LibMTL's ``RLW`` with dist="Normal").

``z ~ N(0, I_T)``, ``w = softmax(z)``, ``g = sum_t w_t g_t``. LibMTL draws ``z`` every step (the
default here); the PMTRec paper's text says "each epoch", offered as ``per="epoch"`` (one draw at
the first step of each epoch, kept in the state so that a resumed run continues with it).
"""

from __future__ import annotations

import numpy as np

from .base import StepContext
from .gram import weighted_sum
from .taskwise import TaskwiseCombiner, require_rng


def rlw_weights(rng: np.random.Generator, T: int) -> np.ndarray:
    """One draw of RLW's weights: ``softmax(z)``, ``z ~ N(0, I_T)`` from ``rng`` (float64 [T])."""
    z = rng.standard_normal(T)
    e = np.exp(z - z.max())
    return e / e.sum()


def rlw_combine(G2d: np.ndarray, rng: np.random.Generator, weights: np.ndarray | None = None) -> np.ndarray:
    """RLW on [T, D] gradients: ``g = sum_t w_t G2d[t]`` with fresh weights from ``rng``
    (or the given ``weights``, as the per-epoch mode uses). Returns [D] in G2d's dtype."""
    w = rlw_weights(rng, G2d.shape[0]) if weights is None else weights
    return weighted_sum(G2d, w)


class RLW(TaskwiseCombiner):
    """Random loss weighting; ``per`` is "step" (LibMTL, default) or "epoch" (the paper's text)."""

    name = "rlw"

    def __init__(self, per: str = "step"):
        if per not in ("step", "epoch"):
            raise ValueError(f"rlw: per must be 'step' or 'epoch', got {per!r}")
        self.per = per
        self._epoch = None  # epoch of the current per-epoch weights
        self._w = None
        self.last_weights = None

    uses_gram = False  # the weights are random draws; G is only summed with them

    def task_weights(self, A: None, T: int, ctx: StepContext) -> np.ndarray:
        rng = require_rng(ctx, self.name)
        if self.per == "step":
            w = rlw_weights(rng, T)
        else:
            if self._w is None or self._epoch != ctx.epoch or self._w.shape[0] != T:
                self._w, self._epoch = rlw_weights(rng, T), ctx.epoch
            w = self._w
        self.last_weights = w
        return w

    def state_dict(self) -> dict:
        if self.per == "step" or self._w is None:
            return {}
        return {"epoch": self._epoch, "weights": self._w.copy()}

    def load_state_dict(self, state: dict) -> None:
        if "weights" in state:
            self._w = np.asarray(state["weights"], dtype=np.float64).copy()
            self._epoch = int(state["epoch"])

    def config(self) -> dict:
        return {"per": self.per}
