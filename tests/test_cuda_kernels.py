"""Every CUDA twin against its CPU kernel on the same tiny inputs, in the CUDA simulator.

Inputs have rows touched by several samples and by several tasks. Integer outputs (samples, row
index) must be equal; float outputs agree to float32 rounding (the simulator runs the shared
functions as Python in float64 where the CPU kernel sums in SIMD lanes). The differences are
printed per kernel (``pytest -s``).
"""

import numpy as np
import pytest

from tests.cuda_helpers import cuda, diff  # noqa: F401  (skips without the simulator)

from pmtnumba.data.csr import csr_from_pairs
from pmtnumba.data.link_samplers import (
    category_structure, sample_category_anchored, sample_category_independent, sample_link_anchored,
    sample_link_independent, symmetric_link_csr,
)
from pmtnumba.data import link_samplers_cuda as LC
from pmtnumba.data.samplers import sample_unlinked
from pmtnumba.data.samplers_cuda import sample_unlinked_cuda
from pmtnumba.rng import make_key
from pmtnumba.scan_cuda import THREADS, blocks

# the shared RNG wraps uint64 products on purpose; run as Python (the simulator) NumPy warns
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

N_U, N_I, D, B = 12, 18, 4, 16
KEY = make_key(3, 1, 2, 0)


def _launch(kernel, n, *args):
    kernel[blocks(n), THREADS](*args)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    E = rng.normal(0, 0.3, size=(N_U + N_I, D)).astype(np.float32)
    users = rng.integers(0, N_U, B)  # repeats: rows touched by several samples
    items = rng.integers(0, N_I, B)
    tr_u = rng.integers(0, N_U, 60)
    tr_i = rng.integers(0, N_I, 60)
    indptr, indices = csr_from_pairs(tr_u, tr_i, N_U)
    links = rng.integers(0, N_I, size=(40, 2))
    cat = rng.integers(-1, 4, N_I)
    return dict(E=E, users=users, items=items, indptr=indptr, indices=indices, links=links, cat=cat)


def test_bpr_sampler(data):
    d = data
    cpu = np.empty(B, np.int64)
    sample_unlinked(d["users"], d["indptr"], d["indices"], N_I, KEY, 64, cpu)
    out = cuda.device_array(B, np.int64)
    _launch(sample_unlinked_cuda, B, cuda.to_device(d["users"]), cuda.to_device(d["indptr"]),
            cuda.to_device(d["indices"]), N_I, KEY, 64, out)
    np.testing.assert_array_equal(out.copy_to_host(), cpu)
    diff("sample_unlinked", cpu, out.copy_to_host())


def test_link_samplers(data):
    d = data
    ip, ix = symmetric_link_csr(d["links"], N_I)
    anchors = d["items"]
    pos, neg = np.empty(B, np.int64), np.empty(B, np.int64)
    sample_link_anchored(anchors, ip, ix, N_I, KEY, 4, pos, neg)
    gp, gn = cuda.device_array(B, np.int64), cuda.device_array(B, np.int64)
    _launch(LC.sample_link_anchored_cuda, B, cuda.to_device(anchors), cuda.to_device(ip), cuda.to_device(ix),
            N_I, KEY, 4, gp, gn)
    np.testing.assert_array_equal(gp.copy_to_host(), pos)
    np.testing.assert_array_equal(gn.copy_to_host(), neg)
    an, pos, neg = (np.empty(B, np.int64) for _ in range(3))
    sample_link_independent(ip, ix, N_I, KEY, 4, an, pos, neg)
    ga, gp, gn = (cuda.device_array(B, np.int64) for _ in range(3))
    _launch(LC.sample_link_independent_cuda, B, cuda.to_device(ip), cuda.to_device(ix), N_I, KEY, 4, ga, gp, gn)
    for g, c in ((ga, an), (gp, pos), (gn, neg)):
        np.testing.assert_array_equal(g.copy_to_host(), c)
    diff("sample_link_anchored+independent", np.r_[an, pos, neg], np.r_[ga.copy_to_host(), gp.copy_to_host(),
                                                                      gn.copy_to_host()])


