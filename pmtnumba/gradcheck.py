"""Gradient check of every task: hand-derived gradients vs central finite differences (float64).

For each task two kinds of check are run (``pmtnumba gradcheck`` prints them as a table):

``pure``
    The task's pure function (:func:`pmtnumba.tasks.triplet.triplet_loss_grad`,
    :func:`pmtnumba.tasks.align_uniform.align_uniform_loss_grad`,
    :func:`pmtnumba.tasks.rating.rating_loss_grad`) on a small hand-made problem in which rows are
    touched several times: repeated users and items, a row that is an anchor in one triplet and the
    negative (or positive) of another, and for DirectAU embeddings far from unit norm.

``anchored`` / ``independent`` / ``batch``
    The Task object the trainer runs, built on a tiny :class:`~pmtnumba.data.Dataset` with every
    relation (:func:`toy_dataset`): ``compute`` with a float64 table writes its slots, which are
    summed with :func:`~pmtnumba.tasks.rowgrad.reduce_slots`. The samples it drew (same key) define
    the loss whose finite differences it is compared with. Link tasks are checked under both
    sampling modes; ``bpr``, ``align_uniform`` and ``rating`` use the batch (``batch``).

``ego_reg`` (not a task: the published LightGCN/NGCF penalty ``--reg`` on the ego rows of the
    main task's triplets, :mod:`pmtnumba.training.ego_reg`)
    ``pure`` on explicit triplets with repeated rows; ``step`` through the trainer's path (the BPR
    task's slots in a :class:`~pmtnumba.training.step.StepWorkspace`, added to a combined
    gradient by :class:`~pmtnumba.training.ego_reg.EgoReg`); ``missing rows`` when the combined
    gradient's rows lack some batch rows (a graph encoder's row with a zero propagated gradient).
    It acts on E directly, so the graph encoders' checks leave it out.

``score +50`` ... ``one user`` (``edge=True``, the default)
    Inputs that exercise the guards, on the pure functions: a triplet whose score is +-50 or
    +-1000 next to an ordinary one (``bpr``; the link tasks run the same kernel), where a naive
    ``log(1 + exp(-x))`` overflows; DirectAU rows with norm 0, 0.5 eps, exactly eps and 2 eps of
    the normalisation guard ``n = e / max(||e||, eps)`` (eps = 1e-12); and a batch with one
    distinct user. Guard rows are differenced with a step scaled to the row (``1e-6 *
    max(||e||, eps)``), and the reference is evaluated with each row's branch of the guard frozen
    at its value at E (``e / eps`` for ``||e|| <= eps``, as the kernel decides): a step cannot
    cross the guard, and for the linear branch the result is the closed form ``dL/dn / eps``.
    Errors are measured per row (``max_r |g_r - g_fd_r| / max |g_fd_r|``), since guard rows'
    gradients are ~1e12 times the others'.

The finite differences are taken of an *independent NumPy reference* of each loss (not of the
kernel's own loss value), and the kernel's loss is compared with that reference too, so both the
value and the gradient of every kernel are checked.

Errors: ``max_abs_err = max |g - g_fd|`` over every entry of the table (rows not touched must get
0); ``max_rel_err = max_abs_err / max(max |g_fd|, max |g|)`` (relative to the gradient's scale, so
tiny entries do not blow it up); ``loss_err = |loss - loss_ref| / max(1, |loss_ref|)``. A check
passes when both ``max_rel_err`` and ``loss_err`` are at most ``tol`` (default 1e-6; float64 central
differences with h = 1e-6 typically agree to 1e-9).
"""

from __future__ import annotations

import numpy as np

from .data.csr import csr_from_pairs
from .data.dataset import Dataset
from .rng import make_key
from .tasks import TASKS, Batch, TaskContext
from .tasks import align_uniform as _au
from .tasks import rating as _rating
from .tasks import triplet as _triplet
from .tasks.rowgrad import reduce_slots

ALL_TASKS = ("bpr", "social", "category", "coview", "cobuy", "align_uniform", "rating")
#: terms checked like tasks that are not tasks (``pmtnumba gradcheck --task ego_reg``)
TERMS = ("ego_reg",)
EGO_REG = 0.37  # the coefficient of the checks: large enough that the term is not lost in rounding
LINK_TASKS = ("social", "category", "coview", "cobuy")
FD_STEP = 1e-6


# --------------------------------------------------------------------------------------------
# Independent NumPy references of the losses


