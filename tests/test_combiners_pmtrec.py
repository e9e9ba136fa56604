"""PMTRec's Numba kernel against a plain NumPy transcription of Algorithm 1, plus limits and numerics."""

import numba
import numpy as np
import pytest

from pmtnumba.combiners import COMBINERS, StepContext, make_combiner
from pmtnumba.combiners.pmtrec import PMTRec, focus_factor, pmtrec_combine, pmtrec_reference

from .conftest import several_threads


# this module's kernels run on one thread (tests/conftest.py); the thread-count tests set their own
pytestmark = pytest.mark.usefixtures("one_numba_thread")


def random_G(rng, T=3, R=257, d=32, dtype=np.float64, scale=1.0):
    # per-task, per-row magnitudes spread over two decades, as real row gradients are
    mag = 10.0 ** rng.uniform(-1, 1, size=(T, R, 1))
    return (rng.standard_normal((T, R, d)) * mag * scale).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha,tau,epoch", [(1.0, 1.0, 1), (1.1, 0.5, 7), (1.2, 10.0, 30), (1.04, 2.0, 0)])
def test_kernel_matches_algorithm1(dtype, alpha, tau, epoch):
    rng = np.random.default_rng(0)
    G = random_G(rng, dtype=dtype)
    W = np.empty((G.shape[1], G.shape[0]))
    g = pmtrec_combine(G, alpha, tau, epoch, out_weights=W)
    ref, Wref = pmtrec_reference(G, alpha, tau, epoch)
    assert g.dtype == dtype and g.shape == G.shape[1:]
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(W, Wref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g, ref, rtol=rtol, atol=rtol * np.abs(ref).max())


def test_small_scale_gradients_small_tau():
    # the regime the engine runs in: row norms ~1e-5, tau ~1e-4
    rng = np.random.default_rng(1)
    G = random_G(rng, T=4, R=64, scale=1e-6, dtype=np.float32)
    W = np.empty((64, 4))
    g = pmtrec_combine(G, 1.1, 1e-4, 12, out_weights=W)
    ref, Wref = pmtrec_reference(G, 1.1, 1e-4, 12)
    np.testing.assert_allclose(W, Wref, rtol=1e-10)
    np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_huge_tau_gives_equal_weights():
    rng = np.random.default_rng(2)
    G = random_G(rng, T=3, R=50)
    W = np.empty((50, 3))
    g = pmtrec_combine(G, 1.0, 1e12, 1, out_weights=W)
    np.testing.assert_allclose(W, 1.0 / 3.0, rtol=1e-9)
    np.testing.assert_allclose(g, G.mean(axis=0), rtol=1e-8, atol=1e-12)


def test_huge_focus_gives_main_task_all_weight():
    rng = np.random.default_rng(3)
    G = random_G(rng, T=3, R=50)
    W = np.empty((50, 3))
    g = pmtrec_combine(G, 1.2, 1.0, 300, out_weights=W)  # 1.2**300 ~ 6e23
    np.testing.assert_array_equal(W[:, 0], 1.0)
    np.testing.assert_array_equal(W[:, 1:], 0.0)
    np.testing.assert_array_equal(g, G[0])