def test_category_samplers_and_compaction(data):
    d = data
    cat_indptr, cat_items, item_pos, pair_cum = category_structure(d["cat"], N_I)
    item_cat = np.asarray(d["cat"], np.int64)
    anchors = d["items"]
    pos, neg = np.empty(B, np.int64), np.empty(B, np.int64)
    sample_category_anchored(anchors, item_cat, cat_indptr, cat_items, item_pos, KEY, pos, neg)
    dev = [cuda.to_device(x) for x in (item_cat, cat_indptr, cat_items, item_pos)]
    gp, gn = cuda.device_array(B, np.int64), cuda.device_array(B, np.int64)
    _launch(LC.sample_category_anchored_cuda, B, cuda.to_device(anchors), *dev, KEY, gp, gn)
    np.testing.assert_array_equal(gp.copy_to_host(), pos)
    np.testing.assert_array_equal(gn.copy_to_host(), neg)
    assert (pos < 0).any() and (pos >= 0).any()  # the compaction below has something to drop
    # compaction keeps the order of the kept samples, as the CPU's anchor[keep]
    a, b, c, n_out = (cuda.device_array(B, np.int64) for _ in range(4))
    flags, where, sums = cuda.device_array(B, np.int64), cuda.device_array(B + 1, np.int64), cuda.device_array(4, np.int64)
    LC.compact_triplets_cuda(cuda.to_device(anchors), gp, gn, B, N_U, a, b, c, n_out, flags, where, sums)
    keep = pos >= 0
    n = int(n_out.copy_to_host()[0])
    assert n == keep.sum()
    np.testing.assert_array_equal(a.copy_to_host()[:n], anchors[keep] + N_U)
    np.testing.assert_array_equal(b.copy_to_host()[:n], pos[keep] + N_U)
    np.testing.assert_array_equal(c.copy_to_host()[:n], neg[keep] + N_U)
    an, pos2, neg2 = (np.empty(B, np.int64) for _ in range(3))
    sample_category_independent(item_cat, cat_indptr, cat_items, pair_cum, KEY, an, pos2, neg2)
    ga, gp2, gn2 = (cuda.device_array(B, np.int64) for _ in range(3))
    _launch(LC.sample_category_independent_cuda, B, *(cuda.to_device(x) for x in (item_cat, cat_indptr, cat_items,
                                                                               pair_cum)), KEY, ga, gp2, gn2)
    for g, cc in ((ga, an), (gp2, pos2), (gn2, neg2)):
        np.testing.assert_array_equal(g.copy_to_host(), cc)
    diff("sample_category_*+compaction", np.r_[pos, neg, an, pos2, neg2],
         np.r_[gp.copy_to_host(), gn.copy_to_host(), ga.copy_to_host(), gp2.copy_to_host(), gn2.copy_to_host()])


def test_triplet_and_rating(data):
    from pmtnumba.tasks.rating import rating_slots
    from pmtnumba.tasks.rating_cuda import rating_slots_cuda
    from pmtnumba.tasks.triplet import triplet_slots
    from pmtnumba.tasks.triplet_cuda import triplet_slots_cuda

    d = data
    E = d["E"]
    a, b = d["users"], d["items"] + N_U
    c = np.roll(b, 3)
    rows, grads, loss = np.empty(3 * B, np.int64), np.empty((3 * B, D), np.float32), np.empty(B)
    triplet_slots(E, a, b, c, 1.0 / B, rows, grads, loss)
    gr, gg, gl = cuda.device_array(3 * B, np.int64), cuda.device_array((3 * B, D), np.float32), cuda.device_array(B)
    _launch(triplet_slots_cuda, B, cuda.to_device(E), cuda.to_device(a), cuda.to_device(b), cuda.to_device(c),
            cuda.to_device(np.array([B])), gr, gg, gl)
    np.testing.assert_array_equal(gr.copy_to_host(), rows)
    ab, rel = diff("triplet_slots grads", grads, gg.copy_to_host())
    assert rel < 1e-6
    ab, rel = diff("triplet_slots loss", loss, gl.copy_to_host())
    assert rel < 1e-12
    r = np.random.default_rng(1).integers(1, 6, B).astype(np.float32)
    rows, grads, loss = np.empty(2 * B, np.int64), np.empty((2 * B, D), np.float32), np.empty(B)
    rating_slots(E, a, b, r, 1.0 / B, rows, grads, loss)
    gr, gg = cuda.device_array(2 * B, np.int64), cuda.device_array((2 * B, D), np.float32)
    _launch(rating_slots_cuda, B, cuda.to_device(E), cuda.to_device(a), cuda.to_device(b), cuda.to_device(r),
            cuda.to_device(np.array([B])), gr, gg, gl)
    np.testing.assert_array_equal(gr.copy_to_host(), rows)
    assert diff("rating_slots grads", grads, gg.copy_to_host())[1] < 1e-6
    assert diff("rating_slots loss", loss, gl.copy_to_host())[1] < 1e-12


