"""Race-free, deterministic accumulation of per-sample gradient contributions into rows.

Every task kernel writes each sample's contribution into *its own slots*: slot ``s`` holds a row
id ``slot_rows[s]`` and a gradient vector ``slot_grads[s, :]``. No two samples ever write to the
same memory, so the sample loop can run in parallel without atomics. A slot whose row is negative
is unused (a task that formed fewer samples than its bound) and is skipped.

The slots are then summed per row:

1. :func:`index_rows` (serial, O(S + N/64)) finds R, the sorted distinct rows the slots touch, and
   a CSR ``indptr``/``order`` listing, for each row of R, its slots in increasing slot order (a
   counting sort). The rows are found with a bitmap of N bits, read back word by word, so they come
   out sorted without a sort.
2. :func:`gather_rows` (parallel over rows) sums each row's slots in that fixed order.

Because each row is summed by one thread in a fixed order, the result is bit-identical whatever
the number of threads (SPEC section 3). With several tasks, each slot also carries its task id and
the sums land in ``G[task, r, :]``: the ``[T, |R|, d]`` row gradients a combiner receives.

Row access. The kernels of a step touch embedding rows in random order, and on a table of tens of
thousands of rows most of those accesses miss the cache. A kernel that knows which rows it will
touch a few iterations ahead asks the CPU to start loading them with
:func:`pmtnumba.prefetch.prefetch_row` (LLVM's ``prefetch`` hint: no effect on any result, only on
when the memory arrives).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import overload

from ..prefetch import PREFETCH_AHEAD, prefetch_row

def lowest_bit(x):
    """Index of the lowest set bit of a nonzero uint64 (``ctz``; the plain-Python version)."""
    x = int(x)
    return (x & -x).bit_length() - 1


@overload(lowest_bit, inline="always")
def _lowest_bit_jit(x):
    return lambda x: np.int64(trailing_zeros(x))


@njit(cache=True)
def index_rows(slot_rows, mark):
    """Sorted distinct rows of ``slot_rows`` and, per row, its slots in slot order.

    Parameters
    ----------
    slot_rows : int64 [S]
        Row id of each slot (global row space, ``row < mark.size``); a negative row marks an
        unused slot, which is left out.
    mark : int64 [N]
        Workspace filled with -1; it is restored to all -1 before returning, so a caller can keep
        one and reuse it every step (only the touched entries are written, O(S) not O(N)).

    Returns
    -------
    rows : int64 [R]       the distinct rows, ascending
    indptr : int64 [R+1]   slots of ``rows[k]`` are ``order[indptr[k]:indptr[k+1]]``
    order : int64 [S']     slot ids grouped by row, increasing within a row (S' used slots)
    """
    S = slot_rows.shape[0]
    one = np.uint64(1)
    # 1) one bit per touched row (n counts the rows); reading the words in order lists them ascending
    bits = np.zeros((mark.shape[0] + 63) >> 6, np.uint64)
    n = 0
    for s in range(S):
        r = slot_rows[s]
        if r >= 0:
            bit = one << np.uint64(r & 63)
            n += (bits[r >> 6] & bit) == 0
            bits[r >> 6] |= bit
    rows = np.empty(n, np.int64)
    k = 0
    for w in range(bits.shape[0]):
        x = bits[w]
        while x:
            r = (w << 6) + lowest_bit(x)
            rows[k] = r
            mark[r] = k  # the row's position in R
            k += 1
            x &= x - one
    # 2) counting sort of the slots by row position, stable (increasing slot order within a row)
    indptr = np.zeros(n + 1, np.int64)
    for s in range(S):
        r = slot_rows[s]
        if r >= 0:
            indptr[mark[r] + 1] += 1
    for k in range(n):
        indptr[k + 1] += indptr[k]
    fill = indptr[:-1].copy()
    order = np.empty(indptr[n], np.int64)
    for s in range(S):
        r = slot_rows[s]
        if r >= 0:
            k = mark[r]
            order[fill[k]] = s
            fill[k] += 1
    for k in range(n):
        mark[rows[k]] = -1
    return rows, indptr, order


@njit(parallel=True, cache=True)
def gather_rows(indptr, order, slot_task, slot_grads, out):
    """``out[t, k, :] = sum of slot_grads[s]`` over the slots ``s`` of row ``k`` with task ``t``.

    ``out`` is ``[T, R, d]``; it is overwritten (each row is zeroed, then summed). Parallel over
    rows; each row's slots are added in the fixed order of ``order`` (deterministic for any thread
    count). The slot gradients are read in that order, so they are prefetched a few slots ahead.
    """
    T, R, d = out.shape
    n_order = order.shape[0]
    for k in prange(R):
        for t in range(T):
            for c in range(d):
                out[t, k, c] = 0
        for p in range(indptr[k], indptr[k + 1]):
            if p + PREFETCH_AHEAD < n_order:
                prefetch_row(slot_grads, order[p + PREFETCH_AHEAD])
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
    out = np.empty((n_tasks, rows.shape[0], slot_grads.shape[1]), slot_grads.dtype)
    gather_rows(indptr, order, np.ascontiguousarray(slot_task, dtype=np.int64), slot_grads, out)
    return rows, (out[0] if single else out)