def ref_triplet_loss(E, a, b, c):
    """``mean -log sigma(E[a] . (E[b] - E[c]))`` in NumPy."""
    x = np.einsum("nd,nd->n", E[a], E[b] - E[c])
    return float(np.mean(np.logaddexp(0.0, -x)))


def ref_align_uniform_loss(E, users, items, gamma=1.0, eps=_au.EPS, linear_rows=None):
    """DirectAU in NumPy: pairwise distances with ``triu_indices`` (as ``torch.pdist``).

    ``linear_rows`` (bool [n_rows], optional) freezes the guard's branch: those rows are
    normalised as ``e / eps`` and the others as ``e / ||e||`` whatever their norm now."""
    def normed(rows):
        X = E[rows]
        nrm = np.linalg.norm(X, axis=1, keepdims=True)
        if linear_rows is None:
            return X / np.maximum(nrm, eps)
        return X / np.where(linear_rows[rows][:, None], eps, nrm)

    align = float(np.mean(np.sum((normed(users) - normed(items)) ** 2, axis=1)))

    def unif(rows):
        rows = np.unique(rows)
        if rows.size < 2:
            return 0.0
        N = normed(rows)
        ia, ib = np.triu_indices(rows.size, k=1)
        return float(np.log(np.mean(np.exp(-2.0 * np.sum((N[ia] - N[ib]) ** 2, axis=1)))))

    return align + gamma * (unif(users) + unif(items)) / 2.0


def ref_ego_reg_loss(E, a, b, c, reg):
    """``reg * 0.5 * sum_s (||E[a_s]||^2 + ||E[b_s]||^2 + ||E[c_s]||^2) / n`` in NumPy."""
    return float(reg * 0.5 * (np.sum(E[a] ** 2) + np.sum(E[b] ** 2) + np.sum(E[c] ** 2)) / len(a))


def ref_rating_loss(E, u, i, r):
    """``mean (E[u] . E[i] - r)^2`` in NumPy."""
    return float(np.mean((np.einsum("nd,nd->n", E[u], E[i]) - r) ** 2))


def finite_differences(f, E, h=FD_STEP):
    """Central differences ``(f(E + h e_k) - f(E - h e_k)) / 2h`` for every entry of ``E``;
    ``h`` a number or one step per row."""
    g = np.zeros_like(E)
    X = E.copy()
    steps = np.broadcast_to(np.asarray(h, dtype=np.float64).reshape(-1, *([1] * (E.ndim - 1))), E.shape)
    for idx in np.ndindex(*E.shape):
        x0, hk = X[idx], steps[idx]
        X[idx] = x0 + hk
        fp = f(X)
        X[idx] = x0 - hk
        fm = f(X)
        X[idx] = x0
        g[idx] = (fp - fm) / (2.0 * hk)
    return g


def dense(E, rows, grads):
    """Scatter gradient rows into a zero table shaped like ``E``."""
    out = np.zeros_like(E, dtype=np.float64)
    if len(rows):
        out[np.asarray(rows)] = grads
    return out


def _result(task, check, G, G_fd, loss, loss_ref, tol, per_row=False):
    abs_err = float(np.max(np.abs(G - G_fd))) if G.size else 0.0
    scale = max(float(np.max(np.abs(G_fd))), float(np.max(np.abs(G))), 1e-300)
    rel_err = abs_err / scale
    if per_row:  # each row against its own scale (rows where both are exactly 0 have error 0)
        err_r = np.max(np.abs(G - G_fd), axis=1)
        scale_r = np.maximum(np.max(np.abs(G_fd), axis=1), np.max(np.abs(G), axis=1))
        rel_err = float(np.max(np.where(err_r > 0, err_r / np.where(scale_r > 0, scale_r, 1.0), 0.0)))
        if not np.all(np.isfinite(G)):
            rel_err = float("inf")
    loss_err = abs(loss - loss_ref) / max(1.0, abs(loss_ref))
    ok = bool(np.isfinite(rel_err) and rel_err <= tol and loss_err <= tol and scale > 1e-300)
    return {
        "task": task, "check": check, "n_params": int(G.size), "max_abs_err": abs_err,
        "max_rel_err": rel_err, "loss_err": loss_err, "status": "pass" if ok else "fail",
    }


# --------------------------------------------------------------------------------------------
# Pure-function problems: small tables with rows touched several times


