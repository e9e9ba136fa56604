"""Property checks of the task-wise baselines (docs/baselines.md) on random and adversarial inputs."""

import math
import warnings

import numba
import numpy as np
import pytest

from pmtnumba.combiners import (
    COMBINERS,
    CombinerWarning,
    StepContext,
    aligned_mtl_combine,
    cagrad_combine,
    graddrop_combine,
    gradvac_combine,
    make_combiner,
    nash_mtl_combine,
    pcgrad_combine,
    rlw_combine,
)
from pmtnumba.combiners.aligned_mtl import aligned_mtl_matrix
from pmtnumba.combiners.cagrad import cagrad_weights
from pmtnumba.combiners.gram import gram, weighted_sum
from pmtnumba.combiners.nash_mtl import nash_mtl_residual, nash_mtl_solve
from pmtnumba.combiners.rlw import rlw_weights

from .conftest import several_threads

D = 600


# this module's kernels run on one thread (tests/conftest.py); the thread-count tests set their own
pytestmark = pytest.mark.usefixtures("one_numba_thread")


def ctx(seed=0, step=1, epoch=1):
    return StepContext(epoch=epoch, step=step, rng=np.random.default_rng(seed))


def random_tasks(seed, T, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((T, D)) * 10.0 ** rng.uniform(-2, 1, size=(T, 1))).astype(dtype)


def adversarial(kind, T, seed=0):
    """conflicting: cos(g0, g1) ~ -0.95; opposite: g1 = -0.6 g0 exactly; collinear: g1 = 2 g0;
    zero: the last task's gradient is all zeros."""
    G = random_tasks(seed, T)
    if kind == "conflicting":
        G[1] = -0.6 * G[0] + 0.2 * np.linalg.norm(G[0]) / np.linalg.norm(G[1]) * G[1]
    elif kind == "opposite":
        G[1] = -0.6 * G[0]
    elif kind == "collinear":
        G[1] = 2.0 * G[0]
    elif kind == "zero":
        G[-1] = 0.0
    return G


CASES = [(kind, T) for kind in ("random", "conflicting", "opposite", "collinear", "zero") for T in (2, 3)]
# exactly opposite gradients cancel to round-off after one projection, so cosines computed from
# the remainder are noise: compare against reference implementations on the other cases only
REGULAR = [c for c in CASES if c[0] != "opposite"]


# ---------------------------------------------------------------- shared kernels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gram_and_weighted_sum(dtype):
    G = random_tasks(0, 3, dtype)
    G64 = G.astype(np.float64)
    np.testing.assert_allclose(gram(G), G64 @ G64.T, rtol=1e-12)
    w = np.array([0.3, -1.2, 2.0])
    g = weighted_sum(G, w)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, w @ G64, rtol=1e-6 if dtype == np.float32 else 1e-13)


def test_gram_bit_identical_across_thread_counts():
    G = np.random.default_rng(1).standard_normal((3, 100_003)).astype(np.float32)
    saved = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        A1, g1 = gram(G), pcgrad_combine(G, np.random.default_rng(5))
        numba.set_num_threads(several_threads())
        A2, g2 = gram(G), pcgrad_combine(G, np.random.default_rng(5))
    finally:
        numba.set_num_threads(saved)
    assert A1.tobytes() == A2.tobytes() and g1.tobytes() == g2.tobytes()


# ---------------------------------------------------------------- EW, RLW


def test_ew_is_the_sum():
    G = random_tasks(2, 3).reshape(3, 20, 30)
    np.testing.assert_allclose(make_combiner("ew")(G), G.sum(axis=0))


def test_rlw_weights_positive_sum_to_one_and_used():
    rng = np.random.default_rng(3)
    for T in (2, 3, 4):
        w = rlw_weights(rng, T)
        assert np.all(w > 0) and math.isclose(w.sum(), 1.0, rel_tol=1e-12)
    G = random_tasks(3, 3)
    w = rlw_weights(np.random.default_rng(11), 3)
    np.testing.assert_allclose(rlw_combine(G, np.random.default_rng(11)), w @ G, rtol=1e-12)


