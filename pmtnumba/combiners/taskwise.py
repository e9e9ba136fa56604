"""Shared shell of the task-wise baselines (RLW, GradDrop, PCGrad, GradVac, CAGrad, Aligned-MTL, Nash-MTL).

A task-wise method treats the whole step's gradient, flattened over the touched rows, as one
shared-parameter vector: ``G`` [T, R, d] is viewed as [T, D] with D = R * d (a reshape, no copy),
combined into g [D] by the method's pure ``<method>_combine`` function, and reshaped back to
[R, d]. Rows untouched by every task are zero for all tasks, so leaving them out changes no dot
product (see docs/baselines.md).
"""

from __future__ import annotations

import numpy as np

from .base import Combiner, StepContext
from .gram import as_task_matrix, gram, weighted_sum


def require_rng(ctx: StepContext, method: str) -> np.random.Generator:
    """The step's seeded generator; stochastic methods refuse to run without one."""
    if ctx.rng is None:
        raise ValueError(
            f"combiner {method} is stochastic: pass StepContext(rng=np.random.default_rng(seed))"
        )
    return ctx.rng


class TaskwiseCombiner(Combiner):
    """A combiner that works on the flattened [T, D] view.

    Most baselines only look at G through its Gram matrix and return ``g = sum_t w_t G[t]``; they
    implement :meth:`task_weights` (``uses_gram`` says whether it needs ``A``; RLW does not) and
    the shell does the O(T^2 D) and O(T D) parts. The GPU step calls the same :meth:`task_weights`
    on a Gram matrix built on the device (training/step_cuda.py), so the T x T math is written once.
    A method that is not such a combination (GradDrop) overrides :meth:`combine_flat` instead.
    """

    uses_gram = True

    def combine(self, G: np.ndarray, ctx: StepContext) -> np.ndarray:
        G2 = as_task_matrix(G)
        g = self.combine_flat(G2, ctx)
        return g.reshape(G.shape[1:])

    def combine_flat(self, G2: np.ndarray, ctx: StepContext) -> np.ndarray:
        """Combine [T, D] task gradients into one [D] gradient of the same dtype."""
        w = self.task_weights(gram(G2) if self.uses_gram else None, G2.shape[0], ctx)
        return weighted_sum(G2, w)

    def task_weights(self, A: np.ndarray | None, T: int, ctx: StepContext) -> np.ndarray:  # pragma: no cover
        """The coefficients ``w`` (float64 [T]) of ``g = sum_t w_t G[t]`` for the Gram matrix ``A``
        (None when ``uses_gram`` is False); advances the method's state and random draws."""
        raise NotImplementedError