def test_row_index_and_gather():
    """Two tasks' slots with shared rows, unused slots (-1) and rows touched many times."""
    from pmtnumba.tasks.rowgrad import gather_rows, index_rows
    from pmtnumba.tasks.rowgrad_cuda import RowIndexWorkspace, gather_rows_cuda, index_rows_cuda

    rng = np.random.default_rng(2)
    N, S, T = 30, 40, 2
    slot_rows = rng.integers(0, 9, S).astype(np.int64) * 3  # few distinct rows: long segments
    slot_rows[[5, 17, 33]] = -1
    slot_task = np.repeat(np.arange(T), S // T).astype(np.int64)
    slot_grads = rng.normal(size=(S, D)).astype(np.float32)
    rows, indptr, order = index_rows(slot_rows, np.full(N, -1, np.int64))
    G = np.empty((T, rows.shape[0], D), np.float32)
    gather_rows(indptr, order, slot_task, slot_grads, G)
    ws = RowIndexWorkspace(N, S)
    index_rows_cuda(cuda.to_device(slot_rows), ws)
    R = int(ws.R_dev.copy_to_host()[0])
    assert R == rows.shape[0]
    np.testing.assert_array_equal(ws.rows.copy_to_host()[:R], rows)
    np.testing.assert_array_equal(ws.indptr.copy_to_host()[: R + 1], indptr)
    np.testing.assert_array_equal(ws.order.copy_to_host()[: indptr[-1]], order)
    assert not ws.flag.copy_to_host().any()  # the mark is left clear for the next step
    Gd = cuda.device_array((T, S, D), np.float32)
    gather_rows_cuda[blocks(S * D), THREADS](ws.indptr, ws.order, cuda.to_device(slot_task),
                                             cuda.to_device(slot_grads), ws.R_dev, Gd)
    Gg = Gd.copy_to_host()[:, :R]
    np.testing.assert_array_equal(Gg, G)  # the same additions in the same order: the same bits
    diff("index_rows+gather_rows", G, Gg)


def _G(T=3, R=10, seed=3):
    rng = np.random.default_rng(seed)
    G = (rng.normal(size=(T, R, D)) * 1e-3).astype(np.float32)
    G[1:, ::3] = 0  # absent tasks on some rows
    G[2:, 1::4] = 0
    return G


def test_ew_and_pmtrec():
    from pmtnumba.combiners.base import EW
    from pmtnumba.combiners.base_cuda import ew_cuda
    from pmtnumba.combiners.pmtrec import pmtrec_combine, focus_factor
    from pmtnumba.combiners.pmtrec_cuda import pmtrec_cuda

    for T in (1, 2, 3, 5):
        G = _G(T)
        R = G.shape[1]
        Rd = cuda.to_device(np.array([R]))
        out = cuda.device_array((R, D), np.float32)
        ew_cuda[blocks(R * D), THREADS](cuda.to_device(G), Rd, out)
        np.testing.assert_array_equal(out.copy_to_host(), EW()(G))
        diff(f"ew T={T}", EW()(G), out.copy_to_host())
        for drop in (False, True):
            W = np.empty((R, T))
            g = pmtrec_combine(G, 1.1, 1e-4, 7, drop, out_weights=W)
            Wd = cuda.device_array((R, T))
            pmtrec_cuda[blocks(R), THREADS](cuda.to_device(G), Rd, focus_factor(1.1, 7), 1e-4, drop, out, Wd)
            assert diff(f"pmtrec weights T={T} drop={drop}", W, Wd.copy_to_host())[1] < 1e-12
            assert diff(f"pmtrec g T={T} drop={drop}", g, out.copy_to_host())[1] < 1e-6


def test_exp_row_form_matches_block_form():
    """The GPU's scalar exp (exp_nonpositive1) gives the bits of the CPU's vector exp."""
    from numba import njit
    from pmtnumba.combiners.pmtrec import exp_nonpositive, exp_nonpositive1

    x = -np.r_[0.0, np.geomspace(1e-12, 1099, 200), np.inf]
    out = np.empty_like(x)
    njit(lambda x, o, b1, b2: exp_nonpositive(x, o, b1, b2))(x, out, np.empty(x.size, np.int64),
                                                               np.empty(x.size, np.int64))
    one = np.array([exp_nonpositive1(v) for v in x])
    np.testing.assert_array_equal(one, out)


def test_adam_sparse_and_dense(data):
    from pmtnumba.optim import Adam
    from pmtnumba.optim.adam_cuda import adam_dense_cuda, adam_sparse_cuda, dense_local_reset_cuda, dense_local_set_cuda

    rng = np.random.default_rng(4)
    for mode in ("sparse", "dense"):
        E = data["E"].copy()
        ad = Adam(E, lr=0.01, weight_decay=1e-3, mode=mode)
        Ed, MVd = cuda.to_device(E), cuda.to_device(ad.MV)
        local = cuda.to_device(np.full(E.shape[0], -1, np.int64))
        for step in range(3):
            rows = np.sort(rng.choice(E.shape[0], 7, replace=False)).astype(np.int64)
            g = rng.normal(size=(7, D)).astype(np.float32)
            ad.step(rows, g)
            f = np.float32
            import math
            args = (f(ad.lr / (1 - ad.b1 ** ad.t)), f(ad.b1), f(1 - ad.b1), f(ad.b2), f(1 - ad.b2), f(ad.eps),
                    f(math.sqrt(1 - ad.b2 ** ad.t)), f(ad.wd))
            rd, Rd, gd = cuda.to_device(rows), cuda.to_device(np.array([7])), cuda.to_device(g)
            if mode == "sparse":
                adam_sparse_cuda[blocks(7), THREADS](Ed, MVd, rd, Rd, gd, *args)
            else:
                dense_local_set_cuda[blocks(7), THREADS](rd, Rd, local)
                adam_dense_cuda[blocks(E.shape[0]), THREADS](Ed, MVd, local, gd, *args)
                dense_local_reset_cuda[blocks(7), THREADS](rd, Rd, local)
        assert diff(f"adam {mode} E after 3 steps", E, Ed.copy_to_host())[0] < 1e-6
        assert diff(f"adam {mode} moments", ad.MV, MVd.copy_to_host())[0] < 1e-6


def test_align_uniform(data):
    """DirectAU on the device (alignment, unique rows, normalisation, tiled uniformity, backward)
    against align_uniform_fill: the same slots, losses to rounding."""
    from pmtnumba.tasks import AlignUniformTask, TaskContext
    from pmtnumba.tasks.align_uniform import align_uniform_fill
    from pmtnumba.training.step_cuda import _AlignUniformDevice

    E = data["E"]
    users, items = data["users"], data["items"]
    S = 4 * B
    rows, grads = np.full(S, -1, np.int64), np.zeros((S, D), np.float32)
    n, loss, *_ = align_uniform_fill(E, users, items + N_U, 0.7, 1e-12, rows, grads)
    ctx = TaskContext(n_users=N_U, n_items=N_I, train_users=users, train_items=items, train_indptr=None,
                      train_indices=None)
    dt = _AlignUniformDevice(AlignUniformTask(ctx, 0, gamma=0.7), B, N_U, N_U + N_I, D)
    gr, gg = cuda.to_device(np.full(S, -1, np.int64)), cuda.to_device(np.zeros((S, D), np.float32))
    info = cuda.to_device(np.zeros(4))
    dt.run(cuda.to_device(E), cuda.to_device(users), cuda.to_device(items), None, B, KEY, gr, gg)
    dt.finish(gr, info, 0, 1)
    np.testing.assert_array_equal(gr.copy_to_host()[:n], rows[:n])
    assert (gr.copy_to_host()[n:] == -1).all()
    # the CPU computes the uniformity weights in E's precision (float32, ~1e-6 relative), the twin
    # in float64 (docs/gpu.md): slots to 1e-5 of the largest slot entry, the loss to 1e-6
    ab = diff("align_uniform slots", grads[:n], gg.copy_to_host()[:n])[0]
    assert ab < 1e-5 * np.abs(grads[:n]).max()
    h = info.copy_to_host()
    assert h[1] == B
    assert diff("align_uniform loss", [loss], [h[0]])[1] < 1e-6
