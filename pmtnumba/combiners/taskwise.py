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
from .gram import as_task_matrix


def require_rng(ctx: StepContext, method: str) -> np.random.Generator:
    """The step's seeded generator; stochastic methods refuse to run without one."""
    if ctx.rng is None:
        raise ValueError(
            f"combiner {method} is stochastic: pass StepContext(rng=np.random.default_rng(seed))"
        )
    return ctx.rng


class TaskwiseCombiner(Combiner):
    """A combiner that works on the flattened [T, D] view; subclasses implement :meth:`combine_flat`."""

    def combine(self, G: np.ndarray, ctx: StepContext) -> np.ndarray:
        G2 = as_task_matrix(G)
        g = self.combine_flat(G2, ctx)
        return g.reshape(G.shape[1:])

    def combine_flat(self, G2: np.ndarray, ctx: StepContext) -> np.ndarray:  # pragma: no cover
        """Combine [T, D] task gradients into one [D] gradient of the same dtype."""
        raise NotImplementedError
