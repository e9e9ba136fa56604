"""BPR, the main task: ``-log sigma(x_ui - x_uj)`` for each (u, i) of the batch and one negative
item ``j`` drawn uniformly from the items ``u`` has no train interaction with.

The math is the shared triplet kernel (:func:`pmtnumba.tasks.triplet.triplet_slots`); this
module only draws the negatives and maps items into the row space.
"""

from __future__ import annotations

import numpy as np

from ..data.samplers import sample_unlinked
from .base import Batch, Task, TaskContext, TaskOutput
from .triplet import triplet_slots

MAX_TRIES = 64


class BPRTask(Task):
    name = "bpr"

    def __init__(self, ctx: TaskContext, stream: int):
        super().__init__(ctx, stream)

    def max_slots(self, batch_size: int) -> int:
        return 3 * batch_size

    def triplets(self, batch: Batch, key):
        """The step's (u, i, j) triplets in row ids."""
        ctx = self.ctx
        neg = np.empty(batch.size, np.int64)
        sample_unlinked(batch.users, ctx.train_indptr, ctx.train_indices, ctx.n_items, key, MAX_TRIES, neg)
        return batch.users, batch.items + ctx.n_users, neg + ctx.n_users

    def compute(self, E, batch: Batch, key, out_rows, out_grads) -> TaskOutput:
        a, b, c = self.triplets(batch, key)
        n = a.shape[0]
        if n == 0:
            return TaskOutput(0, 0.0, 0)
        loss = np.empty(n, np.float64)
        triplet_slots(E, a, b, c, 1.0 / n, out_rows[: 3 * n], out_grads[: 3 * n], loss)
        return TaskOutput(3 * n, float(loss.sum() / n), n)
