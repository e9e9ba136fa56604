"""How far can GPU evaluation scores and top-K lists be from the CPU's? (no GPU needed)

The GPU scoring GEMM (pmtnumba.evaluation.topk_cuda.scores_kernel) computes every score as one
float32 fused-multiply-add chain over k = 0 .. d-1. This script emulates that chain on the CPU
(float64 product + sum, rounded to float32 once per step: an FMA up to rare double roundings) and

1. counts how many OpenBLAS sgemm scores (the CPU path) equal the emulated chain bit for bit;
2. ranks the emulated scores with the CPU top-K kernel (which returns the GPU top-K kernel's lists
   for equal scores: tests/test_cuda_evaluation.py) and compares them with the CPU path's lists.

Run: ``python benchmarks/experiment_gpu_eval_rounding.py`` (about a minute on 2 cores).
"""

import numpy as np
from numba import njit, prange

from pmtnumba.evaluation import csr_from_pairs, topk_for_users
from pmtnumba.evaluation.topk import topk_from_scores


@njit(parallel=True)
def fma_chain_scores(U, I, out):
    for b in prange(U.shape[0]):
        for j in range(I.shape[0]):
            acc = np.float32(0.0)
            for k in range(U.shape[1]):
                acc = np.float32(np.float64(U[b, k]) * np.float64(I[j, k]) + np.float64(acc))
            out[b, j] = acc


def main():
    rng = np.random.default_rng(0)
    for d in (8, 64):
        U = (rng.standard_normal((64, d)) * 0.1).astype(np.float32)
        I = (rng.standard_normal((4000, d)) * 0.1).astype(np.float32)
        blas = np.empty((64, 4000), np.float32)
        np.matmul(U, I.T, out=blas)
        chain = np.empty_like(blas)
        fma_chain_scores(U, I, chain)
        print(f"d={d}: sgemm scores equal to the FMA chain: {np.mean(blas == chain):.4f}; "
              f"max |difference| {np.abs(blas - chain).max():.2e} (scores up to {np.abs(blas).max():.2f})")
    rng = np.random.default_rng(1)
    n_u, n_i, d, k = 2000, 17408, 64, 40
    U = (rng.standard_normal((n_u, d)) * 0.3).astype(np.float32)
    I = (rng.standard_normal((n_i, d)) * 0.3).astype(np.float32)
    users = np.repeat(np.arange(n_u), 40).astype(np.int32)
    items = rng.integers(0, n_i, n_u * 40).astype(np.int32)
    train = csr_from_pairs(users, items, n_u)
    cpu_ids, cpu_sc = topk_for_users(U, I, np.arange(n_u), [train], k=k, return_scores=True)
    S = np.empty((n_u, n_i), np.float32)
    fma_chain_scores(U, I, S)
    g_ids, g_sc = topk_from_scores(S, k, exclude=[train], return_scores=True)
    same = (g_ids == cpu_ids).all(1)
    sets = np.array([set(a) == set(b) for a, b in zip(g_ids, cpu_ids)])
    both = g_ids == cpu_ids
    print(f"{n_u} users x {n_i} items, d={d}, K={k}, 40 masked items per user: top-K rows identical "
          f"{same.mean():.4f}, same item sets {sets.mean():.4f}, max |score difference| "
          f"{np.abs(g_sc[both] - cpu_sc[both]).max():.2e} (scores up to {np.abs(cpu_sc).max():.2f})")


if __name__ == "__main__":
    main()
