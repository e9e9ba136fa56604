"""Every task kernel against float64 finite differences, plus the samplers' properties and
thread-count determinism of the link and DirectAU kernels."""

import numba
import numpy as np
import pytest
from click.testing import CliRunner

from cli.gradcheck_cmd import gradcheck as gradcheck_cmd
from pmtnumba import gradcheck as gc
from pmtnumba.data.dataset import Dataset
from pmtnumba.data.link_samplers import draw_unlinked, sample_link_anchored, symmetric_link_csr
from pmtnumba.data.samplers import nth_absent, sample_unlinked
from pmtnumba.data.split import make_split
from pmtnumba.errors import PmtError
from pmtnumba.rng import make_key
from pmtnumba.tasks import Batch, TaskContext, build_tasks
from pmtnumba.tasks import align_uniform as au
from pmtnumba.tasks.rating import rating_loss_grad
from pmtnumba.tasks.triplet import triplet_loss_grad
from pmtnumba.training.step import StepWorkspace, multitask_gradients

from .conftest import several_threads, synthetic_dataset

ALL = list(gc.ALL_TASKS)


# ---------------------------------------------------------------------------------------------
# finite differences


@pytest.mark.parametrize("task", ALL)
def test_gradcheck_every_task(task):
    """Pure function and Task.compute (both sampling modes for link tasks) agree with FD."""
    res = gc.run_gradcheck(task, dim=6, seed=3)
    checks = {r["check"] for r in res}
    assert "pure" in checks and len(res) >= 2
    for r in res:
        assert r["status"] == "pass", r
        assert r["max_rel_err"] < 1e-7, r


def test_triplet_with_self_negative_and_repeats():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(5, 4))
    a, b, c = np.array([0, 0, 2, 1]), np.array([1, 2, 0, 1]), np.array([2, 0, 1, 0])
    loss, rows, grads = triplet_loss_grad(E, a, b, c)
    num = gc.finite_differences(lambda X: gc.ref_triplet_loss(X, a, b, c), E)
    assert np.max(np.abs(gc.dense(E, rows, grads) - num)) < 1e-8


def test_alignment_and_uniformity_parts_match_fd():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(8, 5)) * rng.uniform(0.1, 4.0, size=(8, 1))
    users, items = np.array([0, 1, 1, 2]), np.array([4, 5, 7, 4])
    loss, rows, grads = au.alignment_loss_grad(E, users, items)
    ref = lambda X: au_ref_align(X, users, items)  # noqa: E731
    assert abs(loss - ref(E)) < 1e-12
    assert np.max(np.abs(gc.dense(E, rows, grads) - gc.finite_differences(ref, E))) < 1e-8
    sel = np.array([6, 0, 3, 6, 2])  # duplicates are made unique
    loss, rows, grads = au.uniformity_loss_grad(E, sel)
    assert np.array_equal(rows, [0, 2, 3, 6])
    assert abs(loss - au_ref_unif(E, sel)) < 1e-12
    num = gc.finite_differences(lambda X: au_ref_unif(X, sel), E)
    assert np.max(np.abs(gc.dense(E, rows, grads) - num)) < 1e-8


def au_ref_align(X, users, items):
    n = lambda R: X[R] / np.linalg.norm(X[R], axis=1, keepdims=True)  # noqa: E731
    return float(np.mean(np.sum((n(users) - n(items)) ** 2, axis=1)))


def au_ref_unif(X, rows):
    rows = np.unique(rows)
    N = X[rows] / np.linalg.norm(X[rows], axis=1, keepdims=True)
    D = np.sum((N[:, None] - N[None]) ** 2, axis=-1)
    ia, ib = np.triu_indices(rows.size, 1)
    return float(np.log(np.mean(np.exp(-2 * D[ia, ib]))))


def test_directau_single_user_has_no_user_uniformity_and_gamma_scales():
    rng = np.random.default_rng(2)
    E = rng.normal(size=(7, 4)) * 3.0
    users, items = np.array([0, 0, 0]), np.array([2, 3, 5])
    for gamma in (0.0, 1.0, 2.5):
        loss, rows, grads = au.align_uniform_loss_grad(E, users, items, gamma=gamma)
        ref = lambda X: au_ref_align(X, users, items) + gamma * au_ref_unif(X, items) / 2  # noqa: E731
        assert abs(loss - ref(E)) < 1e-12
        assert np.max(np.abs(gc.dense(E, rows, grads) - gc.finite_differences(ref, E))) < 1e-8