def _table(rng, n_rows, dim, norm_spread=False):
    E = rng.normal(scale=0.7, size=(n_rows, dim))
    if norm_spread:  # DirectAU: norms far from 1 (0.2 .. 5)
        E *= np.exp(rng.uniform(np.log(0.2), np.log(5.0), size=(n_rows, 1))) / np.linalg.norm(E, axis=1, keepdims=True)
    return E


def _pure_check(task, dim, seed, tol):
    rng = np.random.default_rng([seed, ALL_TASKS.index(task)])
    if task in ("bpr",) + LINK_TASKS:
        if task == "social":  # users only: user 0 is an anchor and, elsewhere, a negative
            n_rows, off = 6, 0
        else:  # 4 users + 6 items; item triplets (bpr: user anchors)
            n_rows, off = 10, 4
        E = _table(rng, n_rows, dim)
        if task == "bpr":
            a = np.array([0, 0, 1, 2, 3, 1])
            b = off + np.array([0, 1, 0, 2, 5, 3])
            c = off + np.array([1, 2, 3, 0, 0, 1])  # item 1: positive once, negative twice
        else:
            a = off + np.array([0, 0, 1, 2, 3, 4, 5])
            b = off + np.array([1, 2, 0, 3, 2, 1, 0])
            c = off + np.array([3, 4, 2, 0, 1, 0, 2])  # rows 0 and 2 are anchors and negatives
        loss, rows, grads = _triplet.triplet_loss_grad(E, a, b, c)
        f = lambda X: ref_triplet_loss(X, a, b, c)  # noqa: E731
    elif task == "align_uniform":
        E = _table(rng, 9, dim, norm_spread=True)
        users = np.array([0, 0, 1, 2, 3, 3, 1])
        items = 4 + np.array([0, 1, 1, 2, 4, 0, 3])
        gamma = 0.7
        loss, rows, grads = _au.align_uniform_loss_grad(E, users, items, gamma=gamma)
        f = lambda X: ref_align_uniform_loss(X, users, items, gamma)  # noqa: E731
    elif task == "rating":
        E = _table(rng, 9, dim)
        u = np.array([0, 0, 1, 2, 3, 3, 1])
        i = 4 + np.array([0, 1, 1, 2, 4, 0, 3])
        r = rng.integers(1, 6, size=u.size).astype(np.float64)
        loss, rows, grads = _rating.rating_loss_grad(E, u, i, r)
        f = lambda X: ref_rating_loss(X, u, i, r)  # noqa: E731
    else:
        raise ValueError(task)
    return _result(task, "pure", dense(E, rows, grads), finite_differences(f, E), loss, f(E), tol)


# --------------------------------------------------------------------------------------------
# Task objects on a tiny data set (the trainer's code path)


def toy_dataset() -> Dataset:
    """6 users, 8 items, 22 rated interactions and every side relation, with the awkward cases:
    a user without friends, an item with unknown category (-1), singleton categories, items
    without co-view / co-buy links."""
    users = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 5, 1, 3], np.int32)
    items = np.array([0, 1, 2, 1, 3, 4, 0, 2, 5, 7, 3, 6, 1, 0, 4, 6, 2, 5, 7, 3, 6, 0], np.int32)
    ratings = np.array([5, 3, 4, 2, 5, 1, 4, 4, 3, 2, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 3], np.float32)
    return Dataset(
        name="gradcheck-toy",
        n_users=6,
        n_items=8,
        users=users,
        items=items,
        ratings=ratings,
        social=np.array([[0, 1], [1, 2], [2, 0], [3, 1], [4, 3], [1, 0]], np.int32),  # user 5: no friend
        item_category=np.array([0, 0, 1, 1, 1, 2, -1, 3], np.int32),
        also_viewed=np.array([[0, 1], [1, 2], [3, 4], [4, 0], [5, 6]], np.int32),
        also_bought=np.array([[0, 2], [2, 3], [6, 7], [7, 1], [3, 0]], np.int32),
        source="pmtnumba.gradcheck.toy_dataset",
    )


def toy_context(ds: Dataset, aux_sampling: str = "anchored") -> TaskContext:
    """A TaskContext on all interactions of ``ds`` (no split: every interaction is 'train')."""
    u = ds.users.astype(np.int64)
    i = ds.items.astype(np.int64)
    indptr, indices = csr_from_pairs(u, i, ds.n_users)
    r = None if ds.ratings is None else ds.ratings.astype(np.float32)
    return TaskContext(ds.n_users, ds.n_items, u, i, indptr, indices, r, ds, aux_sampling=aux_sampling)


