"""Race-free, deterministic accumulation of per-sample gradient contributions into rows.

Every task kernel writes each sample's contribution into *its own slots*: slot ``s`` holds a row
id ``slot_rows[s]`` and a gradient vector ``slot_grads[s, :]``. No two samples ever write to the
same memory, so the sample loop can run in parallel without atomics.

The slots are then summed per row:

1. :func:`index_rows` (serial, O(S)) finds R, the sorted distinct rows the slots touch, and a CSR
   ``indptr``/``order`` listing, for each row of R, its slots in increasing slot order (a
   counting sort).
2. :func:`gather_rows` (parallel over rows) sums each row's slots in that fixed order.

Because each row is summed by one thread in a fixed order, the result is bit-identical whatever
the number of threads (SPEC section 3). With several tasks, each slot also carries its task id and
the sums land in ``G[task, r, :]``: the ``[T, |R|, d]`` row gradients a combiner receives.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def index_rows(slot_rows, mark):
    """Sorted distinct rows of ``slot_rows`` and, per row, its slots in slot order.

    Parameters
    ----------
    slot_rows : int64 [S]
        Row id of each slot (global row space, ``0 <= row < mark.size``).
    mark : int64 [N]
        Workspace filled with -1; it is restored to all -1 before returning, so a caller can keep
        one and reuse it every step (only the touched entries are written, O(S) not O(N)).

    Returns
    -------
    rows : int64 [R]       the distinct rows, ascending
    indptr : int64 [R+1]   slots of ``rows[k]`` are ``order[indptr[k]:indptr[k+1]]``
    order : int64 [S]      slot ids grouped by row, increasing within a row
    """
    S = slot_rows.shape[0]
    uniq = np.empty(S, np.int64)
    n = 0
    for s in range(S):
        r = slot_rows[s]
        if mark[r] < 0:
            mark[r] = n
            uniq[n] = r
            n += 1
    rows = np.sort(uniq[:n])
    for k in range(n):
        mark[rows[k]] = k
    indptr = np.zeros(n + 1, np.int64)
    for s in range(S):
        indptr[mark[slot_rows[s]] + 1] += 1
    for k in range(n):
        indptr[k + 1] += indptr[k]
    fill = indptr[:-1].copy()
    order = np.empty(S, np.int64)
    for s in range(S):
        k = mark[slot_rows[s]]
        order[fill[k]] = s
        fill[k] += 1
    for k in range(n):
        mark[rows[k]] = -1
    return rows, indptr, order


@njit(parallel=True, cache=True)
def gather_rows(indptr, order, slot_task, slot_grads, out):
    """``out[t, k, :] = sum of slot_grads[s]`` over the slots ``s`` of row ``k`` with task ``t``.

    ``out`` is ``[T, R, d]`` and must be zero on entry. Parallel over rows; each row's slots are
    added in the fixed order of ``order`` (deterministic for any thread count).
    """
    R = indptr.shape[0] - 1
    d = slot_grads.shape[1]
    for k in prange(R):
        for p in range(indptr[k], indptr[k + 1]):
            s = order[p]
            t = slot_task[s]
            for c in range(d):
                out[t, k, c] += slot_grads[s, c]


def reduce_slots(slot_rows, slot_grads, n_rows=None, slot_task=None, n_tasks=1, mark=None):
    """Sum slot contributions into row gradients (the convenience form of the two kernels).

    Returns ``(rows [R], G)`` with ``G`` of shape ``[R, d]`` when ``slot_task`` is None, else
    ``[n_tasks, R, d]``.
    """
    slot_rows = np.ascontiguousarray(slot_rows, dtype=np.int64)
    slot_grads = np.ascontiguousarray(slot_grads)
    if mark is None:
        n = int(n_rows) if n_rows is not None else (int(slot_rows.max()) + 1 if slot_rows.size else 0)
        mark = np.full(n, -1, np.int64)
    rows, indptr, order = index_rows(slot_rows, mark)
    single = slot_task is None
    if single:
        slot_task = np.zeros(slot_rows.shape[0], np.int64)
        n_tasks = 1
    out = np.zeros((n_tasks, rows.shape[0], slot_grads.shape[1]), slot_grads.dtype)
    gather_rows(indptr, order, np.ascontiguousarray(slot_task, dtype=np.int64), slot_grads, out)
    return rows, (out[0] if single else out)