def test_directau_zero_row_is_finite():
    E = np.random.default_rng(3).normal(size=(5, 3))
    E[0] = 0.0
    loss, rows, grads = au.align_uniform_loss_grad(E, np.array([0, 1]), np.array([3, 4]))
    assert np.isfinite(loss) and np.isfinite(grads).all()


def test_rating_matches_fd_and_reference():
    rng = np.random.default_rng(4)
    E = rng.normal(size=(6, 3))
    u, i, r = np.array([0, 0, 1]), np.array([3, 4, 3]), np.array([5.0, 1.0, 3.0])
    loss, rows, grads = rating_loss_grad(E, u, i, r)
    ref = lambda X: gc.ref_rating_loss(X, u, i, r)  # noqa: E731
    assert abs(loss - ref(E)) < 1e-12
    assert np.max(np.abs(gc.dense(E, rows, grads) - gc.finite_differences(ref, E))) < 1e-7


# ---------------------------------------------------------------------------------------------
# the check itself catches wrong gradients


@pytest.mark.parametrize("module,fname,task", [
    (au, "align_uniform_loss_grad", "align_uniform"),
    ("triplet", "triplet_loss_grad", "social"),
    ("rating", "rating_loss_grad", "rating"),
])
def test_wrong_gradient_fails_gradcheck(monkeypatch, module, fname, task):
    mod = {"triplet": gc._triplet, "rating": gc._rating}.get(module, module)
    real = getattr(mod, fname)

    def wrong(*args, **kwargs):
        loss, rows, grads = real(*args, **kwargs)
        return loss, rows, grads * 1.01

    monkeypatch.setattr(mod, fname, wrong)
    res = gc.run_gradcheck(task, dim=4)
    pure = [r for r in res if r["check"] == "pure"][0]
    assert pure["status"] == "fail" and pure["max_rel_err"] > 1e-3


def test_cli_exit_status():
    runner = CliRunner()
    ok = runner.invoke(gradcheck_cmd, ["--task", "rating", "--dim", "3"])
    assert ok.exit_code == 0, ok.output
    assert "rating" in ok.output and "pass" in ok.output
    bad = runner.invoke(gradcheck_cmd, ["--task", "rating", "--dim", "3", "--tol", "1e-15"])
    assert bad.exit_code == 1


# ---------------------------------------------------------------------------------------------
# sampling properties


def _ctx(ds, mode="anchored"):
    sp = make_split(ds, 0)
    return TaskContext(ds.n_users, ds.n_items, sp.train_users, sp.train_items, sp.train[0], sp.train[1],
                       sp.train_ratings, ds, aux_sampling=mode), sp


def _linkset(pairs):
    s = set()
    for a, b in np.asarray(pairs):
        if a != b:
            s.add((int(a), int(b)))
            s.add((int(b), int(a)))
    return s


@pytest.fixture(scope="module")
def sampling_data():
    ds = synthetic_dataset(n_users=60, n_items=40, per_user=8, seed=7)
    # make some anchors skipped: an item with unknown category, an item alone in its category
    cat = ds.item_category.copy()
    cat[0] = -1
    cat[1] = 9
    ds = Dataset(**{**ds.__dict__, "item_category": cat})
    return ds


@pytest.mark.parametrize("task,relation,side", [
    ("social", "social", "user"), ("coview", "also_viewed", "item"), ("cobuy", "also_bought", "item")])