def task_samples(task, batch: Batch, key):
    """The samples a task's ``compute`` forms with ``key``, for the reference loss:
    ``("triplet", a, b, c)``, ``("align_uniform", users, items)`` or ``("rating", u, i, r)``
    (row ids)."""
    n_users = task.ctx.n_users
    if hasattr(task, "triplets"):
        return ("triplet",) + tuple(task.triplets(batch, key))
    users = np.asarray(batch.users, np.int64)
    items = np.asarray(batch.items, np.int64) + n_users
    if task.name == "align_uniform":
        return ("align_uniform", users, items)
    if task.name == "rating":
        return ("rating", users, items, np.asarray(batch.ratings, np.float64))
    raise ValueError(f"gradcheck does not know how to read the samples of task {task.name!r}")


def _reference(task, samples):
    kind = samples[0]
    if kind == "triplet":
        _, a, b, c = samples
        return lambda X: ref_triplet_loss(X, a, b, c)
    if kind == "align_uniform":
        _, users, items = samples
        return lambda X: ref_align_uniform_loss(X, users, items, task.gamma, task.eps)
    _, u, i, r = samples
    return lambda X: ref_rating_loss(X, u, i, r)


def _compute_check(task_name, mode, dim, seed, tol):
    ds = toy_dataset()
    ctx = toy_context(ds, "independent" if mode == "independent" else "anchored")
    stream = ALL_TASKS.index(task_name)
    task = TASKS[task_name](ctx, stream=stream)
    rng = np.random.default_rng([seed, 100 + stream])
    n_rows = ds.n_users + ds.n_items
    E = _table(rng, n_rows, dim, norm_spread=(task_name == "align_uniform"))
    order = rng.permutation(ds.n_interactions)[:16]
    order = np.concatenate([order, order[:4]])  # repeated (u, i) pairs on top of repeated users/items
    batch = Batch(ds.users[order].astype(np.int64), ds.items[order].astype(np.int64), ds.ratings[order])
    key = make_key(seed, 1, 1, stream)
    S = task.max_slots(batch.size)
    out_rows = np.empty(S, np.int64)
    out_grads = np.empty((S, dim), np.float64)
    out = task.compute(E, batch, key, out_rows, out_grads)
    rows, grads = reduce_slots(out_rows[: out.n_slots], out_grads[: out.n_slots], n_rows=n_rows)
    f = _reference(task, task_samples(task, batch, key))
    return _result(task_name, mode, dense(E, rows, grads), finite_differences(f, E), out.loss, f(E), tol)



# --------------------------------------------------------------------------------------------
# Edge cases: the guards (softplus overflow, DirectAU's normalisation guard, one distinct user)

TRIPLET_SCORES = (50.0, -50.0, 1000.0, -1000.0)
GUARD_NORMS = (("zero row", 0.0), ("norm eps/2", 0.5), ("norm = eps", 1.0), ("norm 2 eps", 2.0))


def _triplet_edge(score, dim, seed, tol):
    """An ordinary triplet (rows 0, 1, 2) and one with score ``x = E[0] . (E[3] - E[4])`` set to
    ``score`` (anchor row 0 shared)."""
    rng = np.random.default_rng([seed, 7, int(abs(score)), score > 0])
    E = _table(rng, 5, dim)
    E[3] = E[4] + score * E[0] / (E[0] @ E[0])
    a, b, c = np.array([0, 0]), np.array([1, 3]), np.array([2, 4])
    loss, rows, grads = _triplet.triplet_loss_grad(E, a, b, c)
    f = lambda X: ref_triplet_loss(X, a, b, c)  # noqa: E731
    x = float(E[0] @ (E[3] - E[4]))
    return _result("bpr", f"score {x:+.0f}", dense(E, rows, grads), finite_differences(f, E), loss, f(E), tol)


