"""CUDA twin of full-ranking evaluation: scores, masking and top-K on the GPU (``numba.cuda``).

The CPU path (:mod:`pmtnumba.evaluation.ranking` with :mod:`pmtnumba.evaluation.topk`) never
imports this module; :func:`pmtnumba.evaluation.ranking.evaluate` and
:func:`~pmtnumba.evaluation.ranking.topk_for_users` load it only for ``device="cuda"``.

Per chunk of users (as many as fit ``max_buffer_bytes`` of float32 scores, 1 GiB by default:
896 users on Epinions' 296,278 items) two kernels run, and only the ``[n_users, K]`` lists of
item ids and scores come back to the host at the end:

``scores_kernel(side, reg, bk)`` (CPU counterpart: the BLAS ``np.matmul`` of ``ranking._topk_tiled``)
    A tiled shared-memory GEMM, ``scores[b, j] = user_emb[rows[b]] . item_emb[j]``. A block of
    16 x 16 threads computes a 128-user x 128-item tile, each thread an 8 x 8 grid of outputs
    (users ``ty + 16 p``, items ``tx + 16 q``: coalesced stores, conflict-free shared reads);
    the embedding width is walked in steps of 16 through shared memory (rows padded to 17
    floats). User rows are gathered by ``rows`` inside the kernel, so the user embeddings are
    never copied. Every output is one float32 accumulator updated with ``cuda.fma`` over
    ``k = 0 .. d-1`` in order (see docs/gpu_evaluation.md on rounding).

``_topk_kernel(k, threads, per_thread)`` (CPU counterpart: :func:`~.topk.topk_rows` /
:func:`~.topk.topk_tile_update`, the key kernel)
    One thread block per user row, "filter, then select" like the CPU kernel. The block walks
    the items in strides of ``threads * per_thread`` (coalesced reads); an item enters the
    block's shared candidate buffer if it is :func:`~.topk.rankable`, beats the K-th best kept so
    far (:func:`~.topk.ranks_before`) and is not in the user's sorted exclusion list (binary
    search, :func:`~.topk.lower_bound`, only for items that pass the score test). Appends take
    a slot with an integer atomic (their order varies from run to run; nothing depends on it).
    When another stride might overflow the buffer, and after the last stride, a *rank select*
    runs: every candidate counts the candidates that rank before it (``ranks_before``, a total
    order since ids are distinct) and the K best move to position = rank. The kept list is
    therefore sorted, its last entry is the entry threshold, and the result does not depend on
    the append order: two runs are bit-identical, and the ids equal the CPU kernel's for equal
    scores. No float atomics, no reductions.

Memory on the device: the embeddings (as given), the exclusion CSR, one ``[chunk, I]`` float32
score buffer, and the ``[n, K]`` outputs.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import cuda, float32, int32

from .topk import lower_bound, plain_score, rankable, ranks_before

__all__ = [
    "DEFAULT_GPU_BUFFER_BYTES",
    "scores_kernel",
    "topk_rows_cuda",
    "topk_cuda",
    "as_device_embeddings",
    "is_device_array",
    "require_gpu",
]

#: Upper bound on the device score buffer ([chunk, I] float32), in bytes.
DEFAULT_GPU_BUFFER_BYTES = 2**30

# GEMM tiling: GEMM_SIDE x GEMM_SIDE threads, each GEMM_REG x GEMM_REG outputs (a tile of
# GEMM_SIDE * GEMM_REG users x as many items); GEMM_BK embedding columns per shared-memory step.
GEMM_SIDE = 16
GEMM_REG = 8
GEMM_BK = 16

# Top-K: threads per block (one block per user) and items each thread reads per stride.
TOPK_THREADS = 128
TOPK_PER_THREAD = 4
# Small blocks for tiny problems in the CUDA simulator (tests, bench_gpu.py --simulate), which runs
# every thread of a block as a Python thread; no result depends on the block shape.
SIMULATOR_BLOCKS = {"GEMM_SIDE": 4, "GEMM_REG": 2, "GEMM_BK": 3, "TOPK_THREADS": 8, "TOPK_PER_THREAD": 2}


def use_simulator_blocks(setter=setattr) -> None:
    """Switch this module to :data:`SIMULATOR_BLOCKS` (``setter``: e.g. pytest's
    ``monkeypatch.setattr``, which undoes it after the test)."""
    import sys

    for name, value in SIMULATOR_BLOCKS.items():
        setter(sys.modules[__name__], name, value)


def require_gpu() -> None:
    """Raise a one-line ``RuntimeError`` unless numba.cuda sees a usable GPU (or the simulator)."""
    if not cuda.is_available():
        raise RuntimeError(
            "device 'cuda' requested but numba.cuda finds no usable GPU (driver/toolkit missing?)"
        )


@lru_cache(maxsize=None)
def scores_kernel(side: int = GEMM_SIDE, reg: int = GEMM_REG, bk: int = GEMM_BK):
    """The scoring GEMM for ``side x side`` threads of ``reg x reg`` outputs (compiled once per
    argument set): ``out[b, j] = sum_k user_emb[rows[b], k] * item_emb[j, k]`` for
    ``b < out.shape[0]``, ``j < out.shape[1]``, float32, one fused multiply-add per ``k``, ``k``
    in increasing order.

    Kernel arguments ``(user_emb [U, d], rows int64 [B], item_emb [I, d], out [B, I])``, all
    C-contiguous; launch: grid ``(ceil(I / (side * reg)), ceil(B / (side * reg)))``, block
    ``(side, side)``. Thread ``(tx, ty)`` owns users ``ty + side * p`` and items
    ``tx + side * q`` of the tile (coalesced stores; shared reads are broadcasts or
    conflict-free, the shared rows being padded to ``bk + 1`` floats).
    """
    side = int(side)
    reg = int(reg)
    bk = int(bk)
    tile = side * reg
    pad = bk + 1
    nthreads = side * side
    loads = (tile * bk + nthreads - 1) // nthreads  # shared elements each thread loads per step

    @cuda.jit
    def kernel(user_emb, rows, item_emb, out):
        su = cuda.shared.array((tile, pad), float32)
        si = cuda.shared.array((tile, pad), float32)
        acc = cuda.local.array((reg, reg), float32)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        t = ty * side + tx
        b0 = cuda.blockIdx.y * tile
        j0 = cuda.blockIdx.x * tile
        nb = out.shape[0]
        ni = out.shape[1]
        d = user_emb.shape[1]
        for p in range(reg):
            for q in range(reg):
                acc[p, q] = float32(0.0)
        for k0 in range(0, d, bk):
            for e in range(loads):
                idx = t + e * nthreads
                r = idx // bk
                c = idx % bk
                if r < tile:
                    v = float32(0.0)
                    w = float32(0.0)
                    if k0 + c < d:
                        if b0 + r < nb:
                            v = user_emb[rows[b0 + r], k0 + c]
                        if j0 + r < ni:
                            w = item_emb[j0 + r, k0 + c]
                    su[r, c] = v
                    si[r, c] = w
            cuda.syncthreads()
            for kk in range(min(bk, d - k0)):
                for p in range(reg):
                    a = su[ty + side * p, kk]
                    for q in range(reg):
                        acc[p, q] = cuda.fma(a, si[tx + side * q, kk], acc[p, q])
            cuda.syncthreads()
        for p in range(reg):
            b = b0 + ty + side * p
            for q in range(reg):
                j = j0 + tx + side * q
                if b < nb and j < ni:
                    out[b, j] = acc[p, q]

    return kernel


@lru_cache(maxsize=None)
def topk_rows_cuda(k: int, threads: int = TOPK_THREADS, per_thread: int = TOPK_PER_THREAD):
    """The top-``k`` kernel for ``threads`` threads per block (compiled once per argument set).

    Kernel arguments ``(scores, rows, ex_indptr, ex_indices, out_items, out_scores)`` as for
    :func:`pmtnumba.evaluation.topk.topk_rows`: float32 ``scores [B, I]``, int64 ``rows [B]``
    (user of each score row = its row of the exclusion CSR), the exclusion CSR (int64 indptr,
    int32 sorted indices; a 1-element dummy when empty), int32 ``out_items [B, k]`` and float32
    ``out_scores [B, k]`` (written best first, padded with ``-1`` / ``-inf``). Launch: grid
    ``B``, block ``threads``.
    """
    k = int(k)
    threads = int(threads)
    stride = threads * int(per_thread)
    cap = k + 2 * stride  # candidate buffer; a select keeps <= k, a stride adds <= stride
    per_select = (cap + threads - 1) // threads  # candidates each thread ranks in a select
    neg_inf = float32(-np.inf)

    @cuda.jit(device=True)
    def rank_select(bs, bi, state, n, tid, ls, li, lr):
        """Keep the ``k`` best of ``bs/bi[:n]``, sorted best first at ``[:min(n, k)]``."""
        for q in range(per_select):
            c = tid + q * threads
            if c < n:
                s = bs[c]
                i = bi[c]
                r = 0
                for c2 in range(n):
                    if ranks_before(bs[c2], bi[c2], s, i):
                        r += 1
                ls[q] = s
                li[q] = i
                lr[q] = r
        cuda.syncthreads()  # every candidate is read before any moves
        for q in range(per_select):
            c = tid + q * threads
            if c < n and lr[q] < k:
                bs[lr[q]] = ls[q]
                bi[lr[q]] = li[q]
        if tid == 0:
            kept = min(n, k)
            state[0] = kept  # buffer fill
            state[1] = kept  # sorted, kept entries at the front
        cuda.syncthreads()

    @cuda.jit
    def kernel(scores, rows, ex_indptr, ex_indices, out_items, out_scores):
        bs = cuda.shared.array(cap, float32)
        bi = cuda.shared.array(cap, int32)
        state = cuda.shared.array(2, int32)
        ls = cuda.local.array(per_select, float32)
        li = cuda.local.array(per_select, int32)
        lr = cuda.local.array(per_select, int32)
        b = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        n_items = scores.shape[1]
        u = rows[b]
        ea = ex_indptr[u]
        eb = ex_indptr[u + 1]
        if tid == 0:
            state[0] = 0
            state[1] = 0
        cuda.syncthreads()
        for base in range(0, n_items, stride):
            full = state[1] >= k  # then bs/bi[k - 1] is the K-th best so far
            ws = bs[k - 1] if full else neg_inf
            wi = bi[k - 1] if full else 0
            for t in range(per_thread):
                j = base + t * threads + tid
                if j < n_items:
                    s = scores[b, j]
                    if rankable(s) and (not full or ranks_before(s, j, ws, wi)):
                        p = lower_bound(ex_indices, ea, eb, j)
                        if p == eb or ex_indices[p] != j:
                            pos = cuda.atomic.add(state, 0, 1)
                            bs[pos] = s
                            bi[pos] = j
            cuda.syncthreads()
            n = state[0]
            cuda.syncthreads()  # everyone has read n before a select or the next append
            if n > cap - stride:
                rank_select(bs, bi, state, n, tid, ls, li, lr)
        n = state[0]
        cuda.syncthreads()
        rank_select(bs, bi, state, n, tid, ls, li, lr)
        m = state[1]
        for t in range(tid, k, threads):
            if t < m:
                out_items[b, t] = bi[t]
                out_scores[b, t] = plain_score(bs[t])
            else:
                out_items[b, t] = -1
                out_scores[b, t] = neg_inf

    return kernel


def is_device_array(x) -> bool:
    """Whether ``x`` lives on the device: a numba device array, or any object with the CUDA
    array interface (``numba.cuda.is_cuda_array``; the simulator has only its own arrays)."""
    if getattr(x, "__cuda_ndarray__", False):
        return True
    check = getattr(cuda, "is_cuda_array", None)
    return bool(check is not None and check(x))


def as_device_embeddings(x, name: str):
    """``x`` as a 2-D float32 C-contiguous device array: a device array is used as is (checked),
    a host array is converted and copied."""
    if is_device_array(x):
        if not getattr(x, "__cuda_ndarray__", False):
            x = cuda.as_cuda_array(x)  # another library's array: a view, nothing is copied
        if x.ndim != 2 or x.dtype != np.float32 or not x.is_c_contiguous():
            raise ValueError(f"{name}: a device array must be 2-D, float32 and C-contiguous")
        return x
    h = np.asarray(x)
    if h.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array")
    return cuda.to_device(np.ascontiguousarray(h, dtype=np.float32))


def _device_csr(csr):
    indptr, indices = csr
    if indices.size == 0:  # a zero-length device array is awkward; never read (empty rows)
        indices = np.zeros(1, np.int32)
    return cuda.to_device(np.ascontiguousarray(indptr, np.int64)), cuda.to_device(
        np.ascontiguousarray(indices, np.int32)
    )


def gpu_chunk_size(n_items: int, max_buffer_bytes: int = DEFAULT_GPU_BUFFER_BYTES,
                   tile: int = GEMM_SIDE * GEMM_REG) -> int:
    """Users per chunk: a float32 ``[chunk, n_items]`` score buffer must fit ``max_buffer_bytes``
    (at least 1 user; a multiple of the GEMM tile height ``tile`` when larger than one tile).
    Example: 296,278 items, 1 GiB -> 896 users."""
    c = max(1, int(max_buffer_bytes) // (4 * max(1, int(n_items))))
    return c if c < tile else (c // tile) * tile


def topk_cuda(
    user_emb,
    item_emb,
    rows,
    ex,
    k: int,
    chunk_size=None,
    max_buffer_bytes=None,
    threads=None,
    per_thread=None,
):
    """Top-``k`` of ``user_emb[rows] @ item_emb.T`` masked by the CSR ``ex``, on the GPU.

    ``user_emb``/``item_emb``: device arrays or host arrays (see :func:`as_device_embeddings`);
    ``rows``: int64 host array of user ids; ``ex``: host exclusion CSR over all users (checked
    by the caller). Returns host int32 ``[len(rows), k]`` ids and float32 scores, best first,
    as :func:`pmtnumba.evaluation.topk.topk_rows` returns them. Blocks until the GPU is done.
    ``threads``/``per_thread`` of the top-K kernel default to ``TOPK_THREADS`` /
    ``TOPK_PER_THREAD`` (read at call time; the simulator tests use fewer threads).
    """
    threads = TOPK_THREADS if threads is None else int(threads)
    per_thread = TOPK_PER_THREAD if per_thread is None else int(per_thread)
    side, reg = GEMM_SIDE, GEMM_REG
    tile = side * reg
    d_user = as_device_embeddings(user_emb, "user_emb")
    d_item = as_device_embeddings(item_emb, "item_emb")
    if d_user.shape[1] != d_item.shape[1]:
        raise ValueError(f"embedding widths differ: {d_user.shape[1]} vs {d_item.shape[1]}")
    n = int(rows.size)
    n_items = int(d_item.shape[0])
    k = int(k)
    out_items = np.empty((n, k), np.int32)
    out_scores = np.empty((n, k), np.float32)
    if n == 0:
        return out_items, out_scores
    if n_items == 0:
        out_items.fill(-1)
        out_scores.fill(-np.inf)
        return out_items, out_scores
    if chunk_size is None:
        budget = DEFAULT_GPU_BUFFER_BYTES if max_buffer_bytes is None else max_buffer_bytes
        chunk = gpu_chunk_size(n_items, budget, tile)
    else:
        chunk = int(chunk_size)
        if chunk < 1:
            raise ValueError("chunk_size must be >= 1")
    chunk = max(1, min(chunk, n))
    d_rows = cuda.to_device(np.ascontiguousarray(rows, np.int64))
    d_exp, d_exi = _device_csr(ex)
    d_scores = cuda.device_array((chunk, n_items), np.float32)
    d_top = cuda.device_array((n, k), np.int32)
    d_sc = cuda.device_array((n, k), np.float32)
    gemm = scores_kernel(side, reg, GEMM_BK)
    kernel = topk_rows_cuda(k, threads, per_thread)
    grid_x = math.ceil(n_items / tile)
    for start in range(0, n, chunk):
        nb = min(chunk, n - start)
        r = d_rows[start : start + nb]
        sc = d_scores[:nb]
        gemm[(grid_x, math.ceil(nb / tile)), (side, side)](d_user, r, d_item, sc)
        kernel[nb, threads](sc, r, d_exp, d_exi, d_top[start : start + nb], d_sc[start : start + nb])
    return d_top.copy_to_host(), d_sc.copy_to_host()
