"""Adam against a hand-computed step, and sparse vs dense semantics."""

import math

import numpy as np
import pytest

from pmtnumba.optim import Adam


def test_first_step_by_hand():
    # One parameter row [1.0, -2.0], gradient [0.5, 0.0], lr 0.1, wd 0.01, betas (0.9, 0.999).
    # g' = g + wd*e = [0.5 + 0.01, 0 - 0.02] = [0.51, -0.02]
    # m = 0.1 g' = [0.051, -0.002]; v = 0.001 g'^2 = [2.601e-4, 4e-7]
    # bias corrections at t=1: 1-0.9 = 0.1 and sqrt(1-0.999) = sqrt(0.001)
    # step = lr/0.1 * m / (sqrt(v)/sqrt(0.001) + eps) = 1.0 * m / (|g'| + eps) = sign(g') * ~1 * lr
    E = np.array([[1.0, -2.0]], np.float64)
    opt = Adam(E, lr=0.1, weight_decay=0.01)
    opt.step(np.array([0]), np.array([[0.5, 0.0]]))
    gp = np.array([0.51, -0.02])
    m = 0.1 * gp
    v = 0.001 * gp**2
    expected = np.array([1.0, -2.0]) - (0.1 / 0.1) * m / (np.sqrt(v) / math.sqrt(0.001) + 1e-8)
    np.testing.assert_allclose(E[0], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(E[0], [0.9, -1.9], atol=1e-6)


def test_two_steps_match_reference_formula():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(4, 3))
    E0 = E.copy()
    opt = Adam(E, lr=0.01, weight_decay=1e-3, betas=(0.8, 0.99), eps=1e-6)
    g1, g2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    rows = np.arange(4)
    opt.step(rows, g1)
    opt.step(rows, g2)
    # reference: torch.optim.Adam's update written out
    p, m, v = E0.copy(), np.zeros_like(E0), np.zeros_like(E0)
    for t, g in ((1, g1), (2, g2)):
        g = g + 1e-3 * p
        m = 0.8 * m + 0.2 * g
        v = 0.99 * v + 0.01 * g * g
        p = p - (0.01 / (1 - 0.8**t)) * m / (np.sqrt(v) / math.sqrt(1 - 0.99**t) + 1e-6)
    np.testing.assert_allclose(E, p, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["sparse", "dense"])
def test_float32_table_updates_in_float32_arithmetic(mode):
    # a float32 table is updated with float32 arithmetic (as torch.optim.Adam does on float32
    # parameters), bias corrections in float64: bit for bit the NumPy float32 formula below
    rng = np.random.default_rng(3)
    E = rng.normal(size=(6, 16)).astype(np.float32)
    E0 = E.copy()
    opt = Adam(E, lr=0.01, weight_decay=1e-3, mode=mode)
    rows = np.array([1, 4])
    grads = [rng.normal(size=(2, 16)).astype(np.float32) for _ in range(3)]
    for g in grads:
        opt.step(rows, g)
    f = np.float32
    p, m, v = E0.copy(), np.zeros_like(E0), np.zeros_like(E0)
    for t, g in enumerate(grads, start=1):
        full = np.zeros_like(E0)
        full[rows] = g
        upd = rows if mode == "sparse" else np.arange(6)
        gc = f(1e-3) * p[upd] + full[upd]
        m[upd] = f(0.9) * m[upd] + f(1.0 - 0.9) * gc
        v[upd] = f(0.999) * v[upd] + f(1.0 - 0.999) * gc * gc
        lr_t, bc2 = f(0.01 / (1 - 0.9**t)), f(math.sqrt(1 - 0.999**t))
        p[upd] = p[upd] - lr_t * m[upd] / (np.sqrt(v[upd]) / bc2 + f(1e-8))
    assert E.dtype == np.float32
    np.testing.assert_array_equal(E, p)
    np.testing.assert_array_equal(opt.M, m)
    np.testing.assert_array_equal(opt.V, v)


def test_sparse_leaves_untouched_rows_dense_decays_them():
    E = np.ones((3, 2))
    sparse = Adam(E, lr=0.1, weight_decay=0.1)
    sparse.step(np.array([1]), np.array([[1.0, 1.0]]))
    assert np.array_equal(E[0], [1.0, 1.0]) and np.array_equal(E[2], [1.0, 1.0])
    assert np.all(E[1] < 1.0)
    D = np.ones((3, 2))
    dense = Adam(D, lr=0.1, weight_decay=0.1, mode="dense")
    dense.step(np.array([1]), np.array([[1.0, 1.0]]))
    np.testing.assert_allclose(D[1], E[1])  # the touched row sees the same update
    assert np.all(D[0] < 1.0)  # untouched rows still feel the weight decay


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        Adam(np.zeros((2, 2)), mode="lazy")
    with pytest.raises(ValueError, match="learning rate"):
        Adam(np.zeros((2, 2)), lr=0)
