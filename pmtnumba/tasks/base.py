"""The task interface: what every loss (main or auxiliary) provides to the training step.

A task is built once per run from the training data (:class:`TaskContext`). Each step it draws
its samples for the mini-batch with the counter-based generator, computes its loss, and writes
its per-sample gradient contributions into slots (see :mod:`pmtnumba.tasks.rowgrad`); the step
then sums the slots of all tasks into ``G[t, r, :]``.

Row space: users are rows ``0..U-1`` and items rows ``U..U+I-1`` of one embedding table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Batch:
    """One mini-batch of training interactions.

    users : int64 [B]   user ids (= their rows)
    items : int64 [B]   item ids (their rows are ``n_users + items``)
    ratings : float32 [B] or None
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.users.shape[0])


@dataclass
class TaskContext:
    """What tasks may use to build their sampling structures (training data only)."""

    n_users: int
    n_items: int
    train_users: np.ndarray  # int64 [M_train]
    train_items: np.ndarray  # int64 [M_train]
    train_indptr: np.ndarray  # user -> train items CSR
    train_indices: np.ndarray
    train_ratings: np.ndarray | None = None
    dataset: object | None = None  # pmtnumba.data.Dataset (side relations)
    aux_sampling: str = "anchored"  # or "independent"
    options: dict = field(default_factory=dict)


@dataclass
class TaskOutput:
    """What one task's step produced: slots written, mean loss, pairs formed."""

    n_slots: int
    loss: float
    n_pairs: int


class Task:
    """Base class of all tasks."""

    name = "task"

    def __init__(self, ctx: TaskContext, stream: int):
        self.ctx = ctx
        self.stream = stream  # random stream id of this task (keys its draws)

    def max_slots(self, batch_size: int) -> int:  # pragma: no cover - interface
        """Upper bound on the slots one step writes for a batch of this size."""
        raise NotImplementedError

    def compute(self, E, batch: Batch, key, out_rows, out_grads) -> TaskOutput:  # pragma: no cover
        """Sample, compute the loss, write slot rows/gradients; return a :class:`TaskOutput`."""
        raise NotImplementedError

    def config(self) -> dict:
        return {}
