"""Tests of pmtnumba.evaluation: top-K kernel, metrics, chunked full-ranking evaluation.

The hand-worked cases write every number out, so that a reader can check the definitions of
SPEC section 6 against the code. log2 values used below:
    1/log2(2) = 1, 1/log2(3) = 0.6309298, 1/log2(4) = 0.5, 1/log2(5) = 0.4306766
"""

import numba
import numpy as np
import pytest

from pmtnumba.evaluation import (
    csr_from_pairs,
    csr_union,
    evaluate,
    metrics_from_scores,
    metrics_from_topk,
    topk_for_users,
    topk_from_scores,
)
from pmtnumba.evaluation.ranking import auto_chunk_size
from pmtnumba.evaluation.topk import (
    check_csr,
    topk_rows_heap,
    topk_tile_finish,
    topk_tile_update,
)

from .conftest import several_threads

L3 = 1.0 / np.log2(3.0)  # 0.6309298
L5 = 1.0 / np.log2(5.0)  # 0.4306766


def csr(rows, n):
    """CSR from a list of item lists (test helper)."""
    users = [u for u, r in enumerate(rows) for _ in r]
    items = [i for r in rows for i in r]
    return csr_from_pairs(np.array(users, np.int64), np.array(items, np.int64), n)


# ---------------------------------------------------------------------------------------------
# CSR helpers
# ---------------------------------------------------------------------------------------------


def test_csr_from_pairs_sorts_and_deduplicates():
    indptr, indices = csr_from_pairs([2, 0, 2, 2, 0], [5, 3, 1, 5, 3], 4)
    assert indptr.dtype == np.int64 and indices.dtype == np.int32
    assert indptr.tolist() == [0, 1, 1, 3, 3]  # user 0: {3}; user 1: {}; user 2: {1, 5}; 3: {}
    assert indices.tolist() == [3, 1, 5]
    with pytest.raises(ValueError):
        csr_from_pairs([4], [0], 4)  # user id out of range
    with pytest.raises(ValueError):
        csr_from_pairs([0], [-1], 4)


def test_csr_union_and_check():
    a = csr([[1, 4], [], [2]], 3)
    b = csr([[0, 4, 7], [3], []], 3)
    p, i = csr_union(a, b)
    assert p.tolist() == [0, 4, 5, 6]
    assert i.tolist() == [0, 1, 4, 7, 3, 2]
    with pytest.raises(ValueError):
        check_csr((np.array([0, 2]), np.array([3, 1])), "x")  # unsorted row
    check_csr((np.array([0, 1, 2]), np.array([3, 1])), "x")  # sorted within each row: fine


# ---------------------------------------------------------------------------------------------
# Hand-worked metric cases
# ---------------------------------------------------------------------------------------------