def test_rlw_per_step_and_per_epoch():
    G = random_tasks(4, 3).reshape(3, 20, 30)
    step = make_combiner("rlw")
    rng = np.random.default_rng(0)
    step(G, StepContext(epoch=1, rng=rng))
    w1 = step.last_weights
    step(G, StepContext(epoch=1, rng=rng))
    assert not np.allclose(w1, step.last_weights)  # fresh draw every step
    ep = make_combiner("rlw", per="epoch")
    rng = np.random.default_rng(0)
    ep(G, StepContext(epoch=1, rng=rng))
    wa = ep.last_weights.copy()
    ep(G, StepContext(epoch=1, rng=rng))
    np.testing.assert_array_equal(ep.last_weights, wa)  # same epoch: same weights
    state = ep.state_dict()
    ep(G, StepContext(epoch=2, rng=rng))
    assert not np.allclose(ep.last_weights, wa)  # new epoch: new draw
    resumed = make_combiner("rlw", per="epoch")
    resumed.load_state_dict(state)
    resumed(G, StepContext(epoch=1, rng=np.random.default_rng(99)))
    np.testing.assert_array_equal(resumed.last_weights, wa)
    with pytest.raises(ValueError):
        step(G, StepContext())  # no rng: refuse rather than be non-deterministic


# ---------------------------------------------------------------- GradDrop


def graddrop_reference(G, U, leak, eps=1e-7):
    P = 0.5 * (1 + G.sum(0) / (np.abs(G).sum(0) + eps))
    M = (P > U)[None] * (G > 0) + (P < U)[None] * (G < 0)
    return (G * (leak + (1 - leak) * M)).sum(0)


@pytest.mark.parametrize("leak", [0.0, 0.3])
def test_graddrop_matches_formula(leak):
    G = random_tasks(5, 3)
    g = graddrop_combine(G, np.random.default_rng(7), leak=leak)
    U = np.random.default_rng(7).random(D)
    np.testing.assert_allclose(g, graddrop_reference(G, U, leak), rtol=1e-12, atol=1e-14)


def test_graddrop_keeps_one_sign_per_coordinate():
    G = random_tasks(6, 3)
    g = graddrop_combine(G, np.random.default_rng(8))
    pos, neg = np.where(G > 0, G, 0).sum(0), np.where(G < 0, G, 0).sum(0)
    assert np.all(np.isclose(g, pos, rtol=1e-12) | np.isclose(g, neg, rtol=1e-12))
    assert np.any(np.isclose(g, pos) & (pos != 0)) and np.any(np.isclose(g, neg) & (neg != 0))


def test_graddrop_same_sign_keeps_everything():
    G = np.abs(random_tasks(7, 3)) + 0.1
    np.testing.assert_allclose(graddrop_combine(G, np.random.default_rng(1)), G.sum(0), rtol=1e-12)
    np.testing.assert_allclose(graddrop_combine(-G, np.random.default_rng(2)), -G.sum(0), rtol=1e-12)


# ---------------------------------------------------------------- PCGrad


def pcgrad_reference(G, rng, eps=1e-8):
    """LibMTL's PCGrad on vectors (j = i included, projections on the original g_j)."""
    pc = G.copy()
    for i in range(len(G)):
        for j in rng.permutation(len(G)):
            dot = pc[i] @ G[j]
            if dot < 0:
                pc[i] -= dot / (G[j] @ G[j] + eps) * G[j]
    return pc.sum(0)


@pytest.mark.parametrize("kind,T", CASES)
def test_pcgrad_matches_vector_algorithm(kind, T):
    G = adversarial(kind, T, seed=10)
    g = pcgrad_combine(G, np.random.default_rng(3))
    ref = pcgrad_reference(G, np.random.default_rng(3))
    np.testing.assert_allclose(g, ref, rtol=1e-9, atol=1e-12 * np.abs(G).max())


