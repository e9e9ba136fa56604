"""The CUDA twin of full-ranking evaluation (pmtnumba.evaluation.topk_cuda) against the CPU path.

Runs in numba's CUDA simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1 unless
PMTNUMBA_REAL_GPU=1), so the inputs are tiny. What must hold:

- the top-K kernel, given the same float32 scores, returns exactly the CPU kernel's ids and
  scores (bit for bit), with ties, NaN / +-inf / -0.0 scores, heavy masking and K larger than the
  number of rankable items, for several block shapes; and two runs agree;
- ``topk_for_users`` / ``evaluate`` with ``device="cuda"`` equal the CPU ones: identical ids and
  metrics; scores identical when every product and sum is exact (small-integer embeddings, many
  ties), within float32 rounding otherwise (the GEMMs sum in different orders).
"""

import subprocess
import sys

import numpy as np
import pytest

from pmtnumba.evaluation import csr_from_pairs, evaluate, topk_for_users
from pmtnumba.evaluation.topk import _key, plain_score, rankable, ranks_before, topk_rows, union_of


def csr(rows, n_cols=None):
    users = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    items = np.concatenate([np.asarray(r, np.int64) for r in rows]) if rows else np.zeros(0)
    return csr_from_pairs(users.astype(np.int32), items.astype(np.int32), len(rows))


def split(rng, n_users, n_items, dense_users=()):
    """Random train / valid / test rows; ``dense_users`` get almost every item in train."""
    train, valid, test = [], [], []
    for u in range(n_users):
        if u in dense_users:
            a = rng.permutation(n_items)
            r = u % 4  # items left rankable: 0..3 (none: and no held-out item)
            train.append(sorted(a[r:].tolist()))
            valid.append([])
            test.append([int(a[0])] if r else [])
            continue
        a = rng.choice(n_items, size=int(rng.integers(0, 25)), replace=False)
        c1, c2 = sorted(rng.integers(0, a.size + 1, size=2))
        train.append(sorted(a[:c1].tolist()))
        valid.append(sorted(a[c1:c2].tolist()))
        test.append(sorted(a[c2:].tolist()))
    return csr(train), csr(valid), csr(test)


def bits(x):
    return np.ascontiguousarray(x, np.float32).view(np.int32)


# ---------------------------------------------------------------------------------------------
# Shared math (CPU only: no simulator needed)
# ---------------------------------------------------------------------------------------------


def test_shared_order_is_the_cpu_key_order():
    """The CUDA kernel orders candidates with ranks_before; the CPU key kernel with int64 keys.
    Both must be the same total order on rankable scores (ties, -0.0 == 0.0, +inf)."""
    rng = np.random.default_rng(3)
    vals = np.array([0.0, -0.0, 1.5, -1.5, np.inf, 3e38, -3e38, 1e-45, -1e-45], np.float32)
    s = np.concatenate([vals, rng.choice(vals, 30), rng.standard_normal(20).astype(np.float32)])
    ids = rng.permutation(s.size).astype(np.int64)
    keys = [_key(np.float32(a), int(i)) for a, i in zip(s, ids)]
    for x in range(s.size):
        for y in range(s.size):
            if x != y:
                assert ranks_before(s[x], ids[x], s[y], ids[y]) == (keys[x] > keys[y])
    assert not rankable(np.float32(np.nan)) and not rankable(np.float32(-np.inf))
    assert rankable(np.float32(np.inf)) and rankable(np.float32(-3e38))
    z = plain_score(np.float32(-0.0))
    assert z == 0 and not np.signbit(z)