def _guard_edge(name, factor, dim, seed, tol, eps=_au.EPS):
    """DirectAU on 3 users and 4 items where item row 5 has norm ``factor * eps`` (a one-hot
    vector, so its norm is exact); it is paired with two users and takes part in the items'
    uniformity."""
    rng = np.random.default_rng([seed, 11, int(factor * 10)])
    E = _table(rng, 7, dim, norm_spread=True)
    E[5] = 0.0
    E[5, 0] = factor * eps
    users = np.array([0, 1, 2, 0, 1])
    items = np.array([3, 5, 4, 5, 6])
    gamma = 0.7
    linear = np.linalg.norm(E, axis=1) <= eps  # the kernel's test: the linear branch unless ||e|| > eps
    loss, rows, grads = _au.align_uniform_loss_grad(E, users, items, gamma=gamma)
    f = lambda X: ref_align_uniform_loss(X, users, items, gamma, eps, linear_rows=linear)  # noqa: E731
    h = FD_STEP * np.maximum(np.linalg.norm(E, axis=1), eps)
    G_fd = finite_differences(f, E, h)
    return _result("align_uniform", name, dense(E, rows, grads), G_fd, loss, f(E), tol, per_row=True)


def _one_user_edge(task, dim, seed, tol):
    """A batch whose pairs all have the same user (DirectAU: no user pair, unif(users) = 0)."""
    rng = np.random.default_rng([seed, 13, ALL_TASKS.index(task)])
    if task == "bpr":
        E = _table(rng, 6, dim)
        a, b, c = np.zeros(4, np.int64), np.array([1, 2, 3, 1]), np.array([4, 5, 1, 2])
        loss, rows, grads = _triplet.triplet_loss_grad(E, a, b, c)
        f = lambda X: ref_triplet_loss(X, a, b, c)  # noqa: E731
    else:
        E = _table(rng, 6, dim, norm_spread=True)
        users, items = np.zeros(5, np.int64), np.array([1, 2, 3, 4, 2])
        loss, rows, grads = _au.align_uniform_loss_grad(E, users, items, gamma=0.7)
        f = lambda X: ref_align_uniform_loss(X, users, items, 0.7)  # noqa: E731
    return _result(task, "one user", dense(E, rows, grads), finite_differences(f, E), loss, f(E), tol)


def edge_checks(task, dim, seed, tol) -> list[dict]:
    """The edge-case checks of ``task`` (empty for tasks without a guard of their own)."""
    if task == "bpr":
        return [_triplet_edge(x, dim, seed, tol) for x in TRIPLET_SCORES] + [_one_user_edge("bpr", dim, seed, tol)]
    if task == "align_uniform":
        return [_guard_edge(n, f, dim, seed, tol) for n, f in GUARD_NORMS] + [_one_user_edge(task, dim, seed, tol)]
    return []

# --------------------------------------------------------------------------------------------


def ego_reg_checks(dim, seed, tol, reg=EGO_REG) -> list[dict]:
    """The checks of the ego-embedding penalty (module docstring, ``ego_reg``)."""
    from .training.ego_reg import EgoReg, add_ego_reg, ego_reg_loss_grad
    from .training.step import StepWorkspace, multitask_gradients

    out = []
    rng = np.random.default_rng([seed, 17])
    E = _table(rng, 10, dim)
    a = np.array([0, 0, 1, 2, 3, 1])
    b = 4 + np.array([0, 1, 0, 2, 5, 3])
    c = 4 + np.array([1, 2, 3, 0, 0, 1])  # item 1: positive once, negative twice; user 0 twice
    loss, rows, grads = ego_reg_loss_grad(E, a, b, c, reg)
    f = lambda X: ref_ego_reg_loss(X, a, b, c, reg)  # noqa: E731
    out.append(_result("ego_reg", "pure", dense(E, rows, grads), finite_differences(f, E), loss, f(E), tol))

    ds = toy_dataset()
    task = TASKS["bpr"](toy_context(ds), stream=0)
    n_rows = ds.n_users + ds.n_items
    E = _table(rng, n_rows, dim)
    order = rng.permutation(ds.n_interactions)[:16]
    order = np.concatenate([order, order[:4]])
    batch = Batch(ds.users[order].astype(np.int64), ds.items[order].astype(np.int64), ds.ratings[order])
    ws = StepWorkspace([task], batch.size, n_rows, dim, np.float64)
    rows, G, _, pairs = multitask_gradients(E, [task], batch, seed, 1, 1, ws)
    _, a, b, c = task_samples(task, batch, make_key(seed, 1, 1, task.stream))
    f = lambda X: ref_ego_reg_loss(X, a, b, c, reg)  # noqa: E731
    pen = EgoReg(reg)
    rows2, g = pen(E, ws, int(pairs[0]), rows, np.zeros_like(G[0]))
    out.append(_result("ego_reg", "step", dense(E, rows2, g), finite_differences(f, E), pen.loss, f(E), tol))

    slots = ws.slot_rows[: 3 * int(pairs[0])]
    kept = rows[::2]  # half of the batch's rows missing from the combined gradient's rows
    rows3, g3, loss3 = add_ego_reg(E, reg, slots, int(pairs[0]), kept, np.zeros((kept.size, dim)))
    out.append(_result("ego_reg", "missing rows", dense(E, rows3, g3), finite_differences(f, E), loss3, f(E), tol))
    return out


