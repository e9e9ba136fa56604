"""Direct checks of two invariants of a training step that every combiner relies on: ``G[t]``
holds task t's gradient (in the order of the task list), and the epoch counter ``s`` that PMTRec's
focusing uses starts at 1."""

import numpy as np

from pmtnumba.combiners import EW, PMTRec, StepContext
from pmtnumba.data.split import make_split
from pmtnumba.tasks import Batch, TaskContext, build_tasks
from pmtnumba.training import FitConfig, Trainer
from pmtnumba.training.step import StepWorkspace, multitask_gradients

from .conftest import synthetic_dataset


def test_G_t_is_task_t_gradient(one_numba_thread):
    """Each G[t] equals the row gradient of task t run alone (same draws: the same stream), on
    the step's rows, zero on rows task t does not touch; the tasks differ, so a swapped or
    reversed slot-to-task map fails."""
    ds = synthetic_dataset(n_users=50, n_items=40, per_user=8, seed=2)
    sp = make_split(ds, 0)
    ctx = TaskContext(ds.n_users, ds.n_items, sp.train_users, sp.train_items, sp.train[0], sp.train[1],
                      sp.train_ratings, ds)
    tasks = build_tasks(["bpr", "social", "align_uniform", "rating"], ctx)
    rng = np.random.default_rng(1)
    E = (rng.standard_normal((ds.n_users + ds.n_items, 8)) * 0.3).astype(np.float32)
    b = np.arange(48)
    batch = Batch(sp.train_users[b], sp.train_items[b], sp.train_ratings[b])
    ws = StepWorkspace(tasks, 48, E.shape[0], 8)
    rows, G, _, _ = multitask_gradients(E, tasks, batch, 7, 2, 3, ws)
    rows, G = rows.copy(), G.copy()
    dense = []
    for task in tasks:
        ws1 = StepWorkspace([task], 48, E.shape[0], 8)
        r1, G1, _, _ = multitask_gradients(E, [task], batch, 7, 2, 3, ws1)
        D = np.zeros_like(E)
        D[r1] = G1[0]
        dense.append(D)
        assert np.abs(G1[0]).sum() > 0, task.name
    for t, task in enumerate(tasks):
        np.testing.assert_array_equal(G[t], dense[t][rows], err_msg=task.name)
    assert not np.array_equal(dense[0][rows], dense[1][rows])  # the check can tell tasks apart


class _Seen(EW):
    """EW that records the (epoch, step) of every call."""

    def __init__(self):
        self.seen = []

    def combine(self, G, ctx: StepContext):
        self.seen.append((ctx.epoch, ctx.step))
        return super().combine(G, ctx)


def test_epoch_counter_starts_at_1():
    """The training loop's first step is epoch s = 1, step 1 (Algorithm 1: alpha ** s with s = 1
    in the first epoch); epochs count up by one, steps never restart."""
    ds = synthetic_dataset(n_users=40, n_items=30, per_user=6)
    tr = Trainer(FitConfig(dataset="toy", tasks=["bpr", "align_uniform"], epochs=2, batch_size=64, threads=1,
                           checkpoint_every=0, record_weights=False), split=make_split(ds, 0))
    tr.combiner = _Seen()
    tr.fit()
    n = len(tr.combiner.seen) // 2
    assert tr.combiner.seen == [(1, k + 1) for k in range(n)] + [(2, n + k + 1) for k in range(n)]


def test_pmtrec_first_epoch_focuses_with_alpha_to_the_1():
    """In epoch 1 the main task's norm is scaled by alpha ** 1: the kernel's weights for s = 1
    equal the reference's, and differ from s = 0 (no focusing)."""
    from pmtnumba.combiners.pmtrec import pmtrec_reference

    rng = np.random.default_rng(3)
    G = rng.standard_normal((3, 20, 4)) * 1e-4
    c = PMTRec(alpha=2.0, tau=1e-4, record_weights=True)
    c(G, StepContext(epoch=1))
    _, W1 = pmtrec_reference(G, 2.0, 1e-4, 1)
    _, W0 = pmtrec_reference(G, 2.0, 1e-4, 0)
    np.testing.assert_allclose(c.last_weights, W1, rtol=1e-10, atol=1e-15)
    assert not np.allclose(c.last_weights, W0)
