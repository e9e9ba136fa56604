"""Training steps give bit-identical embeddings for a seed with 1 or 2 Numba threads."""

import numba
import pytest
import numpy as np

from pmtnumba.combiners import EW, StepContext
from pmtnumba.data.split import make_split
from pmtnumba.encoders import MF
from pmtnumba.optim import Adam
from pmtnumba.tasks import Batch, TaskContext, build_tasks
from pmtnumba.data.samplers import epoch_batches
from pmtnumba.training.step import StepWorkspace, train_step

from .conftest import several_threads, synthetic_dataset


def run_steps(ds, task_names, threads, epochs=2, batch_size=64, seed=5):
    numba.set_num_threads(threads)
    sp = make_split(ds, seed)
    ctx = TaskContext(ds.n_users, ds.n_items, sp.train_users, sp.train_items, sp.train[0], sp.train[1],
                      sp.train_ratings, ds)
    tasks = build_tasks(task_names, ctx)
    mf = MF(ds.n_users, ds.n_items, 16, seed)
    adam = Adam(mf.E, lr=0.05, weight_decay=1e-4)
    ws = StepWorkspace(tasks, batch_size, mf.E.shape[0], 16)
    rng = np.random.default_rng(seed)
    step = 0
    for epoch in range(1, epochs + 1):
        for b in epoch_batches(sp.train_users.size, batch_size, seed, epoch):
            step += 1
            batch = Batch(sp.train_users[b], sp.train_items[b], sp.train_ratings[b])
            train_step(mf.E, tasks, batch, EW(), adam, StepContext(epoch, step, rng, n_users=ds.n_users), seed, ws)
    return mf.E.copy()


def test_bpr_training_same_bits_any_thread_count():
    ds = synthetic_dataset(n_users=300, n_items=200, per_user=20)
    n0 = numba.get_num_threads()
    try:
        one = run_steps(ds, ["bpr"], 1)
        two = run_steps(ds, ["bpr"], several_threads())
    finally:
        numba.set_num_threads(n0)
    assert np.array_equal(one, two)
    # and the steps did something
    assert not np.array_equal(one, MF(ds.n_users, ds.n_items, 16, 5).E)


def test_different_seed_differs():
    ds = synthetic_dataset(n_users=100, n_items=80, per_user=10)
    a = run_steps(ds, ["bpr"], 1, epochs=1, seed=1)
    b = run_steps(ds, ["bpr"], 1, epochs=1, seed=2)
    assert not np.array_equal(a, b)


def fit_embeddings(ds, tasks, method, threads, options=None):
    """A short end-to-end fit (sampling, tasks, combiner, Adam, evaluation) with ``threads``."""
    from pmtnumba.training import FitConfig, Trainer

    cfg = FitConfig(dataset="toy", tasks=tasks, method=method, method_options=options or {}, epochs=3,
                    batch_size=64, lr=0.02, seed=3, threads=threads, record_weights=False, checkpoint_every=0)
    res = Trainer(cfg, split=make_split(ds, 3)).fit()
    return res


@pytest.mark.parametrize("method,options", [("pmtrec", {"alpha": 1.1, "tau": 1e-3}), ("pcgrad", {})])
def test_multitask_fit_same_bits_any_thread_count(method, options):
    """PMTRec and a task-wise baseline (PCGrad: random orders, Gram matrix), every task kind
    (link, category, DirectAU, rating) sharing rows: 1 and 2 threads give the same bits."""
    ds = synthetic_dataset(n_users=120, n_items=90, per_user=10, seed=4)
    tasks = ["bpr", "social", "category", "align_uniform", "rating"]
    n0 = numba.get_num_threads()
    try:
        one = fit_embeddings(ds, tasks, method, 1, options)
        two = fit_embeddings(ds, tasks, method, several_threads(), options)
    finally:
        numba.set_num_threads(n0)
    assert np.array_equal(one.user_emb, two.user_emb) and np.array_equal(one.item_emb, two.item_emb)
    assert one.test == two.test and one.curve[-1]["loss_bpr"] == two.curve[-1]["loss_bpr"]
    assert not np.array_equal(one.user_emb, MF(ds.n_users, ds.n_items, 32, 3).user_emb)