def test_anchored_link_sampling_properties(sampling_data, task, relation, side):
    ds = sampling_data
    ctx, sp = _ctx(ds)
    t = build_tasks(["bpr", task], ctx)[1]
    links = _linkset(getattr(ds, relation))
    off = 0 if side == "user" else ds.n_users
    batch = Batch(sp.train_users[:200], sp.train_items[:200])
    a, b, c = t.triplets(batch, make_key(1, 1, 1, t.stream))
    anchors = batch.users if side == "user" else batch.items
    has_link = np.array([any((int(x), y) in links for y in range(ds.n_users if side == "user" else ds.n_items))
                         for x in anchors])
    # skipped anchors form no triplet; the others keep their batch order
    assert np.array_equal(a - off, anchors[has_link])
    assert has_link.sum() < has_link.size  # the data do have anchors without links
    for x, y, z in zip(a - off, b - off, c - off):
        assert (x, y) in links
        assert (x, z) not in links and z != x
    # compute writes 3 slots per formed triplet only
    S = t.max_slots(batch.size)
    out = t.compute(np.ones((ds.n_users + ds.n_items, 4), np.float32), batch, make_key(1, 1, 1, t.stream),
                    np.empty(S, np.int64), np.empty((S, 4), np.float32))
    assert out.n_slots == 3 * int(has_link.sum()) and out.n_pairs == int(has_link.sum())


def test_anchored_category_sampling_properties(sampling_data):
    ds = sampling_data
    ctx, sp = _ctx(ds)
    t = build_tasks(["bpr", "category"], ctx)[1]
    cat = ds.item_category
    U = ds.n_users
    batch = Batch(sp.train_users[:300], sp.train_items[:300])
    a, b, c = t.triplets(batch, make_key(2, 1, 1, t.stream))
    counts = np.bincount(cat[cat >= 0])
    ok = np.array([cat[i] >= 0 and counts[cat[i]] >= 2 for i in batch.items])
    assert np.array_equal(a - U, batch.items[ok])
    assert (~ok).any()
    assert np.all(cat[b - U] == cat[a - U]) and np.all(b != a)
    assert np.all(cat[c - U] >= 0) and np.all(cat[c - U] != cat[a - U])
    # a batch of skipped items only (unknown category, singleton category) writes no slot
    skip = Batch(np.array([0, 1, 2]), np.array([0, 1, 0]))
    S = t.max_slots(3)
    out = t.compute(np.ones((U + ds.n_items, 4)), skip, make_key(2, 1, 1, t.stream), np.empty(S, np.int64),
                    np.empty((S, 4)))
    assert out.n_slots == 0 and out.n_pairs == 0 and out.loss == 0.0


@pytest.mark.parametrize("task", ["social", "category", "coview", "cobuy"])
def test_independent_sampling_draws_links(sampling_data, task):
    ds = sampling_data
    ctx, sp = _ctx(ds, "independent")
    t = build_tasks(["bpr", task], ctx)[1]
    batch = Batch(sp.train_users[:400], sp.train_items[:400])
    a, b, c = t.triplets(batch, make_key(3, 1, 1, t.stream))
    assert a.size == batch.size  # every sample formed (no anchor is linked to everything here)
    off = 0 if task == "social" else ds.n_users
    if task == "category":
        cat = ds.item_category
        assert np.all(cat[a - off] == cat[b - off]) and np.all(a != b)
        assert np.all(cat[c - off] >= 0) and np.all(cat[c - off] != cat[a - off])
        pairs = {(int(x), int(y)) for x, y in zip(a, b)}
    else:
        links = _linkset(getattr(ds, {"social": "social", "coview": "also_viewed", "cobuy": "also_bought"}[task]))
        for x, y, z in zip(a - off, b - off, c - off):
            assert (x, y) in links and (x, z) not in links and z != x
        pairs = {(int(x), int(y)) for x, y in zip(a, b)}
        # anchors come from the links, not from the batch: both orientations are drawn
        assert {(y, x) for x, y in pairs} & pairs
    assert len(pairs) > 20


