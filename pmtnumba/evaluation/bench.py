"""Timing and CPU-vs-GPU comparison of full-ranking evaluation, for benchmark scripts.

Two helpers that ``benchmarks/bench_gpu.py`` (and anyone with a GPU) can call as is:

- :func:`benchmark_eval` - seconds of one full :func:`~pmtnumba.evaluation.ranking.evaluate` on a
  device, best of ``repeats`` after a warm-up call (which compiles the kernels), the device
  synchronised before and after each timed call;
- :func:`compare_devices` - the top-K lists of the CPU and the GPU path on the same embeddings:
  how many rows are identical, the largest score difference, the first mismatching row.

Nothing here imports ``numba.cuda`` unless ``device="cuda"`` is asked for.
"""

from __future__ import annotations

import time

import numpy as np

from .ranking import evaluate, topk_for_users

__all__ = ["benchmark_eval", "compare_devices"]


def _synchronize(device: str) -> None:
    if device == "cuda":
        from numba import cuda

        cuda.synchronize()


def benchmark_eval(
    user_emb,
    item_emb,
    heldout,
    exclude=None,
    device: str = "cpu",
    ks=(5, 10, 20, 40),
    repeats: int = 3,
    threads: int | None = None,
    **evaluate_kwargs,
) -> dict:
    """Time full-ranking evaluation on ``device`` ("cpu" or "cuda").

    ``user_emb``/``item_emb``: host arrays, or (``device="cuda"``) device arrays; pass device
    arrays to time the evaluation without the host-to-device copy of the embeddings, host arrays
    to include it. ``threads``: Numba CPU threads for the call (restored afterwards; the CPU
    path's parallelism; on ``"cuda"`` only the host-side metrics use them). Extra keyword
    arguments go to :func:`~pmtnumba.evaluation.ranking.evaluate` (``chunk_size``,
    ``max_buffer_bytes``, ``strategy``).

    Returns ``{"device", "seconds" (best), "all_seconds", "metrics", "n_users", "threads"}``.
    The first (warm-up) call is not timed: it compiles the kernels.
    """
    import numba

    saved = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(int(threads))
    try:
        def run():
            return evaluate(user_emb, item_emb, heldout, exclude, ks=ks, device=device,
                            **evaluate_kwargs)

        metrics = run()  # warm-up: compiles (CPU: from the cache; CUDA: JIT to PTX)
        times = []
        for _ in range(max(1, int(repeats))):
            _synchronize(device)
            t0 = time.perf_counter()
            metrics = run()  # returns after the top-K lists are copied back (synchronous)
            _synchronize(device)
            times.append(time.perf_counter() - t0)
        return {
            "device": device,
            "seconds": min(times),
            "all_seconds": times,
            "metrics": metrics,
            "n_users": metrics["n_users"],
            "threads": numba.get_num_threads(),
        }
    finally:
        numba.set_num_threads(saved)


def compare_devices(user_emb, item_emb, users, exclude=None, k: int = 40, **kwargs) -> dict:
    """Top-``k`` lists of ``users`` on the CPU and on the GPU, compared.

    ``user_emb``/``item_emb`` must be host arrays (the CPU path reads them). Returns
    ``{"rows", "identical_rows", "max_abs_score_diff", "max_rel_score_diff",
    "first_mismatch"}``; ``first_mismatch`` is ``None`` or ``(row, cpu_ids, gpu_ids,
    cpu_scores, gpu_scores)``. Ids can differ only where two scores agree to float32 rounding
    (the GEMMs sum in different orders, see docs/gpu_evaluation.md); score differences are
    taken over the slots where both lists hold the same item.
    """
    c_ids, c_sc = topk_for_users(user_emb, item_emb, users, exclude, k=k, return_scores=True,
                                 **kwargs)
    g_ids, g_sc = topk_for_users(user_emb, item_emb, users, exclude, k=k, return_scores=True,
                                 device="cuda", **kwargs)
    same = (c_ids == g_ids).all(axis=1)
    both = (c_ids == g_ids) & (c_ids >= 0)
    diff = np.abs(c_sc[both].astype(np.float64) - g_sc[both].astype(np.float64))
    scale = np.maximum(np.abs(c_sc[both].astype(np.float64)), 1e-30)
    bad = np.flatnonzero(~same)
    first = None
    if bad.size:
        r = int(bad[0])
        first = (r, c_ids[r].tolist(), g_ids[r].tolist(), c_sc[r].tolist(), g_sc[r].tolist())
    return {
        "rows": int(c_ids.shape[0]),
        "identical_rows": int(same.sum()),
        "max_abs_score_diff": float(diff.max()) if diff.size else 0.0,
        "max_rel_score_diff": float((diff / scale).max()) if diff.size else 0.0,
        "first_mismatch": first,
    }
