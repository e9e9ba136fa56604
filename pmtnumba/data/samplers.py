"""Samplers: the random choices of each task, drawn with the counter-based generator.

Sample ``s`` of a step uses only ``draw(key, s, k)`` for k = 0, 1, ..., so the draws are the
same whatever thread computes them (and on a GPU). Rejection sampling stops after ``max_tries``
draws; then (only for a row linked to nearly everything) an exact draw of the m-th target not in
the row, by a walk over the row's sorted entries. Both stages are uniform over the valid targets,
so a negative is exactly uniform and never a positive (like the link samplers' fallback).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..jitshare import shared_jit
from ..prefetch import prefetch_csr_row
from ..rng import randbelow
from .csr import csr_contains


@shared_jit(inline="always")
def nth_absent(indices, lo, hi, m):
    """The ``m``-th (0-based) non-negative integer not in the sorted, distinct ``indices[lo:hi]``."""
    cand = np.int64(m)
    for p in range(lo, hi):
        if np.int64(indices[p]) <= cand:
            cand += 1
        else:
            break
    return cand


@shared_jit(inline="always")
def draw_negative(indptr, indices, r, n_targets, key, s, max_tries):
    """Sample ``s``'s target uniform over ``[0, n_targets)`` not in row ``r`` of the CSR (sorted,
    distinct): rejection with draws k = 0 .. max_tries - 1, then the exact fallback
    :func:`nth_absent` with draw k = max_tries. Returns -1 if row ``r`` holds every target."""
    lo = indptr[r]
    hi = indptr[r + 1]
    n_valid = n_targets - (hi - lo)
    if n_valid <= 0:
        return -1
    for t in range(max_tries):
        j = randbelow(key, s, t, n_targets)
        if not csr_contains(indptr, indices, r, j):
            return j
    return nth_absent(indices, lo, hi, randbelow(key, s, max_tries, n_valid))


@njit(parallel=True, cache=True)
def sample_unlinked(anchors, indptr, indices, n_targets, key, max_tries, out):
    """For each anchor row ``r`` draw a target uniform over ``[0, n_targets)`` not in row ``r``
    of the CSR (BPR's negative item: an item the user has no train interaction with); -1 for a
    row that holds every target (the caller rejects such data up front)."""
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