def test_gradcheck_edge_cases_are_run_and_can_fail(monkeypatch):
    """The guard inputs are checked (scores +-50 / +-1000, DirectAU rows at 0, eps/2, eps, 2 eps,
    one distinct user), and they catch what they are for: a naive log(1 + exp(-x)) and a
    DirectAU without its normalisation guard (eps -> 1e-300) fail."""
    res = gc.run_gradcheck(["bpr", "align_uniform"], dim=4, seed=1)
    checks = {(r["task"], r["check"]) for r in res}
    assert {("bpr", "score +50"), ("bpr", "score -50"), ("bpr", "score +1000"), ("bpr", "score -1000"),
            ("bpr", "one user"), ("align_uniform", "zero row"), ("align_uniform", "norm eps/2"),
            ("align_uniform", "norm = eps"), ("align_uniform", "norm 2 eps"), ("align_uniform", "one user")} <= checks
    assert all(r["status"] == "pass" for r in res), [r for r in res if r["status"] != "pass"]

    def naive_triplet(E, a, b, c):  # log(1 + exp(-x)) and its derivative, written naively
        x = np.einsum("nd,nd->n", E[a], E[b] - E[c])
        with np.errstate(over="ignore", invalid="ignore"):
            loss = np.log(1.0 + np.exp(-x))
            d = -np.exp(-x) / (1.0 + np.exp(-x)) / a.size
        full = np.zeros_like(E)
        np.add.at(full, a, d[:, None] * (E[b] - E[c]))
        np.add.at(full, b, d[:, None] * E[a])
        np.add.at(full, c, -d[:, None] * E[a])
        rows = np.unique(np.concatenate([a, b, c]))
        return float(loss.mean()), rows, full[rows]

    monkeypatch.setattr(gc._triplet, "triplet_loss_grad", naive_triplet)
    bad = {r["check"]: r["status"] for r in gc.edge_checks("bpr", 4, 1, 1e-6)}
    assert bad["score -1000"] == "fail" and bad["score +50"] == "pass"
    monkeypatch.undo()
    unguarded = gc._au.align_uniform_loss_grad
    monkeypatch.setattr(gc._au, "align_uniform_loss_grad",
                        lambda E, u, i, gamma=1.0, eps=None: unguarded(E, u, i, gamma=gamma, eps=1e-300))
    bad = {r["check"]: r["status"] for r in gc.edge_checks("align_uniform", 4, 1, 1e-6)}
    assert bad["zero row"] == bad["norm eps/2"] == bad["norm = eps"] == "fail"


def test_negative_fallback_is_exact():
    """An anchor linked to all targets but a few still gets a valid, uniform negative (with a
    single rejection try the exact walk does the work); linked to everything, it is skipped."""
    n = 12
    pairs = np.array([[0, j] for j in range(1, n) if j not in (4, 9)])
    indptr, indices = symmetric_link_csr(pairs, n)
    anchors = np.zeros(4000, np.int64)
    pos, neg = np.empty(4000, np.int64), np.empty(4000, np.int64)
    sample_link_anchored(anchors, indptr, indices, n, make_key(0, 0, 0, 0), 1, pos, neg)
    assert set(neg.tolist()) == {4, 9}
    assert abs(np.mean(neg == 4) - 0.5) < 0.05
    full = np.array([[0, j] for j in range(1, n)])
    indptr, indices = symmetric_link_csr(full, n)
    sample_link_anchored(anchors[:10], indptr, indices, n, make_key(0, 0, 0, 0), 64, pos[:10], neg[:10])
    assert np.all(pos[:10] == -1) and np.all(neg[:10] == -1)
    # a leaf row (one link): negatives avoid the anchor and its one link
    for r in (1, 5):
        vals = {draw_unlinked(indptr, indices, r, n, make_key(0, 0, 0, 1), s, 0, 2) for s in range(300)}
        assert vals == set(range(n)) - {0, r}


def test_bpr_negative_fallback_is_exact():
    """A user who owns every item but two gets only those two as negatives, uniformly, at the
    shipped 64 tries and with a single try (where the exact walk does nearly all the work); the
    64-th rejected draw is never kept (it was before: a positive could come back)."""
    n_items = 500
    owned = np.array([j for j in range(n_items) if j not in (7, 311)], np.int64)
    indptr = np.array([0, owned.size, owned.size + 3], np.int64)
    indices = np.concatenate([owned, [1, 2, 3]])
    users = np.zeros(6000, np.int64)
    for tries in (1, 64):
        neg = np.empty(users.size, np.int64)
        sample_unlinked(users, indptr, indices, n_items, make_key(0, 1, 1, 0), tries, neg)
        assert set(neg.tolist()) == {7, 311}, tries
        assert abs(np.mean(neg == 7) - 0.5) < 0.03
    # the other user keeps the rejection draws: the same as the first k with no positive
    neg = np.empty(50, np.int64)
    sample_unlinked(np.ones(50, np.int64), indptr, indices, n_items, make_key(0, 1, 1, 0), 64, neg)
    assert not np.isin(neg, [1, 2, 3]).any()
    # nth_absent walks the sorted row: the m-th integer not in it
    row = np.array([0, 1, 4, 5, 6, 9], np.int64)
    free = [x for x in range(12) if x not in row]
    assert [nth_absent(row, 0, row.size, m) for m in range(len(free))] == free


