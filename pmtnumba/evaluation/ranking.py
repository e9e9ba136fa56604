"""Full-ranking evaluation of embedding models, in memory-bounded chunks of users.

For every evaluated user we need the score of *every* item (``user_emb[u] @ item_emb.T``) and its
top-K after masking already-seen items. On Epinions (22,167 users x 296,278 items) the full score
matrix would take 26 GB, so it is never formed. Two strategies compute the same thing:

``"tiled"`` (the default where available)
    Users are split into blocks of ``chunk_size`` (default 64). A worker thread takes a block and
    walks the items in tiles of 8,192: ``np.matmul(user_emb[block], item_emb[tile].T,
    out=buf)`` fills a small reused buffer (2 MiB, it stays in cache) with a *single-threaded*
    BLAS GEMM, and :func:`~pmtnumba.evaluation.topk.topk_tile_update` (serial Numba, GIL
    released) feeds the tile into the block's running top-K lists. ``numba.get_num_threads()``
    workers run side by side. Why: on a small shared machine, alternating a multi-threaded BLAS
    call with a Numba ``prange`` region makes two thread pools spin-wait against each other
    (OpenBLAS workers keep spinning after each call), which measured 1.5-5x slower than this;
    and scores written to a 256 MB buffer go to DRAM and back, while a 2 MiB tile does not.
    Every GEMM call has a fixed shape and runs on one thread, so the scores (and hence the
    results) are bit-identical whatever the number of threads.

``"rows"`` (fallback, and for comparison)
    Per chunk of users, one GEMM over all items into a preallocated ``[chunk, I]`` float32
    buffer (at most ``max_buffer_bytes``, 256 MiB: 226 users on Epinions), BLAS threaded as
    numpy configures it, then :func:`~pmtnumba.evaluation.topk.topk_rows`, a Numba ``prange``
    kernel over the chunk's users. Used when numpy's BLAS offers no per-thread thread count
    (``openblas_set_num_threads_local``, OpenBLAS >= 0.3.27, shipped in numpy's wheels).

Both skip excluded items without writing ``-inf`` into the scores (the kernel walks each user's
sorted exclusion list alongside the items), and break score ties by the lower item id. Then
:func:`pmtnumba.evaluation.metrics.metrics_from_topk` computes the metrics from the ``[n, K]``
top-K lists (small: 22,167 x 40 int32 is 3.5 MB). Only users with at least one held-out item
are scored.

Floating point: BLAS rounds a dot product differently depending on the shape of the GEMM call,
so scores may differ in the last bit between ``chunk_size`` values or strategies (which can
swap two items whose scores agree to ~1e-7). With a fixed ``chunk_size`` and strategy, results
are reproducible bit for bit, whatever the thread count.

``device="cuda"`` (both :func:`evaluate` and :func:`topk_for_users`) computes the scores, the
masking and the top-K lists on a GPU with the ``numba.cuda`` kernels of
:mod:`pmtnumba.evaluation.topk_cuda` (imported only then; the CPU path never imports
``numba.cuda``). The embeddings may be host arrays or device arrays (they stay where they are);
only the ``[n, K]`` lists come back, and the metrics are computed on the host by the same
:func:`~pmtnumba.evaluation.metrics.metrics_from_topk`. See docs/gpu_evaluation.md.

CSR convention (the whole project): a per-user item set is ``(indptr int64 [U+1],
indices int32 [nnz])`` with the items of user ``u`` in ``indices[indptr[u]:indptr[u+1]]``,
sorted ascending and distinct. :func:`csr_from_pairs` builds one from interaction pairs.

Typical use::

    from pmtnumba.evaluation import csr_from_pairs, evaluate
    train = csr_from_pairs(tr_users, tr_items, n_users)
    valid = csr_from_pairs(va_users, va_items, n_users)
    test = csr_from_pairs(te_users, te_items, n_users)
    val_metrics = evaluate(E_u, E_i, valid, exclude=[train])
    test_metrics = evaluate(E_u, E_i, test, exclude=[train, valid])
    print(test_metrics["recall@20"], test_metrics["ndcg@20"])
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ..data.csr import csr_from_pairs
from .metrics import metrics_from_topk
from .topk import check_csr, empty_csr, topk_rows, topk_tile_finish, topk_tile_update, union_of

__all__ = [
    "csr_from_pairs",
    "evaluate",
    "topk_for_users",
    "auto_chunk_size",
    "DEFAULT_BUFFER_BYTES",
    "BLOCK_USERS",
    "ITEM_TILE",
]

#: Upper bound on the score buffers (all workers together), in bytes.
DEFAULT_BUFFER_BYTES = 256 * 2**20
#: Users per block in the tiled strategy (the GEMM's M).
BLOCK_USERS = 64
#: Items per tile in the tiled strategy: a [64, 8192] float32 tile is 2 MiB and stays in cache
#: between the GEMM that writes it and the top-K kernel that reads it.
ITEM_TILE = 8192

STRATEGIES = ("auto", "tiled", "rows")
DEVICES = ("cpu", "cuda")


def auto_chunk_size(n_items: int, max_buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> int:
    """Users per chunk of the ``"rows"`` strategy: a float32 ``[chunk, n_items]`` buffer must fit.

    At least 1 user (a single row must fit), at most 4096 users (larger chunks gain nothing).
    Examples: 17,408 items -> 3,855 users (256 MiB); 296,278 items -> 226 users.
    """
    per_row = 4 * max(1, int(n_items))
    return int(max(1, min(4096, int(max_buffer_bytes) // per_row)))


@functools.lru_cache(maxsize=1)
def _blas_set_local_threads():
    """``openblas_set_num_threads_local`` of the OpenBLAS numpy uses (a ctypes function), or None.

    OpenBLAS >= 0.3.27 (the one in numpy's wheels) can set the number of BLAS threads *for the
    calling thread only*; it returns the previous setting. The tiled strategy needs it so that
    each of its workers runs single-threaded GEMMs. Looked up once, in the libraries this process
    has loaded (Linux ``/proc/self/maps``), preferring numpy's own copy.
    """
    try:
        np_dir = os.path.dirname(os.path.dirname(np.__file__))
        paths: list[str] = []
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split()
                path = parts[-1] if len(parts) >= 6 else ""
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
        paths.sort(key=lambda q: 0 if (q.startswith(np_dir) and "numpy" in q) else 1)
        for path in paths:
            fn = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local", None)
            if fn is not None:
                fn.restype = ctypes.c_int
                fn.argtypes = [ctypes.c_int]
                return fn
    except Exception:  # no thread-local control here: the caller falls back to "rows"
        return None
    return None


def _topk_tiled(user_emb, item_emb, rows, ex, k, chunk_size, n_threads, set_local):
    """Tiled strategy (see module doc): worker threads, each owning whole blocks of users."""
    n = rows.size
    n_items = item_emb.shape[0]
    out_items = np.empty((n, k), np.int32)
    out_scores = np.empty((n, k), np.float32)
    if n == 0:
        return out_items, out_scores
    tile = min(ITEM_TILE, n_items)
    local = threading.local()  # per worker: its score buffer

    def run_block(start):
        stop = min(n, start + chunk_size)
        buf = getattr(local, "buf", None)
        if buf is None:
            set_local(1)  # this worker thread's GEMMs run on this thread only
            buf = local.buf = np.empty(chunk_size * tile, np.float32)
        r = rows[start:stop]
        ub = user_emb[r]
        nb = stop - start
        sizes = np.zeros(nb, np.int64)  # how many of its K best keys each user holds
        keys = np.empty((nb, k), np.int64)
        for t0 in range(0, n_items, tile):
            w = min(tile, n_items - t0)
            block = buf[: nb * w].reshape(nb, w)  # C-contiguous view of the buffer
            np.matmul(ub, item_emb[t0 : t0 + w].T, out=block)
            topk_tile_update(block, t0, r, ex[0], ex[1], sizes, keys)
        topk_tile_finish(sizes, keys, out_items[start:stop], out_scores[start:stop])

    starts = range(0, n, chunk_size)
    if n_threads <= 1 or len(starts) == 1:
        previous = set_local(1)  # restore the caller's setting afterwards
        try:
            local.buf = np.empty(chunk_size * tile, np.float32)
            for start in starts:
                run_block(start)
        finally:
            set_local(previous)
    else:
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            for _ in pool.map(run_block, starts):  # re-raises a worker's exception
                pass
    return out_items, out_scores


def _topk_rows_chunked(user_emb, item_emb, rows, ex, k, chunk_size):
    """Rows strategy (see module doc): per chunk one GEMM over all items, then ``topk_rows``."""
    n = rows.size
    n_items = item_emb.shape[0]
    out_items = np.empty((n, k), np.int32)
    out_scores = np.empty((n, k), np.float32)
    if n == 0:
        return out_items, out_scores
    buf = np.empty((chunk_size, n_items), np.float32)  # the only large allocation
    item_t = item_emb.T  # a view: BLAS reads it transposed, nothing is copied
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        r = rows[start:stop]
        nb = stop - start
        block = buf[:nb]
        np.matmul(user_emb[r], item_t, out=block)
        topk_rows(block, r, ex[0], ex[1], out_items[start:stop], out_scores[start:stop])
    return out_items, out_scores


def resolve_strategy(strategy: str = "auto") -> str:
    """The strategy ``"auto"`` stands for here: ``"tiled"`` if per-thread BLAS control exists."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
    if strategy == "rows":
        return "rows"
    if _blas_set_local_threads() is None:
        if strategy == "tiled":
            raise RuntimeError(
                "strategy 'tiled' needs OpenBLAS's openblas_set_num_threads_local (numpy's "
                "wheels have it); use strategy='rows'"
            )
        return "rows"
    return "tiled"


def _chunked_topk(
    user_emb, item_emb, rows, ex, k, chunk_size, max_buffer_bytes, strategy, device="cpu"
):
    """Top-``k`` of ``user_emb[rows] @ item_emb.T`` masked by ``ex``, by the chosen strategy
    (``device="cuda"``: on the GPU, :func:`pmtnumba.evaluation.topk_cuda.topk_cuda`)."""
    n_items = item_emb.shape[0]
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError("chunk_size must be >= 1")
    if device == "cuda":
        from . import topk_cuda  # lazily: the CPU path never imports numba.cuda

        return topk_cuda.topk_cuda(user_emb, item_emb, rows, ex, k, chunk_size, max_buffer_bytes)
    if max_buffer_bytes is None:
        max_buffer_bytes = DEFAULT_BUFFER_BYTES
    if resolve_strategy(strategy) == "tiled":
        n_threads = numba.get_num_threads()
        size = BLOCK_USERS if chunk_size is None else int(chunk_size)
        per_user = 4 * min(ITEM_TILE, n_items)
        cap = max(1, int(max_buffer_bytes) // (per_user * max(1, n_threads)))
        size = max(1, min(size, cap, max(rows.size, 1)))
        return _topk_tiled(
            user_emb, item_emb, rows, ex, k, size, n_threads, _blas_set_local_threads()
        )
    size = auto_chunk_size(n_items, max_buffer_bytes) if chunk_size is None else int(chunk_size)
    size = max(1, min(size, max(rows.size, 1)))
    return _topk_rows_chunked(user_emb, item_emb, rows, ex, k, size)


def _as_f32(x, name):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array")
    return np.ascontiguousarray(x, dtype=np.float32)


def _check_device(device) -> str:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, not {device!r}")
    return device


def _check_embeddings(user_emb, item_emb, device="cpu"):
    """Both embeddings as float32 C-contiguous arrays: host arrays on the CPU; on ``"cuda"``
    device arrays (host ones are copied to the device once, device ones are used in place)."""
    if _check_device(device) == "cuda":
        from . import topk_cuda  # lazily: the CPU path never imports numba.cuda

        topk_cuda.require_gpu()
        user_emb = topk_cuda.as_device_embeddings(user_emb, "user_emb")
        item_emb = topk_cuda.as_device_embeddings(item_emb, "item_emb")
    else:
        user_emb = _as_f32(user_emb, "user_emb")
        item_emb = _as_f32(item_emb, "item_emb")
    if user_emb.shape[1] != item_emb.shape[1]:
        raise ValueError(f"embedding widths differ: {user_emb.shape[1]} vs {item_emb.shape[1]}")
    return user_emb, item_emb


def evaluate(
    user_emb,
    item_emb,
    heldout,
    exclude=None,
    ks=(5, 10, 20, 40),
    chunk_size=None,
    users=None,
    max_buffer_bytes: int | None = None,
    strategy: str = "auto",
    device: str = "cpu",
) -> dict:
    """Full-ranking metrics of embeddings on one held-out split.

    Parameters
    ----------
    user_emb : float [U, d]; item_emb : float [I, d]
        Final user and item representations; the score of (u, i) is ``user_emb[u] @ item_emb[i]``
        computed in float32.
    heldout : CSR ``(indptr, indices)`` over the ``U`` users
        The split's held-out items (validation or test).
    exclude : None, a CSR or a list of CSRs over the ``U`` users
        Items never ranked: ``[train]`` when validating, ``[train, valid]`` when testing.
    ks : iterable of int
        Cut-offs (default 5, 10, 20, 40); lists of ``max(ks)`` items are computed.
    chunk_size : int or None
        Users per block. Default: 64 (tiled strategy) or as many as fit ``max_buffer_bytes``
        (rows strategy, see :func:`auto_chunk_size`). Either way the score buffers stay within
        ``max_buffer_bytes``.
    users : int array or None
        Evaluate only these users (default: all). Users without a held-out item are skipped.
    max_buffer_bytes : int or None
        Budget for the score buffers (default 256 MiB on the CPU; on ``"cuda"`` the device score
        buffer, default 1 GiB).
    strategy : "auto", "tiled" or "rows"
        How scores are computed and fed to the top-K kernel (see the module doc). ``"auto"`` is
        ``"tiled"`` wherever numpy's OpenBLAS allows per-thread BLAS thread counts. Ignored on
        ``"cuda"``.
    device : "cpu" or "cuda"
        Where scores and top-K lists are computed (``"cuda"``: :mod:`.topk_cuda`; the embeddings
        may then be numba/CUDA-array-interface device arrays). The metrics are computed on the
        host from the top-K lists either way.

    Returns
    -------
    dict
        ``recall@k``, ``ndcg@k``, ``hr@k``, ``precision@k``, ``mrr@k`` for each ``k`` and
        ``n_users`` (users evaluated); see :mod:`pmtnumba.evaluation.metrics` for definitions.

    Threads: ``numba.get_num_threads()`` at call time. For a fixed ``chunk_size`` and strategy the
    result is bit-identical whatever the thread count (ties in score rank the lower item id first;
    sums run in a fixed order). Across chunk sizes it can differ by BLAS rounding only.
    """
    user_emb, item_emb = _check_embeddings(user_emb, item_emb, device)
    n_users, n_items = user_emb.shape[0], item_emb.shape[0]
    h_indptr, h_indices = check_csr(heldout, "heldout", n_items)
    if h_indptr.size - 1 != n_users:
        raise ValueError(f"heldout has {h_indptr.size - 1} users, user_emb has {n_users}")
    ex = union_of(exclude, n_users, n_items)
    ks_list = [int(k) for k in np.atleast_1d(np.asarray(ks))]
    if not ks_list or min(ks_list) < 1:
        raise ValueError("ks must be a non-empty list of cut-offs >= 1")
    kmax = max(ks_list)
    if users is None:
        cand = np.arange(n_users, dtype=np.int64)
    else:
        cand = np.asarray(users, dtype=np.int64).ravel()
        if cand.size and (cand.min() < 0 or cand.max() >= n_users):
            raise ValueError("a user id is out of range")
    rows = np.ascontiguousarray(cand[np.diff(h_indptr)[cand] > 0])  # users with held-out items
    top, _ = _chunked_topk(
        user_emb, item_emb, rows, ex, kmax, chunk_size, max_buffer_bytes, strategy, device
    )
    return metrics_from_topk(top, h_indptr, h_indices, ks_list, users=rows)


def topk_for_users(
    user_emb,
    item_emb,
    users,
    exclude=None,
    k: int = 20,
    chunk_size=None,
    return_scores: bool = False,
    max_buffer_bytes: int | None = None,
    strategy: str = "auto",
    device: str = "cpu",
):
    """Recommendations: the top-``k`` items of each user in ``users``, best first.

    Same scoring, masking, tie-breaking, chunking, strategies and ``device`` as :func:`evaluate`.
    ``exclude`` is None, a CSR or a list of CSRs over all ``U`` users (typically ``[train]`` or
    all items a user has seen).

    Returns int32 ``[len(users), k]`` item ids (``-1`` where fewer than ``k`` items are
    rankable), and float32 scores of the same shape if ``return_scores``.
    """
    user_emb, item_emb = _check_embeddings(user_emb, item_emb, device)
    n_users, n_items = user_emb.shape[0], item_emb.shape[0]
    k = int(k)
    if k < 1:
        raise ValueError("k must be >= 1")
    rows = np.ascontiguousarray(np.asarray(users, dtype=np.int64).ravel())
    if rows.size and (rows.min() < 0 or rows.max() >= n_users):
        raise ValueError("a user id is out of range")
    ex = empty_csr(n_users) if exclude is None else union_of(exclude, n_users, n_items)
    top, sc = _chunked_topk(
        user_emb, item_emb, rows, ex, k, chunk_size, max_buffer_bytes, strategy, device
    )
    return (top, sc) if return_scores else top
