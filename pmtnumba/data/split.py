"""The split of a data set into train / validation / test, and the training view built from it.

Two kinds of split:

- **random** (SPEC section 1): each interaction goes to train / validation / test with
  probabilities 0.6 / 0.2 / 0.2 by one seeded draw over all interactions (the paper's "randomly
  split"). A function of (dataset, seed) only, so every method of a comparison sees the same one.
- **fixed**: the data set carries its own split (``dataset.extra["split"]``, int8 labels per
  interaction: a benchmark's train/test files, a user's three files, a ``split`` column; see
  :mod:`pmtnumba.data.fixed`). Where it has no validation part, one is held out of the training
  interactions for early stopping: ``holdout`` (default 10 %) of each user's training
  interactions, drawn with the run's seed (:func:`holdout_labels`).

``select_on="test"`` is the protocol of the graph-encoder papers (LightGCN, NGCF): nothing is
held out, and the best epoch is chosen on the test set itself. The validation part then IS the
test part, so the selected test score is optimistic; :attr:`SplitData.protocol` says so, and every
place that prints or saves results carries that label. It is only offered for a fixed split
without a validation part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .csr import csr_from_pairs
from .dataset import Dataset

TRAIN, VALID, TEST = 0, 1, 2

#: the label of results whose best epoch was chosen on the test set (``select_on="test"``)
OPTIMISTIC = "optimistic (epoch selected on test)"
SELECT_ON = ("valid", "test")


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


def protocol_label(dataset: Dataset, select_on: str = "valid", holdout: float = 0.1) -> str:
    """How a test score on ``dataset`` is obtained under these options (:data:`OPTIMISTIC` when the
    epoch is selected on the test set)."""
    if select_on == "test":
        return OPTIMISTIC
    fixed = dataset.extra.get("split") if dataset.extra else None
    if fixed is None:
        return "random 60/20/20 split, epoch selected on validation"
    if not np.any(np.asarray(fixed) == VALID) and holdout > 0:
        return f"fixed split, epoch selected on validation held out of train ({holdout:g} per user)"
    return "fixed split, epoch selected on its validation part"


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
    #: "random" (60/20/20 draw) or "fixed" (the data set's own split)
    kind: str = "random"
    #: where the best epoch is chosen: "valid", or "test" (then ``valid`` is the test part)
    select_on: str = "valid"
    #: fraction of each user's training interactions held out for validation (used only by a
    #: fixed split without a validation part)
    holdout: float = 0.1

    @property
    def protocol(self) -> str:
        """How the reported test score was obtained, for summaries, metrics.json and tables."""
        return protocol_label(self.dataset, self.select_on, self.holdout)

    def parts(self, part: str) -> tuple[tuple, list]:
        """``(heldout, exclude)`` CSRs for evaluating ``part``: validation masks the training
        items, test masks training and validation items (only training items when the
        validation part is the test part itself, ``select_on="test"``)."""
        if part == "valid":
            return self.valid, [self.train]
        if part == "test":
            return self.test, ([self.train] if self.select_on == "test" else [self.train, self.valid])
        raise ValueError(f"unknown split part {part!r}")

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    def user_degree(self) -> np.ndarray:
        """Training interactions per user."""
        return np.diff(self.train[0])


def holdout_labels(users: np.ndarray, labels: np.ndarray, seed: int, fraction: float) -> np.ndarray:
    """``labels`` with part of each user's TRAIN interactions relabelled VALID.

    A user with ``n`` training interactions gives ``round(fraction * n)`` of them (half rounds
    up), but always keeps at least one in train; which ones is one seeded uniform draw (a random
    key per interaction, the smallest keys of each user go).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the validation hold-out must be a fraction in [0, 1), got {fraction}")
    out = labels.copy()
    tr = np.flatnonzero(labels == TRAIN)
    if fraction == 0.0 or tr.size == 0:
        return out
    u = np.asarray(users, dtype=np.int64)[tr]
    key = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4F1D])).random(tr.size)
    order = np.lexsort((key, u))  # by user, then key
    us = u[order]
    start = np.flatnonzero(np.r_[True, us[1:] != us[:-1]])
    count = np.diff(np.r_[start, us.size])
    rank = np.arange(us.size) - np.repeat(start, count)
    take = np.minimum(np.floor(fraction * count + 0.5), count - 1).astype(np.int64)
    out[tr[order[rank < np.repeat(take, count)]]] = VALID
    return out


def make_split(dataset: Dataset, seed: int, ratios=(0.6, 0.2, 0.2), holdout: float = 0.1,
               select_on: str = "valid") -> SplitData:
    """The split of ``dataset`` for ``seed``: its own (fixed) split if it carries one, else the
    random draw of :func:`split_labels`. ``holdout`` and ``select_on`` apply to fixed splits (see
    the module docstring); a random split ignores ``holdout`` and refuses ``select_on="test"``."""
    if select_on not in SELECT_ON:
        raise ValueError(f"--select-on must be valid or test, got {select_on!r}")
    fixed = dataset.extra.get("split") if dataset.extra else None
    if fixed is None:
        if select_on == "test":
            raise ValueError(f"--select-on test is the protocol of fixed benchmark splits without a validation part; "
                             f"data set {dataset.name!r} has no fixed split (its random split has a validation part)")
        labels = split_labels(dataset.n_interactions, seed, ratios)
    else:
        labels = np.asarray(fixed, dtype=np.int8)
        has_valid = bool(np.any(labels == VALID))
        if select_on == "test":
            if has_valid:
                raise ValueError(f"--select-on test: data set {dataset.name!r} has its own validation part; "
                                 f"select on it (--select-on valid)")
        elif not has_valid:
            labels = holdout_labels(dataset.users, labels, seed, holdout)
    u = dataset.users.astype(np.int64)
    i = dataset.items.astype(np.int64)
    parts = {}
    for lab in (TRAIN, VALID, TEST):
        m = labels == lab
        parts[lab] = csr_from_pairs(u[m], i[m], dataset.n_users)
    tr = labels == TRAIN
    if select_on == "test":
        parts[VALID] = parts[TEST]
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
        kind="random" if fixed is None else "fixed",
        select_on=select_on,
        holdout=float(holdout),
    )
