"""BPR / triplet loss: analytic gradient vs float64 central finite differences."""

import numpy as np

from pmtnumba.tasks.triplet import triplet_loss_grad


def dense_grad(E, rows, grads):
    out = np.zeros_like(E)
    out[rows] = grads
    return out


def fd_grad(f, E, h=1e-6):
    g = np.zeros_like(E)
    for idx in np.ndindex(*E.shape):
        Ep = E.copy()
        Ep[idx] += h
        Em = E.copy()
        Em[idx] -= h
        g[idx] = (f(Ep) - f(Em)) / (2 * h)
    return g


def test_triplet_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(9, 5))
    # rows repeat across triplets and inside one triplet (a == c), as sampling can produce
    a = np.array([0, 0, 1, 2, 3, 3])
    b = np.array([5, 6, 5, 7, 8, 8])
    c = np.array([6, 7, 0, 7, 3, 4])
    loss, rows, grads = triplet_loss_grad(E, a, b, c)
    ref_loss = np.mean(np.log1p(np.exp(-np.einsum("nd,nd->n", E[a], E[b] - E[c]))))
    assert abs(loss - ref_loss) < 1e-12
    g = dense_grad(E, rows, grads)
    num = fd_grad(lambda X: triplet_loss_grad(X, a, b, c)[0], E)
    assert np.max(np.abs(g - num)) < 1e-8
    assert np.array_equal(rows, np.unique(np.concatenate([a, b, c])))


def test_wrong_gradient_would_be_caught():
    """The check above is not vacuous: a gradient off by a factor 2 on one row fails it."""
    rng = np.random.default_rng(2)
    E = rng.normal(size=(6, 3))
    a, b, c = np.array([0, 1]), np.array([2, 3]), np.array([4, 5])
    _, rows, grads = triplet_loss_grad(E, a, b, c)
    bad = grads.copy()
    bad[0] *= 2
    num = fd_grad(lambda X: triplet_loss_grad(X, a, b, c)[0], E)
    assert np.max(np.abs(dense_grad(E, rows, bad) - num)) > 1e-4


def test_extreme_scores_are_finite():
    E = np.zeros((3, 2))
    E[0] = [100.0, 0]
    E[1] = [100.0, 0]
    E[2] = [-100.0, 0]
    for a, b, c in (([0], [1], [2]), ([0], [2], [1])):
        loss, rows, grads = triplet_loss_grad(E, np.array(a), np.array(b), np.array(c))
        assert np.isfinite(loss) and np.isfinite(grads).all()