@pytest.mark.parametrize("seed", range(5))
def test_pcgrad_two_conflicting_gradients_non_negative_dots(seed):
    rng = np.random.default_rng(seed)
    g0 = rng.standard_normal(D)
    g1 = -0.5 * g0 + rng.standard_normal(D) * 0.3  # conflicting
    assert g0 @ g1 < 0
    G = np.stack([g0, g1])
    g = pcgrad_combine(G, np.random.default_rng(seed))
    for gi in G:
        assert g @ gi >= -1e-9 * np.linalg.norm(g) * np.linalg.norm(gi)


def test_pcgrad_no_conflict_is_the_sum():
    G = np.abs(random_tasks(12, 3))
    np.testing.assert_allclose(pcgrad_combine(G, np.random.default_rng(0)), G.sum(0), rtol=1e-12)


# ---------------------------------------------------------------- GradVac


def gradvac_reference(G, rng, rho_hat, beta=0.5, eps=1e-8):
    """GradVac on vectors, same conventions as the module (clamp, EMA on every pair)."""
    pc = G.copy()
    T = len(G)
    for i in range(T):
        for j in rng.permutation(T):
            if j == i:
                continue
            ni, nj = np.linalg.norm(pc[i]), np.linalg.norm(G[j])
            rho = np.clip(pc[i] @ G[j] / (ni * nj + eps), -1, 1)
            rh = rho_hat[i, j]
            if rho < rh:
                pc[i] += G[j] * ni * (rh * np.sqrt(1 - rho**2) - rho * np.sqrt(1 - rh**2)) / (nj * np.sqrt(1 - rh**2) + eps)
            rho_hat[i, j] = (1 - beta) * rh + beta * rho
    return pc.sum(0)


@pytest.mark.parametrize("T", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_gradvac_first_step_equals_pcgrad(T, seed):
    G = random_tasks(20 + seed, T)
    n0, n1 = np.linalg.norm(G[0]), np.linalg.norm(G[1])
    G[1] -= ((G[1] @ G[0]) / n0**2 + 0.3 * n1 / n0) * G[0]  # now g1 . g0 = -0.3 |g1| |g0|
    assert G[1] @ G[0] < 0
    gv = gradvac_combine(G, np.random.default_rng(seed), np.zeros((T, T)))
    pc = pcgrad_combine(G, np.random.default_rng(seed))
    np.testing.assert_allclose(gv, pc, rtol=1e-6, atol=1e-6 * np.abs(pc).max())
    assert not np.allclose(pc, G.sum(0), rtol=1e-6, atol=0)  # a projection did happen


@pytest.mark.parametrize("kind,T", REGULAR)
def test_gradvac_matches_vector_algorithm_over_steps(kind, T):
    c = make_combiner("gradvac")
    rho_ref = np.zeros((T, T))
    rng_c, rng_r = np.random.default_rng(4), np.random.default_rng(4)
    for step in range(4):
        G = adversarial(kind, T, seed=30 + step)
        g = c(G.reshape(T, 20, 30), StepContext(step=step + 1, rng=rng_c)).reshape(-1)
        ref = gradvac_reference(G, rng_r, rho_ref)
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, ref, rtol=1e-8, atol=1e-12 * np.abs(G).max())
        np.testing.assert_allclose(c.rho_hat, rho_ref, rtol=1e-10, atol=1e-12)
    assert np.all(np.abs(c.rho_hat) <= 1.0)
    restored = make_combiner("gradvac")
    restored.load_state_dict(c.state_dict())
    np.testing.assert_array_equal(restored.rho_hat, c.rho_hat)


# ---------------------------------------------------------------- CAGrad