# Six items 0..5, four users. K = 1, 3, 5.
SCORES = np.array(
    [
        [0.5, 0.9, 0.9, 0.1, 0.9, 0.3],  # user 0
        [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],  # user 1: every score tied
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # user 2: no held-out item -> skipped
        [0.9, 0.9, 0.9, 0.9, 0.7, 0.6],  # user 3
    ],
    dtype=np.float32,
)
TRAIN = [[2], [0, 1], [], [0, 1, 2, 3]]
HELDOUT = [[4, 5], [2], [], [5]]
# Ranked lists (excluded items removed; equal scores -> lower item id first):
#   user 0: item 2 masked; 1 (0.9) and 4 (0.9) tie -> 1 before 4; then 0 (0.5), 5 (0.3), 3 (0.1)
#           list [1, 4, 0, 5, 3]; held-out {4, 5} at ranks 2 and 4
#   user 1: items 0, 1 masked; 2, 3, 4, 5 all 0.2 -> [2, 3, 4, 5, -1] (4 rankable < K=5: padding)
#           held-out {2} at rank 1
#   user 3: items 0-3 masked (the top scores!); [4, 5, -1, -1, -1]; held-out {5} at rank 2
EXPECTED_TOPK = [[1, 4, 0, 5, 3], [2, 3, 4, 5, -1], [5, 4, 3, 2, 1], [4, 5, -1, -1, -1]]
#
# Per user (u0, u1, u3), then the mean over the 3 evaluated users:
#   @1: u0 list [1]: no hit -> all 0.            u1 [2]: hit at 1 -> recall 1, ndcg 1, hr 1,
#       precision 1, mrr 1.                      u3 [4]: no hit -> 0.
#       mean: recall = ndcg = hr = precision = mrr = 1/3
#   @3: u0 [1,4,0]: 1 hit at rank 2 of |T|=2: recall 1/2, DCG = 1/log2(3) = 0.6309298,
#       IDCG over min(2,3)=2 positions = 1 + 0.6309298 = 1.6309298 -> ndcg 0.3868528,
#       hr 1, precision 1/3, mrr 1/2
#       u1 [2,3,4]: recall 1, ndcg 1 (IDCG over min(1,3)=1 position), hr 1, precision 1/3, mrr 1
#       u3 [4,5,-1]: hit at rank 2: recall 1, ndcg 0.6309298/1 = 0.6309298, hr 1,
#       precision 1/3, mrr 1/2
#       mean: recall (0.5+1+1)/3 = 0.8333333; ndcg (0.3868528+1+0.6309298)/3 = 0.6725942;
#       hr 1; precision 1/3; mrr (0.5+1+0.5)/3 = 0.6666667
#   @5: u0 [1,4,0,5,3]: hits at 2 and 4: recall 1, DCG = 0.6309298 + 0.4306766 = 1.0616064,
#       ndcg 1.0616064/1.6309298 = 0.6509209, hr 1, precision 2/5, mrr 1/2
#       u1 [2,3,4,5,-1]: recall 1, ndcg 1, hr 1, precision 1/5 (padding is not a hit, K stays 5),
#       mrr 1
#       u3 [4,5,-1,-1,-1]: recall 1, ndcg 0.6309298, hr 1, precision 1/5, mrr 1/2
#       mean: recall 1; ndcg (0.6509209+1+0.6309298)/3 = 0.7606169; hr 1;
#       precision (0.4+0.2+0.2)/3 = 0.2666667; mrr 0.6666667
EXPECTED = {
    "recall@1": 1 / 3, "ndcg@1": 1 / 3, "hr@1": 1 / 3, "precision@1": 1 / 3, "mrr@1": 1 / 3,
    "recall@3": 2.5 / 3,
    "ndcg@3": (L3 / (1 + L3) + 1 + L3) / 3,
    "hr@3": 1.0, "precision@3": 1 / 3, "mrr@3": 2 / 3,
    "recall@5": 1.0,
    "ndcg@5": ((L3 + L5) / (1 + L3) + 1 + L3) / 3,
    "hr@5": 1.0, "precision@5": 0.8 / 3, "mrr@5": 2 / 3,
    "n_users": 3,
}


def test_hand_worked_numbers_are_what_the_comments_say():
    assert EXPECTED["ndcg@3"] == pytest.approx(0.6725942, abs=1e-6)
    assert EXPECTED["ndcg@5"] == pytest.approx(0.7606169, abs=1e-6)


def test_topk_ties_exclusion_padding():
    top, sc = topk_from_scores(SCORES, 5, exclude=csr(TRAIN, 4), return_scores=True)
    assert top.dtype == np.int32
    assert top.tolist() == EXPECTED_TOPK
    assert sc[1].tolist()[:4] == [np.float32(0.2)] * 4 and sc[1, 4] == -np.inf
    # no exclusion at all: user 3's masked top items come back, ties by item id
    top = topk_from_scores(SCORES, 3)
    assert top.tolist() == [[1, 2, 4], [0, 1, 2], [5, 4, 3], [0, 1, 2]]


def test_metrics_from_scores_hand_worked():
    m = metrics_from_scores(SCORES, csr(HELDOUT, 4), exclude=[csr(TRAIN, 4)], ks=(1, 3, 5))
    assert set(m) == set(EXPECTED)
    for key, val in EXPECTED.items():
        assert m[key] == pytest.approx(val, abs=1e-12), key


def test_metrics_from_topk_hand_worked():
    h = csr(HELDOUT, 4)
    m = metrics_from_topk(np.array(EXPECTED_TOPK), h[0], h[1], ks=(5, 1, 3))
    for key, val in EXPECTED.items():
        assert m[key] == pytest.approx(val, abs=1e-12), key
    # the same with the skipped user's row left out and users= naming the rows
    top = np.array(EXPECTED_TOPK)[[0, 1, 3]]
    m2 = metrics_from_topk(top, h[0], h[1], ks=(1, 3, 5), users=np.array([0, 1, 3]))
    assert m2 == m


