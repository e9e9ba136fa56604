"""Benchmark of full-ranking evaluation (pmtnumba.evaluation.evaluate) against NumPy baselines.

Three problems, each with random d = 32 float32 embeddings (N(0, 0.1^2); the cost of the GEMM
does not depend on the values, and the top-K kernel's only on how scores are spread):

* ``synthetic``: 55,223 users x 17,408 items (the 2018 Video Games split's size), ~40 random
  train items per user as exclusions and ~10 held-out items;
* ``videogame``: the shipped videogame data (24,303 x 10,639), seed-0 split: train masked,
  validation held out;
* ``epinion``: the shipped Epinions data (22,167 users x 296,278 items: the full score matrix
  would be 26 GB), seed-0 split: train masked, validation held out.

Each problem runs once per thread count of ``--threads`` (default ``1,2``): Numba threads *and*
the BLAS threads of the NumPy baselines (``openblas_set_num_threads_local`` of numpy's OpenBLAS
on the main thread, restored afterwards) are both set to that count, so that the ratios compare
like with like. Methods, run alternately ``--reps`` times (medians reported, ratios against
``evaluate``):

* ``evaluate``        the default (``strategy="auto"``: tiled, per-thread single-threaded GEMMs);
* ``evaluate/rows``   ``strategy="rows"``: one GEMM per 256 MiB chunk (BLAS threads as set) +
  prange top-K;
* ``matmul``          (a) the chunked NumPy GEMM alone, same 256 MiB buffer (a floor for "rows");
* ``matmul+argpart``  (b) chunked GEMM + ``-inf`` masking + ``np.argpartition`` top-40 + sort of
  the 40. On ``epinion`` it would take over a minute per run, so (b) runs on the first
  ``--argpart-users`` users and is scaled linearly to all users (marked "extrapolated").

Then, per thread count, in a fresh subprocess, the peak memory (``VmHWM``) of one ``evaluate``
on the ``epinion`` problem, next to the memory held before the call.

Usage::

    /work/venv/bin/python benchmarks/bench_eval.py            # full sizes, 1 and 2 threads, ~4 minutes
    /work/venv/bin/python benchmarks/bench_eval.py --quick    # 1/8 of the users
    /work/venv/bin/python benchmarks/bench_eval.py --threads 1 --only synthetic

Times are wall-clock on a shared machine: compare ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numba  # noqa: E402

from pmtnumba.evaluation import (  # noqa: E402
    csr_from_pairs,
    evaluate,
    metrics_from_topk,
    topk_for_users,
)
from pmtnumba.evaluation.ranking import (  # noqa: E402
    _blas_set_local_threads,
    auto_chunk_size,
    resolve_strategy,
)

PROBLEMS = {"synthetic": (55_223, 17_408), "videogame": None, "epinion": None}  # None: shipped data
D = 32
N_TRAIN = 40
N_HELD = 10
K = 40


def make_problem(n_users, n_items, seed=0):
    """Random embeddings and a random train / held-out split (CSR)."""
    rng = np.random.default_rng(seed)
    ue = (rng.standard_normal((n_users, D)) * 0.1).astype(np.float32)
    ie = (rng.standard_normal((n_items, D)) * 0.1).astype(np.float32)
    items = rng.integers(0, n_items, size=(n_users, N_TRAIN + N_HELD))
    users = np.repeat(np.arange(n_users), N_TRAIN)
    train = csr_from_pairs(users, items[:, :N_TRAIN].ravel(), n_users)
    users = np.repeat(np.arange(n_users), N_HELD)
    held = csr_from_pairs(users, items[:, N_TRAIN:].ravel(), n_users)
    return ue, ie, train, held


def shipped_problem(name, seed=0):
    """Random embeddings on a shipped data set's users and items; its seed-0 split's train CSR
    (masked) and validation CSR (held out)."""
    from pmtnumba.data import load_dataset
    from pmtnumba.data.split import make_split

    sp = make_split(load_dataset(name), seed=0)
    rng = np.random.default_rng(seed)
    ue = (rng.standard_normal((sp.n_users, D)) * 0.1).astype(np.float32)
    ie = (rng.standard_normal((sp.n_items, D)) * 0.1).astype(np.float32)
    return ue, ie, sp.train, sp.valid


def get_problem(name, div=1):
    """(user_emb, item_emb, train CSR, held-out CSR) of a problem; ``div`` > 1 keeps the first
    1/div of the users (``--quick``)."""
    if PROBLEMS[name] is not None:
        nu, ni = PROBLEMS[name]
        return make_problem(nu // div, ni)
    ue, ie, train, held = shipped_problem(name)
    n = ue.shape[0] // div
    cut = lambda c: (c[0][: n + 1], c[1][: c[0][n]])  # noqa: E731
    return ue[:n], ie, cut(train), cut(held)


def numpy_matmul(ue, ie, rows):
    """(a) The chunked GEMM alone, into the same 256 MiB buffer evaluate's rows strategy uses."""
    cs = auto_chunk_size(ie.shape[0])
    buf = np.empty((cs, ie.shape[0]), np.float32)
    for s in range(0, rows.size, cs):
        r = rows[s : s + cs]
        np.matmul(ue[r], ie.T, out=buf[: r.size])


