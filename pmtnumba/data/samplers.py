"""Samplers: the random choices of each task, drawn with the counter-based generator.

Sample ``s`` of a step uses only ``draw(key, s, k)`` for k = 0, 1, ..., so the draws are the
same whatever thread computes them (and on a GPU). Rejection sampling stops after ``max_tries``
draws; the last draw is then kept (only possible for a row linked to nearly everything).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..jitshare import shared_jit
from ..prefetch import prefetch_csr_row
from ..rng import randbelow
from .csr import csr_contains


@shared_jit(inline="always")
def draw_negative(indptr, indices, r, n_targets, key, s, max_tries):
    """Sample ``s``'s target uniform over ``[0, n_targets)`` not in row ``r`` of the CSR, by
    rejection (draws k = 0, 1, ...; after ``max_tries`` draws the last one is kept)."""
    j = randbelow(key, s, 0, n_targets)
    t = 1
    while t < max_tries and csr_contains(indptr, indices, r, j):
        j = randbelow(key, s, t, n_targets)
        t += 1
    return j


@njit(parallel=True, cache=True)
def sample_unlinked(anchors, indptr, indices, n_targets, key, max_tries, out):
    """For each anchor row ``r`` draw a target uniform over ``[0, n_targets)`` not in row ``r``
    of the CSR (BPR's negative item: an item the user has no train interaction with)."""
    n = anchors.shape[0]
    for s in prange(n):
        prefetch_csr_row(anchors, s, indptr, indices)
        out[s] = draw_negative(indptr, indices, anchors[s], n_targets, key, s, max_tries)


def epoch_batches(n_train: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The epoch's shuffled order of the training interactions cut into mini-batches (the last
    one may be smaller); a function of (seed, epoch) only."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), 0xBA7C]))
    perm = rng.permutation(n_train)
    return [perm[k : k + batch_size] for k in range(0, n_train, batch_size)]
