"""BPR, the main task: ``-log sigma(x_ui - x_uj)`` for each (u, i) of the batch and one negative
item ``j`` drawn uniformly from the items ``u`` has no train interaction with.

The math is the shared triplet kernel (:func:`pmtnumba.tasks.triplet.triplet_slots`); this
module only draws the negatives and maps items into the row space.
"""

from __future__ import annotations

import numpy as np

from ..data.samplers import sample_unlinked
from ..errors import PmtError
from .base import Batch, TaskContext
from .triplet import TripletTask

MAX_TRIES = 64


class BPRTask(TripletTask):
    name = "bpr"

    def __init__(self, ctx: TaskContext, stream: int):
        super().__init__(ctx, stream)
        deg = np.diff(ctx.train_indptr)
        full = np.flatnonzero(deg >= ctx.n_items)
        if full.size:  # no negative item exists for them (the sampler would return -1)
            raise PmtError(f"bpr: user {int(full[0])} has a train interaction with every one of the "
                           f"{ctx.n_items} items, so no negative item can be drawn")

    def config(self) -> dict:
        return {"max_tries": MAX_TRIES}

    def triplets(self, batch: Batch, key):
        """The step's (u, i, j) triplets in row ids."""
        ctx = self.ctx
        neg = np.empty(batch.size, np.int64)
        sample_unlinked(batch.users, ctx.train_indptr, ctx.train_indices, ctx.n_items, key, MAX_TRIES, neg)
        return batch.users, batch.items + ctx.n_users, neg + ctx.n_users