def test_idcg_truncation():
    # |T| = 5 held-out items {10..14}, K = 3, list [10, 11, 12] is all hits:
    #   recall 3/5 = 0.6; DCG = 1 + 0.6309298 + 0.5 = 2.1309298; IDCG over min(5, 3) = 3
    #   positions = 2.1309298 -> ndcg 1.0 (an IDCG over all 5 would give 2.1309/2.9485 = 0.7227);
    #   hr 1; precision 1; mrr 1.
    # A second user, |T| = 1 = {7}, list [3, 7, 9]: recall 1, ndcg 0.6309298 (IDCG over 1
    #   position = 1), hr 1, precision 1/3, mrr 1/2.
    h = csr([list(range(10, 15)), [7]], 2)
    m = metrics_from_topk(np.array([[10, 11, 12], [3, 7, 9]]), h[0], h[1], ks=(3,))
    assert m["recall@3"] == pytest.approx((0.6 + 1) / 2)
    assert m["ndcg@3"] == pytest.approx((1.0 + L3) / 2)
    assert m["hr@3"] == 1.0
    assert m["precision@3"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["mrr@3"] == pytest.approx(0.75)
    assert m["n_users"] == 2


def test_no_evaluated_user_gives_nan():
    h = csr([[], []], 2)
    m = metrics_from_topk(np.zeros((2, 2), np.int32), h[0], h[1], ks=(2,))
    assert m["n_users"] == 0 and np.isnan(m["recall@2"])


def test_bad_arguments():
    h = csr(HELDOUT, 4)
    with pytest.raises(ValueError):
        metrics_from_topk(np.zeros((4, 3), np.int32), h[0], h[1], ks=(5,))  # 5 > K = 3
    with pytest.raises(ValueError):
        metrics_from_topk(np.zeros((3, 5), np.int32), h[0], h[1])  # 3 rows, 4 users, no users=
    with pytest.raises(ValueError):
        topk_from_scores(SCORES, 0)


# ---------------------------------------------------------------------------------------------
# Random data against a plain NumPy reference
# ---------------------------------------------------------------------------------------------


def ref_topk(scores, k, ex_rows):
    """argsort reference: rankable = not excluded, not NaN, not -inf; sort by (-score, item id)."""
    n, n_items = scores.shape
    out = np.full((n, k), -1, np.int64)
    for b in range(n):
        ok = np.ones(n_items, bool)
        ok[list(ex_rows[b])] = False
        ok &= scores[b] > -np.inf  # false for NaN too
        items = np.flatnonzero(ok)
        order = np.lexsort((items, -scores[b, items].astype(np.float64)))[:k]
        out[b, : order.size] = items[order]
    return out


def ref_metrics(top, held_rows, ks):
    vals = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg", "hr", "precision", "mrr")}
    n = 0
    for b, t in enumerate(held_rows):
        t = set(t)
        if not t:
            continue
        n += 1
        for k in ks:
            lst = [int(x) for x in top[b, :k]]
            hit = [x in t for x in lst]
            ranks = [r + 1 for r, h in enumerate(hit) if h]
            dcg = sum(1 / np.log2(r + 1) for r in ranks)
            idcg = sum(1 / np.log2(r + 1) for r in range(1, min(len(t), k) + 1))
            vals[f"recall@{k}"].append(len(ranks) / len(t))
            vals[f"ndcg@{k}"].append(dcg / idcg)
            vals[f"hr@{k}"].append(float(bool(ranks)))
            vals[f"precision@{k}"].append(len(ranks) / k)
            vals[f"mrr@{k}"].append(1 / ranks[0] if ranks else 0.0)
    out = {key: float(np.mean(v)) for key, v in vals.items()}
    out["n_users"] = n
    return out


def random_split(rng, n_users, n_items, n_train, n_held):
    train, held = [], []
    for _ in range(n_users):
        a = rng.choice(n_items, size=rng.integers(0, n_train + 1) + rng.integers(0, n_held + 1),
                       replace=False)
        cut = rng.integers(0, a.size + 1)
        train.append(sorted(a[:cut].tolist()))
        held.append(sorted(a[cut:].tolist()))
    return train, held


def test_topk_kernel_matches_reference_with_ties_nan_and_threads():
    rng = np.random.default_rng(1)
    n, n_items, k = 300, 700, 50
    # integer-valued scores in a small range: many ties; some NaNs and -infs (never ranked)
    scores = rng.integers(-20, 20, size=(n, n_items)).astype(np.float32)
    scores[rng.random((n, n_items)) < 0.02] = np.nan
    scores[rng.random((n, n_items)) < 0.02] = -np.inf
    scores[7] = np.nan  # nothing rankable: all padding
    ex_rows, _ = random_split(rng, n, n_items, 80, 0)
    ex_rows[3] = list(range(0, n_items, 2)) + list(range(1, 640, 2))  # 30 rankable < k
    ex = csr(ex_rows, n)
    expect = ref_topk(scores, k, ex_rows)
    old = numba.get_num_threads()
    try:
        results = []
        for threads in (1, several_threads()):
            numba.set_num_threads(threads)
            results.append(topk_from_scores(scores, k, exclude=ex))
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(results[0], expect)
    np.testing.assert_array_equal(results[1], expect)
    assert (results[0][7] == -1).all() and (results[0][3, 30:] == -1).all()
    for b in range(n):  # excluded items never appear
        assert not set(results[0][b].tolist()) & set(ex_rows[b])


def tiled_topk(scores, k, ex, tile):
    """The key kernel fed ``tile`` items at a time (as the tiled evaluation does); also scores."""
    n, n_items = scores.shape
    sizes = np.zeros(n, np.int64)
    keys = np.empty((n, k), np.int64)
    rows = np.arange(n, dtype=np.int64)
    for c in range(0, n_items, tile):
        part = np.ascontiguousarray(scores[:, c : c + tile])
        topk_tile_update(part, c, rows, ex[0], ex[1], sizes, keys)
    items = np.empty((n, k), np.int32)
    sc = np.empty((n, k), np.float32)
    topk_tile_finish(sizes, keys, items, sc)
    return items, sc


def heap_topk(scores, k, ex):
    """The heap kernel (the float64 path) on the same scores, as a second implementation."""
    n = scores.shape[0]
    items = np.empty((n, k), np.int32)
    sc = np.empty((n, k), scores.dtype)
    topk_rows_heap(scores, np.arange(n, dtype=np.int64), ex[0], ex[1], items, sc)
    return items, sc


def check_all_paths(scores, k, ex_rows, tiles=(37, 300, 1000)):
    """Key kernel (whole rows and several tile widths), heap kernel, float64 and the lexsort
    reference must give the same ids; returned scores must be the scores of those ids."""
    n = scores.shape[0]
    ex = csr(ex_rows, n)
    expect = ref_topk(scores, k, ex_rows)
    top, sc = topk_from_scores(scores, k, exclude=ex, return_scores=True)
    np.testing.assert_array_equal(top, expect)
    got = np.where(top >= 0, scores[np.arange(n)[:, None], np.maximum(top, 0)], -np.inf)
    assert np.array_equal(sc, got)  # == (so a -0.0 score may come back as 0.0)
    np.testing.assert_array_equal(topk_from_scores(scores.astype(np.float64), k, exclude=ex),
                                  expect)
    np.testing.assert_array_equal(heap_topk(scores, k, ex)[0], expect)
    for tile in tiles:
        items, sc_t = tiled_topk(scores, k, ex, tile)
        np.testing.assert_array_equal(items, expect, err_msg=f"tile {tile}")
        assert np.array_equal(sc_t, sc)


def test_key_kernel_ties_at_the_bound_and_across_flushes():
    # long rows (the group-maxima bound is used), scores on a few values: the bound and the
    # buffer thresholds fall on tied scores, which must still rank by item id
    rng = np.random.default_rng(11)
    n, n_items = 60, 3000
    scores = rng.integers(0, 6, size=(n, n_items)).astype(np.float32)
    scores[rng.random((n, n_items)) < 0.01] = np.nan
    scores[rng.random((n, n_items)) < 0.01] = -np.inf
    scores[1] = 1.0  # one value everywhere: the top K are the K lowest unmasked ids
    scores[2, :] = np.arange(n_items, dtype=np.float32)  # increasing: every item is a candidate
    scores[3, :] = -np.arange(n_items, dtype=np.float32)  # decreasing
    scores[4, :] = np.nan
    scores[4, 2990] = 0.0  # a single rankable item
    scores[5, :2500] = -np.inf  # all rankable items in the last tiles
    ex_rows, _ = random_split(rng, n, n_items, 60, 0)
    ex_rows[6] = sorted(rng.choice(n_items, 700, replace=False).tolist())  # bound skipped: flushes
    ex_rows[7] = list(range(0, n_items, 2))  # every other item masked
    for k in (1, 40, 130):
        check_all_paths(scores, k, ex_rows)


def test_key_kernel_random_floats_special_values_and_large_k():
    rng = np.random.default_rng(12)
    n, n_items = 40, 2500
    scores = (rng.standard_normal((n, n_items)) * 0.1).astype(np.float32)
    scores = np.round(scores, 2)  # many ties among floats too
    scores[0, [5, 9, 700]] = np.inf  # +inf ranks first (ties by id)
    scores[1, :] = rng.choice(np.array([-0.0, 0.0, 1e-45, -1e-45], np.float32), n_items)
    scores[2, 100:2400] = np.nan
    scores[3, :] = np.float32(3.4028235e38)  # the largest float everywhere
    ex_rows, _ = random_split(rng, n, n_items, 30, 0)
    ex_rows[4] = list(range(n_items - 5))  # 5 rankable items, K larger
    # the 200 best items masked: the group maxima that reach the bound are mostly masked items,
    # which the bound must allow for (the (K + m)-th largest group maximum, not the K-th)
    scores[5] = rng.permutation(n_items).astype(np.float32)
    ex_rows[5] = sorted(np.argsort(-scores[5])[:200].tolist())
    check_all_paths(scores, 40, ex_rows)
    check_all_paths(scores, 700, ex_rows, tiles=(300, 2048))  # K above the 512-key buffer


def test_evaluate_chunked_unchunked_reference_exact():
    # small-integer embeddings: every score is an exact integer in float32, so any GEMM blocking
    # gives bit-identical scores, and ties are frequent (tie-break must be by item id)
    rng = np.random.default_rng(2)
    n_users, n_items, d = 120, 400, 8
    ue = rng.integers(-2, 3, size=(n_users, d)).astype(np.float32)
    ie = rng.integers(-2, 3, size=(n_items, d)).astype(np.float32)
    train_rows, held_rows = random_split(rng, n_users, n_items, 40, 10)
    valid_rows = [sorted(set(rng.choice(n_items, 3).tolist()) - set(t) - set(h))
                  for t, h in zip(train_rows, held_rows)]
    train, held, valid = csr(train_rows, n_users), csr(held_rows, n_users), csr(valid_rows, n_users)
    ks = (5, 10, 20, 40)
    scores = ue @ ie.T
    ex_rows = [sorted(set(a) | set(b)) for a, b in zip(train_rows, valid_rows)]
    expect = ref_metrics(ref_topk(scores, 40, ex_rows), held_rows, ks)
    results = [
        evaluate(ue, ie, held, exclude=[train, valid], ks=ks, chunk_size=c, strategy=st)
        for st in ("auto", "rows")
        for c in (None, 1, 7, 64, 10**6)
    ]
    # a tiny buffer budget forces one-user chunks
    results.append(evaluate(ue, ie, held, exclude=[train, valid], ks=ks, max_buffer_bytes=1))
    results.append(metrics_from_scores(scores, held, exclude=[train, valid], ks=ks))
    for r in results:
        assert r == results[0]  # bit-identical, whatever the chunking
    assert results[0]["n_users"] == sum(1 for h in held_rows if h)
    for key, val in expect.items():
        assert results[0][key] == pytest.approx(val, abs=1e-12), key


@pytest.mark.skipif(
    __import__("pmtnumba.evaluation.ranking", fromlist=["x"]).resolve_strategy("auto") != "tiled",
    reason="numpy's BLAS has no per-thread thread count here, so the tiled strategy is unavailable",
)
def test_tiles_smaller_than_the_item_axis(monkeypatch):
    # the tiled strategy feeds items in tiles; with tiles of 37 items, exclusions, ties and the
    # heap state cross tile boundaries, and the result must equal one pass over whole rows
    from pmtnumba.evaluation import ranking

    monkeypatch.setattr(ranking, "ITEM_TILE", 37)
    rng = np.random.default_rng(7)
    n_users, n_items = 50, 500
    ue = rng.integers(-2, 3, size=(n_users, 6)).astype(np.float32)
    ie = rng.integers(-2, 3, size=(n_items, 6)).astype(np.float32)
    train_rows, _ = random_split(rng, n_users, n_items, 60, 0)
    users = np.arange(n_users)
    top = topk_for_users(ue, ie, users, exclude=csr(train_rows, n_users), k=45, chunk_size=8)
    np.testing.assert_array_equal(top, ref_topk(ue @ ie.T, 45, train_rows))


def test_evaluate_random_float_embeddings_and_subsets():
    rng = np.random.default_rng(3)
    n_users, n_items, d = 90, 500, 16
    ue = rng.standard_normal((n_users, d)).astype(np.float32)
    ie = rng.standard_normal((n_items, d)).astype(np.float32)
    train_rows, held_rows = random_split(rng, n_users, n_items, 30, 8)
    train, held = csr(train_rows, n_users), csr(held_rows, n_users)
    scores = ue @ ie.T
    expect = ref_metrics(ref_topk(scores, 20, train_rows), held_rows, (5, 20))
    got = evaluate(ue, ie, held, exclude=train, ks=(5, 20), chunk_size=16)
    for key, val in expect.items():
        assert got[key] == pytest.approx(val, abs=1e-9), key
    # evaluating a subset of users equals the reference on that subset
    sub = np.arange(0, n_users, 3)
    got = evaluate(ue, ie, held, exclude=[train], ks=(10,), users=sub)
    exp = ref_metrics(ref_topk(scores[sub], 10, [train_rows[u] for u in sub]),
                      [held_rows[u] for u in sub], (10,))
    for key, val in exp.items():
        assert got[key] == pytest.approx(val, abs=1e-9), key


def test_evaluate_same_result_with_1_and_2_threads():
    # random float embeddings: scores are not exact, yet for a fixed chunk size the results must
    # be bit-identical whatever the thread count (fixed-shape single-threaded GEMMs, per-user
    # kernels, fixed-order sums)
    rng = np.random.default_rng(6)
    n_users, n_items, d = 300, 3000, 32
    ue = rng.standard_normal((n_users, d)).astype(np.float32)
    ie = rng.standard_normal((n_items, d)).astype(np.float32)
    train_rows, held_rows = random_split(rng, n_users, n_items, 40, 10)
    train, held = csr(train_rows, n_users), csr(held_rows, n_users)
    old = numba.get_num_threads()
    try:
        res = {}
        for threads in (1, several_threads()):
            numba.set_num_threads(threads)
            for st in ("auto", "rows"):
                res[threads, st] = evaluate(ue, ie, held, exclude=train, chunk_size=16, strategy=st)
    finally:
        numba.set_num_threads(old)
    assert res[1, "auto"] == res[2, "auto"]
    assert res[1, "rows"] == res[2, "rows"]


def test_topk_for_users():
    rng = np.random.default_rng(4)
    ue = rng.integers(-2, 3, size=(30, 4)).astype(np.float32)
    ie = rng.integers(-2, 3, size=(50, 4)).astype(np.float32)
    train_rows, _ = random_split(rng, 30, 50, 20, 0)
    users = np.array([5, 0, 29, 5])
    top, sc = topk_for_users(ue, ie, users, exclude=[csr(train_rows, 30)], k=12, chunk_size=3,
                             return_scores=True)
    expect = ref_topk((ue @ ie.T)[users], 12, [train_rows[u] for u in users])
    np.testing.assert_array_equal(top, expect)
    np.testing.assert_array_equal(sc, (ue[users] @ ie.T)[np.arange(4)[:, None], top])


def test_metrics_threads_deterministic():
    rng = np.random.default_rng(5)
    n, n_items = 2000, 300
    top = np.argsort(rng.random((n, n_items)), axis=1)[:, :40].astype(np.int32)
    _, held_rows = random_split(rng, n, n_items, 0, 15)
    held = csr(held_rows, n)
    old = numba.get_num_threads()
    try:
        res = []
        for threads in (1, several_threads()):
            numba.set_num_threads(threads)
            res.append(metrics_from_topk(top, held[0], held[1]))
    finally:
        numba.set_num_threads(old)
    assert res[0] == res[1]


def test_auto_chunk_size_bounds_memory():
    assert auto_chunk_size(296_278) * 296_278 * 4 <= 256 * 2**20
    assert auto_chunk_size(17_408) * 17_408 * 4 <= 256 * 2**20
    assert auto_chunk_size(10**9) == 1