def test_overflowing_focus_is_inf_and_handled():
    assert focus_factor(1.2, 10**6) == np.inf
    rng = np.random.default_rng(4)
    G = random_G(rng, T=3, R=20)
    G[0, 5] = 0.0  # main task absent on row 5: n0 stays 0, not 0 * inf = nan
    W = np.empty((20, 3))
    g = pmtrec_combine(G, 1.2, 1.0, 10**6, out_weights=W)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(W))
    rows = np.arange(20) != 5
    np.testing.assert_array_equal(W[rows, 0], 1.0)
    np.testing.assert_array_equal(g[rows], G[0, rows])
    ref5, W5 = pmtrec_reference(G[:, 5:6], 1.2, 1.0, 0)  # focus irrelevant when n0 = 0
    np.testing.assert_allclose(W[5], W5[0], rtol=1e-12)
    np.testing.assert_allclose(g[5], ref5[0], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_with_tiny_tau_and_large_epoch(dtype):
    rng = np.random.default_rng(5)
    G = random_G(rng, T=3, R=100, dtype=dtype)
    G[1, :10] = 0.0
    for alpha in (1.0, 1.02, 1.2):
        W = np.empty((100, 3))
        g = pmtrec_combine(G, alpha, 1e-6, 1000, out_weights=W)
        assert np.all(np.isfinite(g)) and np.all(np.isfinite(W))
        np.testing.assert_allclose(W.sum(axis=1), 1.0, rtol=1e-12)
        # tau -> 0: one-hot on the largest focused norm
        n = np.linalg.norm(G.astype(np.float64), axis=-1)
        n[0] *= alpha**1000.0 if alpha > 1 else 1.0
        np.testing.assert_array_equal(W.argmax(axis=1), n.argmax(axis=0))
        np.testing.assert_allclose(W.max(axis=1), 1.0)


def test_row_touched_by_one_task_only():
    rng = np.random.default_rng(6)
    T, R, d = 3, 4, 8
    G = np.zeros((T, R, d))
    G[0, 0] = rng.standard_normal(d)  # row 0: main task only
    G[2, 1] = rng.standard_normal(d)  # row 1: auxiliary task 2 only
    G[:, 2] = rng.standard_normal((T, d))  # row 2: all tasks
    # row 3: no task at all
    alpha, tau, s = 1.1, 0.7, 3
    W = np.empty((R, T))
    g = pmtrec_combine(G, alpha, tau, s, out_weights=W)
    ref, Wref = pmtrec_reference(G, alpha, tau, s)
    np.testing.assert_allclose(W, Wref, rtol=1e-12)
    np.testing.assert_allclose(g, ref, rtol=1e-12)
    # default: absent tasks take part with n = 0, so the present task is diluted
    n0 = np.linalg.norm(G[0, 0]) * alpha**s / tau
    np.testing.assert_allclose(W[0, 0], np.exp(n0) / (np.exp(n0) + 2.0), rtol=1e-12)
    assert W[0, 0] < 1.0
    # drop_absent: the present task alone gets weight 1 on rows 0 and 1
    Wd = np.empty((R, T))
    gd = pmtrec_combine(G, alpha, tau, s, drop_absent=True, out_weights=Wd)
    np.testing.assert_array_equal(Wd[0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(Wd[1], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(gd[0], G[0, 0])
    np.testing.assert_array_equal(gd[1], G[2, 1])
    np.testing.assert_allclose(Wd[2], W[2], rtol=1e-12)  # everyone present: unchanged
    np.testing.assert_allclose(Wd[3], 1.0 / T)  # nobody present: uniform, output zero
    np.testing.assert_array_equal(gd[3], 0.0)


def test_variants():
    rng = np.random.default_rng(7)
    G = random_G(rng, T=3, R=40)
    ctx = StepContext(epoch=9)
    full = make_combiner("pmtrec", alpha=1.2, tau=0.5)
    nofocus = make_combiner("pmtrec-nofocus", tau=0.5)
    nobalance = make_combiner("pmtrec-nobalance", alpha=1.2)
    assert (nofocus.alpha, nofocus.tau) == (1.0, 0.5)
    assert (nobalance.alpha, nobalance.tau) == (1.2, 1.0)
    assert nobalance.config() == {"variant": "pmtrec-nobalance", "alpha": 1.2, "tau": 1.0, "drop_absent": False}
    # a value the ablation would override is an error, never silently replaced; its own value is fine
    with pytest.raises(ValueError, match=r"pmtrec-nobalance: tau is fixed at 1 by this ablation, got tau=1e-06"):
        make_combiner("pmtrec-nobalance", alpha=1.2, tau=1e-6)
    with pytest.raises(ValueError, match=r"pmtrec-nofocus: alpha is fixed at 1 by this ablation, got alpha=1.2"):
        make_combiner("pmtrec-nofocus", alpha=1.2)
    assert make_combiner("pmtrec-nobalance", tau=1.0).tau == 1.0
    assert (make_combiner("pmtrec").alpha, make_combiner("pmtrec").tau) == (1.1, 1e-4)
    np.testing.assert_allclose(full(G, ctx), pmtrec_reference(G, 1.2, 0.5, 9)[0], rtol=1e-12)
    np.testing.assert_allclose(nofocus(G, ctx), pmtrec_reference(G, 1.0, 0.5, 9)[0], rtol=1e-12)
    np.testing.assert_allclose(nobalance(G, ctx), pmtrec_reference(G, 1.2, 1.0, 9)[0], rtol=1e-12)
    assert nofocus.config()["variant"] == "pmtrec-nofocus"
    assert PMTRec(variant="pmtrec-nobalance").tau == 1.0
    with pytest.raises(ValueError):
        PMTRec(variant="nope")
    with pytest.raises(ValueError):
        PMTRec(tau=0.0)
    for name in ("pmtrec", "pmtrec-nofocus", "pmtrec-nobalance"):
        assert COMBINERS[name].name == name


def test_record_weights_and_out_argument():
    rng = np.random.default_rng(8)
    G = random_G(rng, T=2, R=30, dtype=np.float32)
    c = PMTRec(alpha=1.1, tau=0.3, record_weights=True)
    g = c(G, StepContext(epoch=4))
    _, Wref = pmtrec_reference(G, 1.1, 0.3, 4)
    np.testing.assert_allclose(c.last_weights, Wref, rtol=1e-12)
    out = np.empty((30, 32), dtype=np.float32)
    g2 = pmtrec_combine(G, 1.1, 0.3, 4, out=out)
    assert g2 is out
    np.testing.assert_array_equal(g2, g)
    with pytest.raises(ValueError):
        pmtrec_combine(G, 1.1, 0.3, 4, out_weights=np.empty((30, 2), dtype=np.float32))


def test_bit_identical_across_thread_counts():
    rng = np.random.default_rng(9)
    G = random_G(rng, T=3, R=5000, dtype=np.float32)
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        W1 = np.empty((5000, 3))
        g1 = pmtrec_combine(G, 1.1, 1e-1, 5, out_weights=W1)
        numba.set_num_threads(several_threads())
        W2 = np.empty((5000, 3))
        g2 = pmtrec_combine(G, 1.1, 1e-1, 5, out_weights=W2)
    finally:
        numba.set_num_threads(saved)
    assert g1.tobytes() == g2.tobytes()
    assert W1.tobytes() == W2.tobytes()


def test_extreme_magnitudes_float64():
    # sums of squares that would under/overflow in float64 are rescaled
    G = np.zeros((2, 2, 4))
    G[0, 0] = 1e-200
    G[1, 0] = 2e-200
    G[0, 1] = 1e200
    G[1, 1] = 3e200
    W = np.empty((2, 2))
    g = pmtrec_combine(G, 1.0, 1.0, 1, out_weights=W)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(W))
    np.testing.assert_allclose(W[0], 0.5, rtol=1e-12)  # both norms ~0: equal weights
    np.testing.assert_array_equal(W[1], [0.0, 1.0])  # 6e200 vs 2e200: one-hot on the larger
    np.testing.assert_allclose(g[1], G[1, 1], rtol=1e-15)


def test_nan_propagates_to_its_row_only():
    # a NaN gradient must surface (the training loop detects divergence), not be absorbed
    G = np.ones((3, 3, 4), dtype=np.float32)
    G[1, 1, 2] = np.nan
    for drop in (False, True):
        g = pmtrec_combine(G, 1.1, 0.5, 2, drop_absent=drop)
        assert np.all(np.isnan(g[1]))
        assert np.all(np.isfinite(g[[0, 2]]))


def test_vectorised_exp_within_one_ulp_of_libm():
    # the softmax's exp (pmtnumba.combiners.pmtrec.exp_nonpositive) is a polynomial, not libm's:
    # within 1 ulp of np.exp everywhere it is used (x <= 0), subnormal results and 0 included
    from numba import njit

    from pmtnumba.combiners.pmtrec import exp_nonpositive

    @njit
    def run(x):
        out = np.empty_like(x)
        exp_nonpositive(x, out, np.empty(x.size, np.int64), np.empty(x.size, np.int64))
        return out

    rng = np.random.default_rng(0)
    edges = [0.0, -0.0, -np.inf, -1e-300, -0.5 * np.log(2), -708.4, -709.8, -745.1, -745.2, -746.0, -1100.0, -1e5]
    x = np.concatenate([-rng.exponential(5.0, 200_000), -rng.uniform(0.0, 760.0, 200_000), edges])
    got, ref = run(x), np.exp(x)
    ulp = np.abs(got - ref) / np.spacing(np.where(ref == 0.0, 5e-324, ref))
    assert ulp.max() <= 1.0, (ulp.max(), x[ulp.argmax()])
    assert got[x.size - len(edges)] == 1.0 and got[-1] == 0.0 and got[-10] == 0.0  # exp(0), exp(-1e5), exp(-inf)
    assert np.array_equal(got[-6:-4] > 0, [True, True])  # subnormal results are kept, not flushed
    # a perturbed polynomial is caught: shifting the result by 2 ulp fails the bound
    assert (np.abs(np.nextafter(np.nextafter(got, 2), 2) - ref) / np.spacing(np.where(ref == 0.0, 5e-324, ref)))[:1000].max() > 1.0