def numpy_argpartition(ue, ie, rows, train):
    """(b) Chunked GEMM, -inf masking of train items, argpartition top-K, sort of the K."""
    indptr, indices = train
    cs = auto_chunk_size(ie.shape[0])
    buf = np.empty((cs, ie.shape[0]), np.float32)
    top = np.empty((rows.size, K), np.int64)
    for s in range(0, rows.size, cs):
        r = rows[s : s + cs]
        block = buf[: r.size]
        np.matmul(ue[r], ie.T, out=block)
        counts = indptr[r + 1] - indptr[r]
        mrow = np.repeat(np.arange(r.size), counts)
        mcol = np.concatenate([indices[indptr[u] : indptr[u + 1]] for u in r])
        block[mrow, mcol] = -np.inf
        part = np.argpartition(-block, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(block, part, axis=1), axis=1, kind="stable")
        top[s : s + r.size] = np.take_along_axis(part, order, axis=1)
    return top


def set_blas_threads(n):
    """Set the BLAS threads of this (the main) thread to ``n``; returns the previous setting, or
    None where numpy's OpenBLAS has no ``openblas_set_num_threads_local`` (then unchanged)."""
    fn = _blas_set_local_threads()
    return None if fn is None else int(fn(int(n)))


def bench(name, div, reps, argpart_users):
    t0 = time.perf_counter()
    ue, ie, train, held = get_problem(name, div)
    n_users, n_items = ue.shape[0], ie.shape[0]
    rows = np.flatnonzero(np.diff(held[0]) > 0)
    sub = rows[: min(argpart_users, rows.size)]
    scale = rows.size / sub.size
    print(f"\n== {name}: {n_users:,} users x {n_items:,} items, d={D}, "
          f"{train[1].size:,} train / {held[1].size:,} held-out "
          f"(setup {time.perf_counter() - t0:.1f} s)")
    # warm up (Numba caches are compiled or loaded here)
    evaluate(ue[:50], ie, (held[0][:51], held[1][: held[0][50]]), exclude=None)
    evaluate(ue[:50], ie, (held[0][:51], held[1][: held[0][50]]), exclude=None, strategy="rows")
    methods = {
        "evaluate": lambda: evaluate(ue, ie, held, exclude=[train], ks=(5, 10, 20, 40)),
        "evaluate/rows": lambda: evaluate(ue, ie, held, exclude=[train], strategy="rows"),
        "matmul": lambda: numpy_matmul(ue, ie, rows),
        "matmul+argpart": lambda: numpy_argpartition(ue, ie, sub, train),
    }
    times = {m: [] for m in methods}
    results = {}
    for _ in range(reps):
        for m, fn in methods.items():
            t = time.perf_counter()
            results[m] = fn()
            dt = time.perf_counter() - t
            times[m].append(dt * (scale if m == "matmul+argpart" else 1.0))
    med = {m: float(np.median(v)) for m, v in times.items()}
    base = med["evaluate"]
    for m in methods:
        note = ""
        if m == "matmul+argpart" and sub.size < rows.size:
            note = f"  (extrapolated from {sub.size:,} of {rows.size:,} users)"
        runs = ", ".join(f"{x:.2f}" for x in times[m])
        print(f"  {m:15s} median {med[m]:7.2f} s  = {med[m] / base:5.2f} x evaluate  "
              f"[{runs}]{note}")
    # agreement check on the argpartition subset: the same top-40 lists (BLAS rounding of
    # different GEMM shapes may swap near-ties, rarely) and the same metrics
    ours = topk_for_users(ue, ie, sub, exclude=[train], k=K)
    same = int(np.sum(np.all(ours == results["matmul+argpart"], axis=1)))
    m_ref = metrics_from_topk(results["matmul+argpart"], held[0], held[1], ks=(40,), users=sub)
    m_ev = metrics_from_topk(ours, held[0], held[1], ks=(40,), users=sub)
    print(f"  check on {sub.size:,} users: identical top-{K} lists {same:,}/{sub.size:,}; "
          f"recall@40 {m_ev['recall@40']:.6f} (evaluate) vs {m_ref['recall@40']:.6f} "
          f"(argpartition)")
    return med