def run_gradcheck(tasks="all", dim: int = 8, seed: int = 0, tol: float = 1e-6, edge: bool = True) -> list[dict]:
    """Check every requested task; return one dict per check.

    ``tasks`` is ``"all"``, a task name or a list of names. Each dict has ``task``, ``check``
    (``pure``, ``anchored``, ``independent``, ``batch`` or an edge case, see the module
    docstring; ``edge=False`` leaves those out), ``n_params`` (entries of the table
    differentiated), ``max_abs_err``, ``max_rel_err``, ``loss_err`` and ``status``
    (``"pass"``/``"fail"`` against ``tol``).
    """
    if isinstance(tasks, str):
        names = list(ALL_TASKS + TERMS) if tasks == "all" else [tasks]
    else:
        names = list(tasks)
    unknown = [n for n in names if n not in ALL_TASKS + TERMS]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; available: {', '.join(ALL_TASKS + TERMS)}")
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    results = []
    for name in names:
        if name == "ego_reg":
            results += ego_reg_checks(dim, seed, tol)
            continue
        results.append(_pure_check(name, dim, seed, tol))
        modes = ("anchored", "independent") if name in LINK_TASKS else ("batch",)
        for mode in modes:
            results.append(_compute_check(name, mode, dim, seed, tol))
        if edge:
            results += edge_checks(name, dim, seed, tol)
    return results


# --------------------------------------------------------------------------------------------
# Graph encoders: every task on top of LightGCN / NGCF, gradients on the encoder's parameters


ENCODER_PARAMS = {"lightgcn": ("E",), "ngcf": ("E", "W1", "W2", "b")}


def ref_adjacency(users, items, n_users, n_items):
    """``D^-1/2 A D^-1/2`` of the user-item graph built independently with scipy.sparse (float64)."""
    import scipy.sparse as sp

    N = n_users + n_items
    u = np.asarray(users, np.int64)
    i = np.asarray(items, np.int64) + n_users
    A = sp.coo_matrix((np.ones(2 * u.size), (np.concatenate([u, i]), np.concatenate([i, u]))), shape=(N, N)).tocsr()
    A.data[:] = 1.0  # duplicate pairs count once
    deg = np.asarray(A.sum(axis=1)).ravel()
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1.0)), 0.0)
    return sp.diags(inv) @ A @ sp.diags(inv)


def ref_lightgcn(A, E, layers):
    """``sum_k A^k E / (K + 1)`` with scipy.sparse products."""
    out, cur = E.copy(), E
    for _ in range(layers):
        cur = A @ cur
        out = out + cur
    return out / (layers + 1)


def ref_ngcf(A, E, W1, W2, b, slope=0.2):
    """NGCF without dropout: ``E' = LeakyReLU((A + I) E W1 + (A E * E) W2 + b)`` per layer, the
    layers concatenated, in NumPy/scipy."""
    Es = [E]
    for k in range(W1.shape[0]):
        X = Es[-1]
        S = A @ X
        Z = (S + X) @ W1[k] + (S * X) @ W2[k] + b[k]
        Es.append(np.where(Z > 0, Z, slope * Z))
    return np.concatenate(Es, axis=1)


