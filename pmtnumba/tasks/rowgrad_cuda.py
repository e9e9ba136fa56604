"""CUDA twins of :func:`pmtnumba.tasks.rowgrad.index_rows` and :func:`~pmtnumba.tasks.rowgrad.gather_rows`.

Row index on the device (:func:`index_rows_cuda`), the same output as the CPU's:

1. mark the touched rows in ``flag [N]`` (every writer writes 1: no race on the value);
2. ``pos = exclusive_scan(flag)`` gives each touched row its position in R, ascending;
3. count the slots of each row with integer atomics, scan the counts into ``indptr``;
4. place each slot in its row's segment with an integer atomic cursor (arrival order), then sort
   each segment by slot id (one thread per row, insertion sort: segments are short), so the
   order is the CPU's increasing slot order whatever the scheduling.

:func:`gather_rows_cuda` then sums, one thread per ``(row, column)``, the row's slots in that order
into ``G[t, k, c]`` in G's dtype, starting from zero, exactly the additions of the CPU kernel:
no float atomics, the same bits. ``G`` keeps the ``[T, R, d]`` layout inside a ``[T, S, d]``
buffer (S, the slot count, bounds R); ``R`` stays on the device (``R_dev[0]``).
"""

from __future__ import annotations

from numba import cuda

from ..scan_cuda import THREADS, blocks, exclusive_scan


@cuda.jit
def _mark(slot_rows, flag):
    s = cuda.grid(1)
    if s < slot_rows.shape[0]:
        r = slot_rows[s]
        if r >= 0:
            flag[r] = 1


@cuda.jit
def _list_rows(flag, pos, rows):
    r = cuda.grid(1)
    if r < flag.shape[0] and flag[r] != 0:
        rows[pos[r]] = r


@cuda.jit
def _zero_int(x, n):
    i = cuda.grid(1)
    if i < n:
        x[i] = 0


@cuda.jit
def _count(slot_rows, pos, count):
    s = cuda.grid(1)
    if s < slot_rows.shape[0]:
        r = slot_rows[s]
        if r >= 0:
            cuda.atomic.add(count, pos[r], 1)


@cuda.jit
def _place(slot_rows, pos, indptr, cursor, order):
    s = cuda.grid(1)
    if s < slot_rows.shape[0]:
        r = slot_rows[s]
        if r >= 0:
            k = pos[r]
            p = cuda.atomic.add(cursor, k, 1)
            order[indptr[k] + p] = s


@cuda.jit
def _sort_segments(indptr, order, R_dev, rows, flag):
    k = cuda.grid(1)
    if k < R_dev[0]:
        lo = indptr[k]
        for p in range(lo + 1, indptr[k + 1]):
            v = order[p]
            q = p - 1
            while q >= lo and order[q] > v:
                order[q + 1] = order[q]
                q -= 1
            order[q + 1] = v
        flag[rows[k]] = 0  # leave the mark all zero for the next step


class RowIndexWorkspace:
    """Device buffers of :func:`index_rows_cuda`, made once per run (``N`` rows, ``S`` slots)."""

    def __init__(self, n_rows: int, n_slots: int):
        from ..scan_cuda import n_chunks

        self.flag = cuda.to_device(__import__("numpy").zeros(n_rows, "int64"))
        self.pos = cuda.device_array(n_rows + 1, "int64")
        self.rows = cuda.device_array(max(n_slots, 1), "int64")
        self.count = cuda.device_array(n_slots + 1, "int64")
        self.indptr = cuda.device_array(n_slots + 1, "int64")
        self.cursor = cuda.device_array(n_slots + 1, "int64")
        self.order = cuda.device_array(max(n_slots, 1), "int64")
        self.sums = cuda.device_array(n_chunks(max(n_rows, n_slots)) + 1, "int64")
        self.n_rows, self.n_slots = n_rows, n_slots

    @property
    def R_dev(self):
        """Device scalar ``R`` (the number of touched rows): ``pos[N]``."""
        return self.pos[self.n_rows:]


def index_rows_cuda(slot_rows, ws: RowIndexWorkspace) -> None:
    """Fill ``ws.rows[:R]``, ``ws.indptr[:R+1]``, ``ws.order`` and ``ws.R_dev`` from the device
    ``slot_rows [S]`` (negative rows skipped): the same arrays as the CPU's ``index_rows``."""
    N, S = ws.n_rows, ws.n_slots
    _mark[blocks(S), THREADS](slot_rows, ws.flag)
    exclusive_scan(ws.flag, N, ws.pos, ws.sums)
    _list_rows[blocks(N), THREADS](ws.flag, ws.pos, ws.rows)
    _zero_int[blocks(S + 1), THREADS](ws.count, S + 1)
    _zero_int[blocks(S + 1), THREADS](ws.cursor, S + 1)
    _count[blocks(S), THREADS](slot_rows, ws.pos, ws.count)
    exclusive_scan(ws.count, S, ws.indptr, ws.sums)
    _place[blocks(S), THREADS](slot_rows, ws.pos, ws.indptr, ws.cursor, ws.order)
    _sort_segments[blocks(S), THREADS](ws.indptr, ws.order, ws.R_dev, ws.rows, ws.flag)


@cuda.jit
def gather_rows_cuda(indptr, order, slot_task, slot_grads, R_dev, out):
    """``out[t, k, c]`` = the sum of ``slot_grads[s, c]`` over row k's slots of task t, in
    ``order``; one thread per ``(k, c)`` with ``k < R_dev[0]`` (launch ``S * d`` threads)."""
    i = cuda.grid(1)
    d = out.shape[2]
    k = i // d
    c = i - k * d
    if k < R_dev[0]:
        for t in range(out.shape[0]):
            out[t, k, c] = 0
        for p in range(indptr[k], indptr[k + 1]):
            s = order[p]
            out[slot_task[s], k, c] += slot_grads[s, c]