def _status_mb(field):
    """A memory figure of this process from /proc/self/status (Linux), in MB; NaN elsewhere."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def memprobe(name, div, threads):
    """Child process: peak RSS of one evaluate() on a problem (prints JSON).

    VmHWM (the RSS high-water mark of this process image) is used rather than ru_maxrss, which
    Linux carries over from the parent across fork + exec.
    """
    numba.set_num_threads(threads)
    ue, ie, train, held = get_problem(name, div)
    valid = csr_from_pairs([], [], ue.shape[0])
    ex = [train, valid]
    # compile / load kernels on a tiny call first, so JIT memory is not counted as evaluation
    evaluate(ue[:50], ie, (held[0][:51], held[1][: held[0][50]]), exclude=None)
    before = _status_mb("VmRSS")
    hwm_before = _status_mb("VmHWM")
    t = time.perf_counter()
    evaluate(ue, ie, held, exclude=ex)
    dt = time.perf_counter() - t
    after = _status_mb("VmHWM")
    if after != after:  # no /proc: fall back to ru_maxrss
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data = (ue.nbytes + ie.nbytes + sum(a.nbytes for a in train + held)) / 2**20
    print(json.dumps({"before_mb": before, "hwm_before_mb": hwm_before, "peak_mb": after,
                      "data_mb": data, "seconds": dt}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1/8 of the users of each problem")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default="1,2",
                    help="comma-separated thread counts, each used for Numba and for the BLAS "
                         "of the NumPy baselines (default: 1,2; capped at numba's maximum)")
    ap.add_argument("--argpart-users", type=int, default=None,
                    help="users for the argpartition baseline (default: all, but 2,000 on "
                         "epinion; scaled to all users)")
    ap.add_argument("--only", choices=sorted(PROBLEMS), default=None)
    ap.add_argument("--_memprobe", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._memprobe:
        name, div, threads = args._memprobe
        memprobe(name, int(div), int(threads))
        return
    counts = []
    for part in str(args.threads).split(","):
        t = max(1, min(int(part), numba.config.NUMBA_NUM_THREADS))
        if t not in counts:
            counts.append(t)
    print(f"numba {numba.__version__}, numpy {np.__version__}, threading layer "
          f"{numba.config.THREADING_LAYER}, cpus {os.cpu_count()}, thread counts {counts}, "
          f"evaluate strategy 'auto' -> {resolve_strategy('auto')!r}"
          + ("  [--quick: 1/8 of the users]" if args.quick else ""))
    t_all = time.perf_counter()
    div = 8 if args.quick else 1
    for threads in counts:
        numba.set_num_threads(threads)
        previous = set_blas_threads(threads)
        blas = "unchanged (no openblas_set_num_threads_local)" if previous is None else threads
        print(f"\n######## {threads} thread(s): numba threads {numba.get_num_threads()}, "
              f"BLAS threads of the NumPy baselines {blas}")
        try:
            for name in PROBLEMS:
                if args.only and name != args.only:
                    continue
                ap_users = args.argpart_users or (2_000 // div if name == "epinion" else 10**9)
                bench(name, div, args.reps, ap_users)
        finally:
            if previous is not None:
                set_blas_threads(previous)
        if not args.only or args.only == "epinion":
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--_memprobe", "epinion", str(div),
                 str(threads)],
                capture_output=True, text=True, check=True,
            )
            mem = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"\n== memory, one evaluate() on the shipped epinion data (1/{div} of the users), "
                  f"{threads} thread(s), fresh process: peak RSS {mem['peak_mb']:.0f} MB "
                  f"(high-water mark before the call {mem['hwm_before_mb']:.0f} MB, RSS at the "
                  f"call {mem['before_mb']:.0f} MB of which embeddings + CSRs "
                  f"{mem['data_mb']:.0f} MB); call took {mem['seconds']:.2f} s")
    print(f"\ntotal benchmark time {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