def cagrad_kkt_residual(A, w, calpha=0.5):
    """Violation of the KKT conditions of min_{w in simplex} w'A1/T + c sqrt(w'Aw + 1e-8),
    relative to the gradients' squared scale trace(A) / T."""
    T = len(A)
    c = calpha * math.sqrt(A.mean() + 1e-8)
    h = A.sum(1) / T + c * (A @ w) / math.sqrt(w @ A @ w + 1e-8)  # objective gradient
    on = w > 1e-8
    mu = h[on].mean()
    viol = np.abs(h[on] - mu).max()  # equal on the support
    if (~on).any():
        viol = max(viol, max(0.0, (mu - h[~on]).max()))  # not smaller off the support
    return viol / (np.trace(A) / T)


@pytest.mark.parametrize("kind,T", REGULAR + [("random", 4)])
def test_cagrad_weights_satisfy_kkt(kind, T):
    for seed in range(5):
        A = gram(adversarial(kind, T, seed=40 + seed))
        w = cagrad_weights(A)
        assert np.all(w >= 0) and math.isclose(w.sum(), 1.0, rel_tol=1e-12)
        assert cagrad_kkt_residual(A, w) < 1e-7


@pytest.mark.parametrize("T", [2, 3])
def test_cagrad_opposite_gradients_optimum(T):
    # g1 = -0.6 g0: the optimum sits at the kink gw ~ 0 where the gradient of the objective jumps;
    # check optimality by the objective against a dense grid of the simplex instead
    A = gram(adversarial("opposite", T, seed=50))
    w = cagrad_weights(A)
    c = 0.5 * math.sqrt(A.mean() + 1e-8)

    def F(x):
        return x @ A.sum(1) / T + c * np.sqrt(np.einsum("...i,ij,...j->...", x, A, x) + 1e-8)

    u = np.linspace(0, 1, 2001)
    grid = np.stack([u, 1 - u], -1) if T == 2 else np.array([[a, b, 1 - a - b] for a in u[::20] for b in u[::20] if a + b <= 1])
    assert F(w) <= F(grid).min() + 1e-12 * abs(F(grid).min())
    assert cagrad_kkt_residual(A, w) < 1e-4


def test_cagrad_combination_formula():
    G = random_tasks(55, 3)
    A = G @ G.T
    w = cagrad_weights(A)
    c = 0.5 * math.sqrt(A.mean() + 1e-8)
    gw = w @ G
    ref = (G.mean(0) + c / (np.linalg.norm(gw) + 1e-8) * gw) / 1.25
    np.testing.assert_allclose(cagrad_combine(G), ref, rtol=1e-10)
    assert np.all(cagrad_combine(np.zeros((3, 10))) == 0)


# ---------------------------------------------------------------- Aligned-MTL


@pytest.mark.parametrize("kind,T", CASES + [("random", 4)])
def test_aligned_mtl_equal_singular_values(kind, T):
    G = adversarial(kind, T, seed=60)
    A = G @ G.T
    B = aligned_mtl_matrix(A)
    sv = np.linalg.svd(G.T @ B, compute_uv=False)
    rank = np.linalg.matrix_rank(G)
    kept = sv[:rank]
    np.testing.assert_allclose(kept, kept[0], rtol=1e-6)
    assert np.all(sv[rank:] <= 1e-6 * kept[0])
    lam = np.linalg.eigvalsh(A)
    np.testing.assert_allclose(kept[0], math.sqrt(lam[lam > lam.max() * T * 1.2e-7].min()), rtol=1e-6)
    np.testing.assert_allclose(aligned_mtl_combine(G), G.T @ B.sum(1), rtol=1e-10, atol=1e-12)


def test_aligned_mtl_all_zero():
    assert np.all(aligned_mtl_combine(np.zeros((3, 10))) == 0)


# ---------------------------------------------------------------- Nash-MTL