def test_bpr_rejects_a_user_owning_every_item():
    ctx, _ = _ctx(synthetic_dataset(n_users=6, n_items=5, per_user=3, ratings=False))
    ctx.train_indptr = np.array([0, 5, 5, 5, 5, 5, 5], np.int64)  # user 0 owns all 5 items
    ctx.train_indices = np.arange(5, dtype=np.int64)
    with pytest.raises(PmtError, match="user 0 has a train interaction with every one of the 5 items"):
        build_tasks(["bpr"], ctx)


def test_missing_relations_name_the_dataset():
    ds = synthetic_dataset(n_users=10, n_items=8, per_user=3, ratings=False, name="noside")
    ds = Dataset(**{**ds.__dict__, "social": None, "also_viewed": None})
    ctx, _ = _ctx(ds)
    for task in ("social", "coview", "rating"):
        with pytest.raises(ValueError, match="noside"):
            build_tasks(["bpr", task], ctx)


def test_task_options_reach_the_constructor(sampling_data):
    ctx, _ = _ctx(sampling_data)
    tasks = build_tasks(["bpr", "align_uniform", "social"], ctx,
                        options={"align_uniform": {"gamma": 0.25}, "social": {"max_tries": 8}})
    assert tasks[1].gamma == 0.25 and tasks[2].max_tries == 8


# ---------------------------------------------------------------------------------------------
# determinism: 1 vs 2 threads give the same bits


def _slot_sums(names, mode, threads, ds, sp):
    numba.set_num_threads(threads)
    ctx = TaskContext(ds.n_users, ds.n_items, sp.train_users, sp.train_items, sp.train[0], sp.train[1],
                      sp.train_ratings, ds, aux_sampling=mode)
    tasks = build_tasks(names, ctx)
    E = np.random.default_rng(0).normal(scale=0.3, size=(ds.n_users + ds.n_items, 16)).astype(np.float32)
    B = 512
    ws = StepWorkspace(tasks, B, E.shape[0], 16, E.dtype)
    batch = Batch(sp.train_users[:B], sp.train_items[:B], sp.train_ratings[:B])
    rows, G, losses, pairs = multitask_gradients(E, tasks, batch, 11, 1, 3, ws)
    return rows, G, losses


@pytest.mark.parametrize("mode", ["anchored", "independent"])
def test_link_and_directau_same_bits_any_thread_count(mode):
    ds = synthetic_dataset(n_users=300, n_items=200, per_user=10, seed=3)
    sp = make_split(ds, 1)
    names = ["bpr", "social", "category", "coview", "cobuy", "align_uniform", "rating"]
    n0 = numba.get_num_threads()
    try:
        r1, G1, l1 = _slot_sums(names, mode, 1, ds, sp)
        r2, G2, l2 = _slot_sums(names, mode, several_threads(), ds, sp)
    finally:
        numba.set_num_threads(n0)
    assert np.array_equal(r1, r2)
    assert np.array_equal(G1, G2)
    assert np.array_equal(l1, l2)
    assert np.all(np.abs(G1).reshape(len(names), -1).max(axis=1) > 0)  # every task contributed


# ---------------------------------------------------------------------------------------------
# the worked example in docs/gradients.md is the script's current output


def test_worked_example_in_doc_is_current():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("worked_example", root / "docs" / "worked_example.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.render()
    doc = (root / "docs" / "gradients.md").read_text()
    block = doc.split(mod.BEGIN, 1)[1].split(mod.END, 1)[0]
    assert text.strip() in block, "docs/gradients.md is stale: run `python docs/worked_example.py --write-doc`"