def _encoder_check(enc_name, task_name, dim, layers, seed, tol):
    from .encoders import LightGCN, NGCF, NormAdjacency

    ds = toy_dataset()
    ctx = toy_context(ds)
    stream = ALL_TASKS.index(task_name)
    task = TASKS[task_name](ctx, stream=stream)
    rng = np.random.default_rng([seed, 200 + stream, len(enc_name)])
    adj = NormAdjacency(ds.users, ds.items, ds.n_users, ds.n_items)
    A = ref_adjacency(ds.users, ds.items, ds.n_users, ds.n_items)
    if enc_name == "lightgcn":
        enc = LightGCN(adj, dim, seed, layers, dtype=np.float64)
        enc.E[...] = _table(rng, adj.n_rows, dim, norm_spread=(task_name == "align_uniform"))
        fwd = lambda P: ref_lightgcn(A, P["E"], layers)  # noqa: E731
    else:
        enc = NGCF(adj, dim, seed, layers, dropout=0.0, dtype=np.float64)
        enc.E[...] = _table(rng, adj.n_rows, dim)
        enc.W1[...] = rng.normal(scale=0.5, size=enc.W1.shape)
        enc.W2[...] = rng.normal(scale=0.5, size=enc.W2.shape)
        enc.b[...] = rng.normal(scale=0.1, size=enc.b.shape)
        fwd = lambda P: ref_ngcf(A, P["E"], P["W1"], P["W2"], P["b"])  # noqa: E731
    params = {k: v.copy() for k, v in enc.arrays().items()}
    F = enc.forward().copy()
    F_ref = fwd(params)
    order = rng.permutation(ds.n_interactions)[:16]
    order = np.concatenate([order, order[:4]])
    batch = Batch(ds.users[order].astype(np.int64), ds.items[order].astype(np.int64), ds.ratings[order])
    key = make_key(seed, 1, 1, stream)
    S = task.max_slots(batch.size)
    out_rows = np.empty(S, np.int64)
    out_grads = np.empty((S, F.shape[1]), np.float64)
    out = task.compute(F, batch, key, out_rows, out_grads)
    rows, grads = reduce_slots(out_rows[: out.n_slots], out_grads[: out.n_slots], n_rows=adj.n_rows)
    rows0, G0, dense = enc.backward(rows, grads[None])
    f_task = _reference(task, task_samples(task, batch, key))
    results = []
    fwd_err = float(np.max(np.abs(F - F_ref)))
    fwd_rel = fwd_err / max(float(np.max(np.abs(F_ref))), 1e-300)
    results.append({"task": task_name, "check": f"{enc_name}:forward", "n_params": int(F.size),
                    "max_abs_err": fwd_err, "max_rel_err": fwd_rel, "loss_err": 0.0,
                    "status": "pass" if fwd_rel <= tol else "fail"})
    for name in ENCODER_PARAMS[enc_name]:
        if name == "E":
            g = dense_rows = np.zeros_like(params["E"])
            dense_rows[rows0] = G0[0]
        else:
            g = dense[name][0]

        def f(X, name=name):
            P = dict(params)
            P[name] = X
            return f_task(fwd(P))

        results.append(_result(task_name, f"{enc_name}:{name}", g, finite_differences(f, params[name]),
                               out.loss, f(params[name]), tol))
    return results


def run_encoder_gradcheck(encoders=("lightgcn", "ngcf"), tasks="all", dim: int = 4, layers: int = 2, seed: int = 0,
                          tol: float = 1e-6) -> list[dict]:
    """Every task on top of each graph encoder: the encoder's forward against an independent
    NumPy/scipy.sparse reference (check ``<encoder>:forward``), and the gradient of the task's
    loss with respect to each encoder parameter (``<encoder>:E``, ``:W1``, ``:W2``, ``:b``)
    against float64 central differences of the reference loss of the reference forward. NGCF
    runs without message dropout (the mask makes the loss a different function per draw)."""
    names = list(ALL_TASKS) if tasks == "all" else ([tasks] if isinstance(tasks, str) else list(tasks))
    names = [n for n in names if n not in TERMS]  # the penalty acts on E directly, not through the encoder
    unknown = [n for n in names if n not in ALL_TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; available: {', '.join(ALL_TASKS)}")
    bad = [e for e in encoders if e not in ENCODER_PARAMS]
    if bad:
        raise ValueError(f"unknown graph encoder(s) {', '.join(bad)}; available: {', '.join(ENCODER_PARAMS)}")
    results = []
    for enc in encoders:
        for name in names:
            results.extend(_encoder_check(enc, name, dim, layers, seed, tol))
    return results


def format_table(results: list[dict]) -> str:
    """The results as a fixed-width text table."""
    head = f"{'task':<14s} {'check':<16s} {'n params':>8s} {'max abs err':>12s} {'max rel err':>12s} " \
           f"{'loss err':>10s}  status"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['task']:<14s} {r['check']:<16s} {r['n_params']:>8d} {r['max_abs_err']:>12.3e} "
                     f"{r['max_rel_err']:>12.3e} {r['loss_err']:>10.2e}  {r['status']}")
    return "\n".join(lines)