def test_cpu_path_never_imports_numba_cuda():
    code = (
        "import sys, numpy as np\n"
        "from pmtnumba.evaluation import evaluate, topk_for_users, csr_from_pairs\n"
        "u = np.ones((3, 2), np.float32); i = np.ones((4, 2), np.float32)\n"
        "h = csr_from_pairs(np.array([0, 1], np.int32), np.array([1, 2], np.int32), 3)\n"
        "evaluate(u, i, h, ks=(2,)); topk_for_users(u, i, [0, 2], k=2)\n"
        "bad = [m for m in sys.modules if m.startswith('numba.cuda') or m == 'numba_cuda']\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_device():
    u = np.ones((3, 2), np.float32)
    h = csr([[0], [], [1]])
    with pytest.raises(ValueError, match="device must be one of"):
        evaluate(u, u, h, device="gpu")
    with pytest.raises(ValueError, match="device must be one of"):
        topk_for_users(u, u, [0], k=1, device="GPU")


# ---------------------------------------------------------------------------------------------
# The top-K kernel on given scores (no GEMM): bit-for-bit equal to the CPU kernel
# ---------------------------------------------------------------------------------------------


def _gpu_topk_rows(cuda, scores, rows, ex, k, threads, per_thread):
    from pmtnumba.evaluation.topk_cuda import _device_csr, topk_rows_cuda

    n = scores.shape[0]
    oi = cuda.device_array((n, k), np.int32)
    os_ = cuda.device_array((n, k), np.float32)
    d_exp, d_exi = _device_csr(ex)
    topk_rows_cuda(k, threads, per_thread)[n, threads](
        cuda.to_device(scores), cuda.to_device(rows), d_exp, d_exi, oi, os_
    )
    return oi.copy_to_host(), os_.copy_to_host()


def test_topk_kernel_equals_cpu_kernel(cuda_sim):
    rng = np.random.default_rng(7)
    n, n_items, n_users = 7, 64, 10
    scores = (rng.integers(-4, 5, size=(n, n_items)) / 2).astype(np.float32)  # many ties
    scores[0, ::7] = np.nan
    scores[1, ::5] = -np.inf
    scores[2, [3, 40, 63]] = np.inf
    scores[3] = 0.0
    scores[3, ::2] = -0.0  # ties of 0.0 and -0.0: the lower id wins
    scores[4, 50:] = 9.0  # the best items come late (after several selects)
    rows = rng.permutation(n_users)[:n].astype(np.int64)
    ex_rows = [sorted(rng.choice(n_items, size=int(rng.integers(0, 20)), replace=False).tolist())
               for _ in range(n_users)]
    ex_rows[rows[5]] = list(range(n_items))  # nothing rankable
    ex_rows[rows[6]] = [j for j in range(n_items) if j not in (4, 50)]  # 2 rankable < K
    ex_rows[rows[1]] = list(range(0, n_items, 2))  # half masked, plus -inf scores
    ex = union_of(csr(ex_rows), n_users, n_items)
    for k, threads, per_thread in ((70, 8, 2), (1, 4, 3), (5, 8, 2)):
        ids = np.empty((n, k), np.int32)
        sc = np.empty((n, k), np.float32)
        topk_rows(scores, rows, ex[0], ex[1], ids, sc)
        g_ids, g_sc = _gpu_topk_rows(cuda_sim, scores, rows, ex, k, threads, per_thread)
        np.testing.assert_array_equal(g_ids, ids, err_msg=f"k={k}")
        np.testing.assert_array_equal(bits(g_sc), bits(sc), err_msg=f"k={k}")
        if k == 70:  # K > items: the rankable ones, then padding
            assert (ids[5] == -1).all() and (ids[6, 2:] == -1).all()
            assert set(ids[6, :2]) == {4, 50} and (ids[0] >= 0).sum() == n_items - len(
                set(range(0, n_items, 7)) | set(ex_rows[rows[0]]))
    # the append order inside a block varies from run to run; the result must not
    again = _gpu_topk_rows(cuda_sim, scores, rows, ex, 5, 8, 2)
    np.testing.assert_array_equal(again[0], g_ids)
    np.testing.assert_array_equal(bits(again[1]), bits(g_sc))


# ---------------------------------------------------------------------------------------------
# topk_for_users / evaluate with device="cuda" (GEMM + top-K) against the CPU
# ---------------------------------------------------------------------------------------------


def test_cuda_evaluation_exact_scores_with_ties(cuda_sim, small_cuda_blocks):
    """Small-integer embeddings: every score is exact in float32 whatever the summation order,
    so ids, scores and metrics must be identical; scores tie a lot."""
    rng = np.random.default_rng(11)
    n_users, n_items, d = 10, 60, 5
    ue = rng.integers(-1, 2, size=(n_users, d)).astype(np.float32)
    ie = rng.integers(-1, 2, size=(n_items, d)).astype(np.float32)
    train, valid, test = split(rng, n_users, n_items, dense_users=(1, 2, 3, 4))
    users = np.arange(n_users)
    for exclude in ([train], [train, valid]):
        c_ids, c_sc = topk_for_users(ue, ie, users, exclude, k=8, return_scores=True)
        g_ids, g_sc = topk_for_users(
            ue, ie, users, exclude, k=8, return_scores=True, chunk_size=6, device="cuda"
        )
        np.testing.assert_array_equal(g_ids, c_ids)
        np.testing.assert_array_equal(bits(g_sc), bits(c_sc))
    assert (c_ids[4] == -1).all() and (c_ids[1, 1:] == -1).all()  # K > rankable items
    assert (np.diff(test[0]) == 0).any()  # some users have no held-out item
    ks = (1, 3, 8)
    for held, exclude in ((valid, [train]), (test, [train, valid])):
        cpu = evaluate(ue, ie, held, exclude, ks=ks)
        gpu = evaluate(ue, ie, held, exclude, ks=ks, device="cuda")
        assert gpu == cpu and 0 < gpu["n_users"] < n_users


def test_cuda_evaluation_random_floats_device_inputs(cuda_sim, small_cuda_blocks):
    """Random float embeddings, given as device arrays: identical ids and metrics, scores within
    float32 rounding (different summation orders)."""
    rng = np.random.default_rng(5)
    n_users, n_items, d = 12, 80, 8
    ue = rng.standard_normal((n_users, d)).astype(np.float32)
    ie = rng.standard_normal((n_items, d)).astype(np.float32)
    train, valid, _ = split(rng, n_users, n_items, dense_users=(2,))
    users = np.arange(n_users)
    d_ue, d_ie = cuda_sim.to_device(ue), cuda_sim.to_device(ie)
    c_ids, c_sc = topk_for_users(ue, ie, users, [train], k=10, return_scores=True)
    g_ids, g_sc = topk_for_users(d_ue, d_ie, users, [train], k=10, return_scores=True,
                                 device="cuda")
    np.testing.assert_array_equal(g_ids, c_ids)
    ok = c_ids >= 0
    exact = np.einsum("ud,ukd->uk", ue.astype(np.float64), ie.astype(np.float64)[np.maximum(c_ids, 0)])
    assert np.abs(g_sc[ok] - c_sc[ok]).max() <= 4e-6 * max(1.0, np.abs(exact[ok]).max())
    assert np.abs(g_sc[ok] - exact[ok]).max() <= 4e-6 * max(1.0, np.abs(exact[ok]).max())
    assert evaluate(d_ue, d_ie, valid, [train], ks=(5, 10), device="cuda") == evaluate(
        ue, ie, valid, [train], ks=(5, 10)
    )


def test_cuda_evaluation_default_block_shape(cuda_sim):
    """The production top-K block (TOPK_THREADS x TOPK_PER_THREAD) on a tiny problem."""
    rng = np.random.default_rng(2)
    ue = rng.integers(-2, 3, size=(3, 4)).astype(np.float32)
    ie = rng.integers(-2, 3, size=(40, 4)).astype(np.float32)
    train = csr([[1, 2, 3], [], list(range(0, 40, 3))])
    c = topk_for_users(ue, ie, [0, 1, 2], train, k=12, return_scores=True)
    g = topk_for_users(ue, ie, [2, 0, 1], train, k=12, return_scores=True, device="cuda")
    np.testing.assert_array_equal(g[0], c[0][[2, 0, 1]])
    np.testing.assert_array_equal(bits(g[1]), bits(c[1][[2, 0, 1]]))


def test_cuda_rejects_bad_device_arrays(cuda_sim):
    d64 = cuda_sim.to_device(np.ones((3, 2), np.float64))
    with pytest.raises(ValueError, match="float32"):
        topk_for_users(d64, np.ones((4, 2), np.float32), [0], k=1, device="cuda")


def test_benchmark_helpers(cuda_sim, small_cuda_blocks):
    """The timing and comparison helpers bench_gpu.py calls (pmtnumba.evaluation.bench)."""
    from pmtnumba.evaluation.bench import benchmark_eval, compare_devices

    rng = np.random.default_rng(9)
    ue = rng.standard_normal((6, 4)).astype(np.float32)
    ie = rng.standard_normal((30, 4)).astype(np.float32)
    train, valid, _ = split(rng, 6, 30)
    cmp = compare_devices(ue, ie, np.arange(6), [train], k=5)
    assert cmp["rows"] == 6 and cmp["identical_rows"] == 6 and cmp["first_mismatch"] is None
    assert cmp["max_abs_score_diff"] <= 1e-5
    cpu = benchmark_eval(ue, ie, valid, [train], device="cpu", ks=(5,), repeats=1, threads=1)
    gpu = benchmark_eval(cuda_sim.to_device(ue), cuda_sim.to_device(ie), valid, [train],
                         device="cuda", ks=(5,), repeats=1)
    assert gpu["metrics"] == cpu["metrics"] and gpu["seconds"] > 0 and cpu["threads"] == 1