@pytest.mark.parametrize("kind,T", [("random", 2), ("random", 3), ("random", 4), ("collinear", 2), ("collinear", 3)])
def test_nash_mtl_fixed_point(kind, T):
    c = make_combiner("nash-mtl")
    for step in range(3):
        G = adversarial(kind, T, seed=70 + step)
        with warnings.catch_warnings():
            warnings.simplefilter("error", CombinerWarning)
            g = c(G.reshape(T, 20, 30), StepContext(step=step + 1)).reshape(-1)
        A = G @ G.T  # the unnormalised Gram matrix: the definition, not its solver's scaling
        alpha = c.alpha
        assert np.all(alpha > 0)
        np.testing.assert_allclose(A @ alpha, 1.0 / alpha, rtol=1e-6)
        assert nash_mtl_residual(A, alpha) < 1e-9
        ref = alpha @ G
        norm = np.linalg.norm(ref)
        if norm > 1.0:
            ref = ref / (norm + 1e-6)
        np.testing.assert_allclose(g, ref, rtol=1e-9)
        assert np.linalg.norm(g) <= 1.0 + 1e-9
    assert c.fallbacks == 0


@pytest.mark.parametrize("scale", [1e-6, 1e-5, 1e-4, 1e-3, 1.0])
def test_nash_mtl_bargaining_on_unnormalised_gram_at_every_scale(scale):
    """alpha solves A alpha = 1/alpha on A = G G^T itself, so ||sum alpha_t g_t||^2 = T before the
    clip and the clipped step has norm 1 whatever the gradient scale (recommendation gradients are
    1e-6..1e-3; solving on A/||A|| only would shrink the step by sqrt(||A||))."""
    T = 3
    G = np.random.default_rng(7).standard_normal((T, 64)) * scale
    G[1] += 0.5 * G[0]
    A = G @ G.T
    c = make_combiner("nash-mtl")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CombinerWarning)
        g = c(G.reshape(T, 8, 8), StepContext(step=1)).reshape(-1)
    alpha = c.alpha
    assert np.max(np.abs(alpha * (A @ alpha) - 1.0)) < 1e-8
    np.testing.assert_allclose(np.linalg.norm(alpha @ G), math.sqrt(T), rtol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(g), 1.0 / (1.0 + 1e-6 / math.sqrt(T)), rtol=1e-9)
    # the same from the pure function and with a warm start from another scale's alpha
    np.testing.assert_allclose(np.linalg.norm(nash_mtl_combine(G, np.full(T, 1e3))), np.linalg.norm(g), rtol=1e-9)


def test_nash_mtl_warm_start_converges_from_anywhere():
    An = gram(random_tasks(80, 3))
    An /= np.linalg.norm(An)
    a1, ok1 = nash_mtl_solve(An, np.ones(3))
    a2, ok2 = nash_mtl_solve(An, np.array([1e-3, 50.0, 7.0]))
    assert ok1 and ok2
    np.testing.assert_allclose(a1, a2, rtol=1e-8)


def test_nash_mtl_zero_gradient_warns_and_falls_back():
    c = make_combiner("nash-mtl")
    G = random_tasks(81, 3)
    c(G.reshape(3, 20, 30), StepContext(step=1))
    prev = c.alpha.copy()
    Gz = random_tasks(82, 3)
    Gz[2] = 0.0
    with pytest.warns(CombinerWarning, match=r"step 2: task\(s\) \[2\] have a zero gradient"):
        g = c(Gz.reshape(3, 20, 30), StepContext(step=2)).reshape(-1)
    np.testing.assert_array_equal(c.alpha, prev)
    assert c.fallbacks == 1 and c.events() == {"fallbacks": 1}  # curve.csv's combiner_fallbacks
    ref = prev @ Gz
    ref = ref / (np.linalg.norm(ref) + 1e-6) if np.linalg.norm(ref) > 1 else ref
    np.testing.assert_allclose(g, ref, rtol=1e-9)


def test_nash_mtl_opposite_gradients_warns_and_falls_back():
    G = adversarial("opposite", 2, seed=83)  # g1 = -0.6 g0: no solution
    state = np.ones(2)
    with pytest.warns(CombinerWarning, match="step 7: Newton"):
        g = nash_mtl_combine(G, state, step=7)
    np.testing.assert_array_equal(state, 1.0)
    assert np.all(np.isfinite(g))


