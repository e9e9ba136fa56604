"""Row accumulation: correct sums, fixed order, same bits with 1 and N threads."""

import numba
import numpy as np

from pmtnumba.tasks.rowgrad import index_rows, reduce_slots

from .conftest import several_threads


def test_reduce_matches_numpy_add_at():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 50, size=400)
    grads = rng.normal(size=(400, 4))
    task = rng.integers(0, 3, size=400)
    urows, G = reduce_slots(rows, grads, n_rows=50, slot_task=task, n_tasks=3)
    assert np.array_equal(urows, np.unique(rows))
    ref = np.zeros((3, 50, 4))
    np.add.at(ref, (task, rows), grads)
    np.testing.assert_allclose(G, ref[:, urows], rtol=1e-13, atol=1e-13)


def test_index_rows_order_and_mark_restored():
    mark = np.full(10, -1, np.int64)
    rows, indptr, order = index_rows(np.array([7, 2, 7, 2, 9], np.int64), mark)
    assert rows.tolist() == [2, 7, 9]
    assert indptr.tolist() == [0, 2, 4, 5]
    assert order.tolist() == [1, 3, 0, 2, 4]  # slots of each row in increasing order
    assert (mark == -1).all()


def test_same_bits_with_one_and_two_threads():
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 1000, size=200_000)
    grads = rng.normal(size=(200_000, 8)).astype(np.float32)
    task = rng.integers(0, 3, size=200_000)
    n0 = numba.get_num_threads()
    try:
        outs = []
        for nt in (1, several_threads()):
            numba.set_num_threads(nt)
            outs.append(reduce_slots(rows, grads, n_rows=1000, slot_task=task, n_tasks=3)[1])
    finally:
        numba.set_num_threads(n0)
    assert np.array_equal(outs[0], outs[1])
