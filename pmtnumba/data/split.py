"""The random 60/20/20 split of SPEC section 1, and the training view built from it.

Each interaction goes to train / validation / test with probabilities 0.6 / 0.2 / 0.2 by one
seeded draw over all interactions (the paper's "randomly split"). The split is a function of
(dataset, seed) only, so every method of a comparison sees the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .csr import csr_from_pairs
from .dataset import Dataset

TRAIN, VALID, TEST = 0, 1, 2


def split_labels(n_interactions: int, seed: int, ratios=(0.6, 0.2, 0.2)) -> np.ndarray:
    """int8 [n] labels in {TRAIN, VALID, TEST}, one uniform draw per interaction."""
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or np.any(r < 0) or not np.isclose(r.sum(), 1.0):
        raise ValueError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
    u = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED])).random(n_interactions)
    labels = np.full(n_interactions, TEST, np.int8)
    labels[u < r[0] + r[1]] = VALID
    labels[u < r[0]] = TRAIN
    return labels


@dataclass
class SplitData:
    """A data set with its split: train arrays and the user -> items CSRs of each part."""

    dataset: Dataset
    seed: int
    labels: np.ndarray
    train_users: np.ndarray
    train_items: np.ndarray
    train_ratings: np.ndarray | None
    train: tuple  # (indptr, indices)
    valid: tuple
    test: tuple

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    def user_degree(self) -> np.ndarray:
        """Training interactions per user."""
        return np.diff(self.train[0])


def make_split(dataset: Dataset, seed: int, ratios=(0.6, 0.2, 0.2)) -> SplitData:
    labels = split_labels(dataset.n_interactions, seed, ratios)
    u = dataset.users.astype(np.int64)
    i = dataset.items.astype(np.int64)
    parts = {}
    for lab in (TRAIN, VALID, TEST):
        m = labels == lab
        parts[lab] = csr_from_pairs(u[m], i[m], dataset.n_users)
    tr = labels == TRAIN
    return SplitData(
        dataset=dataset,
        seed=int(seed),
        labels=labels,
        train_users=u[tr],
        train_items=i[tr],
        train_ratings=None if dataset.ratings is None else dataset.ratings[tr].astype(np.float32),
        train=parts[TRAIN],
        valid=parts[VALID],
        test=parts[TEST],
    )