def test_nash_mtl_state_roundtrip():
    c = make_combiner("nash-mtl")
    G = random_tasks(84, 3).reshape(3, 20, 30)
    c(G, StepContext(step=1))
    d = make_combiner("nash-mtl")
    d.load_state_dict(c.state_dict())
    np.testing.assert_array_equal(d.alpha, c.alpha)
    assert d(G, StepContext(step=2)).tobytes() == c(G, StepContext(step=2)).tobytes()


# ---------------------------------------------------------------- all methods


@pytest.mark.parametrize("name", sorted(COMBINERS))
@pytest.mark.parametrize("kind,T", CASES)
def test_every_method_finite_deterministic_and_shaped(name, kind, T):
    G = adversarial(kind, T, seed=90).astype(np.float32).reshape(T, 20, 30)
    outs = []
    for _ in range(2):
        c = make_combiner(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CombinerWarning)  # nash-mtl on infeasible inputs
            outs.append(c(G, ctx(seed=123, step=1, epoch=2)))
    assert outs[0].shape == (20, 30) and outs[0].dtype == np.float32
    assert np.all(np.isfinite(outs[0]))
    assert outs[0].tobytes() == outs[1].tobytes()


def test_pure_functions_equal_classes():
    T = 3
    G = random_tasks(95, T)
    G3 = G.reshape(T, 20, 30)

    def run(name, **kw):
        return make_combiner(name, **kw)(G3, ctx(seed=5)).reshape(-1)

    np.testing.assert_array_equal(run("rlw"), rlw_combine(G, np.random.default_rng(5)))
    np.testing.assert_array_equal(run("graddrop"), graddrop_combine(G, np.random.default_rng(5)))
    np.testing.assert_array_equal(run("pcgrad"), pcgrad_combine(G, np.random.default_rng(5)))
    np.testing.assert_array_equal(run("gradvac"), gradvac_combine(G, np.random.default_rng(5), np.zeros((T, T))))
    np.testing.assert_array_equal(run("cagrad"), cagrad_combine(G))
    np.testing.assert_array_equal(run("aligned-mtl"), aligned_mtl_combine(G))
    np.testing.assert_array_equal(run("nash-mtl"), nash_mtl_combine(G, np.ones(T)))


def test_registry_names():
    assert set(COMBINERS) == {
        "ew", "rlw", "graddrop", "pcgrad", "gradvac", "cagrad", "aligned-mtl", "nash-mtl",
        "pmtrec", "pmtrec-nofocus", "pmtrec-nobalance",
    }
    for name, cls in COMBINERS.items():
        assert cls.name == name
    with pytest.raises(ValueError, match="unknown method"):
        make_combiner("mgda")


@pytest.mark.parametrize("name, event", [("pcgrad", "projected"), ("gradvac", "adjusted")])
def test_projection_events_count_the_steps_that_changed_a_gradient(name, event):
    """PCGrad's ``projected`` and GradVac's ``adjusted`` (curve.csv's ``combiner_<event>``) count
    the steps whose combination differs from EW's: none while the tasks agree, one per step with a
    conflict; so a run whose count stays 0 trained exactly as EW."""
    c = make_combiner(name)
    base = np.random.default_rng(5).standard_normal(D)
    agree = np.stack([base + 0.1 * np.random.default_rng(s).standard_normal(D) for s in (1, 2, 3)])
    assert (gram(agree)[np.triu_indices(3, 1)] > 0).all()
    g = c(agree.reshape(3, 20, 30), ctx(step=1)).reshape(-1)
    assert c.events() == {event: 0}
    np.testing.assert_allclose(g, agree.sum(0), rtol=1e-12)
    conflict = agree.copy()
    conflict[2] = -base
    c(conflict.reshape(3, 20, 30), ctx(step=2))
    assert c.events() == {event: 1}
