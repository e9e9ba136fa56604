"""The tiled uniformity kernel of DirectAU (tasks/align_uniform.py: uniformity_rows) against its
plain NumPy reference, float64 finite differences over several tiles, and thread-count determinism."""

import numba
import numpy as np
import pytest

from pmtnumba import gradcheck as gc
from pmtnumba.tasks import align_uniform as au

from .conftest import several_threads


def _rows(m, d, seed):
    """Normalised rows with a few near-duplicates (exponent ~0) and one zero row kept at zero."""
    rng = np.random.default_rng(seed)
    E = rng.normal(size=(m, d))
    E[1] = E[0] + 1e-9
    E[min(5, m - 1)] = 0.0
    N = np.empty((m, d))
    au.normalized_rows(E, np.arange(m, dtype=np.int64), 1e-12, N)
    return N


@pytest.mark.parametrize("m", [2, 7, 129, 300])
def test_tiles_equal_reference(m):
    """Every tile shape (one block, padding, several blocks, diagonal and off-diagonal tiles)."""
    N = _rows(m, 5, m)
    rr, ar = au.uniformity_reference(N)
    rs, acc = np.empty(m), np.empty_like(N)
    au.uniformity_rows(N, np.dtype(np.float64), rs, acc)
    assert np.max(np.abs(rs - rr)) <= 1e-13 * rr.max()
    assert np.max(np.abs(acc - ar)) <= 1e-13 * rr.max()
    # float32 weights: ~1e-6 relative (Gram in float32, exp's float32 rounding times 16)
    au.uniformity_rows(N, np.dtype(np.float32), rs, acc)
    assert np.max(np.abs(rs - rr)) <= 2e-6 * rr.max()
    assert np.max(np.abs(acc - ar)) <= 2e-6 * rr.max()


def test_exp_neg_is_exp():
    y = np.linspace(-9.0, 0.0, 2001)
    k = tuple(au.exp_consts(np.float64))
    assert np.max(np.abs(au.exp_neg(y, k) / np.exp(y) - 1)) < 1e-13
    k32 = tuple(au.exp_consts(np.float32))
    y32 = y.astype(np.float32)
    # float32: p's rounding times 16 from the squarings (measured 2.7e-6 at most on this grid)
    assert np.max(np.abs(au.exp_neg(y32, k32) / np.exp(y32.astype(np.float64)) - 1)) < 4e-6


def test_compiled_exp_neg_takes_its_degree_from_the_type():
    """In a kernel, exp_neg is the degree-8 polynomial for float32 and the degree-13 one for float64
    (the same bits as the plain functions: no contraction outside fastmath kernels)."""
    from numba import njit

    @njit
    def apply(y, c):
        k = au.exp_tuple(c)
        out = np.empty_like(y)
        for i in range(y.size):
            out[i] = au.exp_neg(y[i], k)
        return out

    y = np.linspace(-9.0, 0.0, 2001)
    c64, c32 = au.exp_consts(np.float64), au.exp_consts(np.float32)
    k64, k32 = tuple(c64), tuple(c32)
    np.testing.assert_array_equal(apply(y, c64), au.exp_neg_13(y, k64))
    y32 = y.astype(np.float32)
    got = apply(y32, c32)
    np.testing.assert_array_equal(got, au.exp_neg_8(y32, k32))
    assert not np.array_equal(got, au.exp_neg_13(y32, k32))


def test_tiled_uniformity_matches_fd_over_several_blocks():
    """float64 finite differences of the plain loss over 140 rows (two blocks, both tile kinds)."""
    rng = np.random.default_rng(7)
    E = rng.normal(size=(150, 3)) * rng.uniform(0.2, 3.0, size=(150, 1))
    rows = np.arange(5, 145)
    loss, urows, grads = au.uniformity_loss_grad(E, rows)
    assert au.tile_size(rows.size)[0] == 2

    def ref(X):
        N = X[rows] / np.linalg.norm(X[rows], axis=1, keepdims=True)
        ia, ib = np.triu_indices(rows.size, 1)
        return float(np.log(np.mean(np.exp(-2 * np.sum((N[ia] - N[ib]) ** 2, axis=1)))))

    assert abs(loss - ref(E)) < 1e-12
    num = gc.finite_differences(ref, E)
    assert np.max(np.abs(gc.dense(E, urows, grads) - num)) < 1e-8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiles_same_bits_any_thread_count(dtype):
    """Tiles run in parallel, each writes its own partial sums, added per row in a fixed order."""
    N = _rows(700, 8, 1)
    out = []
    n0 = numba.get_num_threads()
    try:
        for nt in (1, several_threads()):
            numba.set_num_threads(nt)
            rs, acc = np.empty(700), np.empty_like(N)
            au.uniformity_rows(N, np.dtype(dtype), rs, acc)
            out.append((rs, acc))
    finally:
        numba.set_num_threads(n0)
    assert au.tile_size(700)[0] == 6
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])
    assert np.all(out[0][0] > 0)
