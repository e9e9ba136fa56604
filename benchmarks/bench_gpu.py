"""The prepared GPU check: CPU-vs-GPU equality, then GPU speed against the CPU engine.

Run as is on a machine with an NVIDIA GPU and ``pip install -e '.[cuda]'`` (about 5 minutes on
one modern GPU; it prints everything needed)::

    python benchmarks/bench_gpu.py                 # videogame, epinion, synthetic 10x
    python benchmarks/bench_gpu.py --quick         # videogame only
    python benchmarks/bench_gpu.py --simulate      # tiny data in the CUDA simulator (no GPU; CI)

1. Equality (videogame, or tiny data with --simulate), the same seed on both engines:
   the first step's rows and G [T, R, d] (EW, paper task set), the embeddings after one epoch
   (paper task set with PMTRec, with PCGrad: the device Gram path, and with GradDrop; PMTRec
   only with --simulate), and one evaluation's top-K lists when evaluation has a device option.
   Max abs / rel differences are printed; rows and samples must be equal.
2. Seconds per epoch (BPR alone; the paper's task set with EW and with PMTRec) on videogame,
   epinion and a synthetic set 10x the size of the 2018 Video Games split (552,230 users x
   174,080 items, 4.99 M interactions, 10x the co-view/co-buy links), GPU against the CPU
   engine with 1 thread and with all threads, as ratios measured in this run. Each figure is one
   epoch after a warm-up of a few steps (compilation excluded).
3. The graph encoders on office: LightGCN and NGCF with PMTRec, two epochs through the trainer on
   each device; the table and NGCF's layer weights after (max abs / rel differences), and the
   second epoch's seconds, GPU against the CPU engine with all threads.
4. Seconds per full evaluation (valid part) on the same data: the CPU engine with 1 and all
   threads, and the GPU where evaluation has a device option (else "n/a").
5. GPU memory in use (total - free, CUDA context included) after each data set's GPU epochs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--simulate", action="store_true", help="tiny data in the CUDA simulator (no GPU needed)")
ap.add_argument("--quick", action="store_true", help="videogame only")
ap.add_argument("--datasets", default=None, help="comma list of videogame, epinion, synthetic10x")
ARGS = ap.parse_args()
if ARGS.simulate:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba.cuda is first imported

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402

from pmtnumba.combiners import StepContext  # noqa: E402
from pmtnumba.data import load_dataset  # noqa: E402
from pmtnumba.data.dataset import Dataset  # noqa: E402
from pmtnumba.data.samplers import epoch_batches  # noqa: E402
from pmtnumba.data.split import make_split  # noqa: E402
from pmtnumba.device import describe, gpu_problem  # noqa: E402
from pmtnumba.evaluation import evaluate  # noqa: E402
from pmtnumba.tasks import Batch, default_tasks  # noqa: E402
from pmtnumba.training import FitConfig, Trainer  # noqa: E402
from pmtnumba.training.loop import eval_device_kwargs  # noqa: E402
from pmtnumba.training.step import StepWorkspace, multitask_gradients, train_step  # noqa: E402

SEED = 0
N_CPU = numba.config.NUMBA_NUM_THREADS
if ARGS.simulate:  # the simulator runs every thread as a Python thread: small evaluation blocks
    from pmtnumba.evaluation import topk_cuda  # noqa: E402

    topk_cuda.use_simulator_blocks()


def tiny_dataset() -> Dataset:
    """30 users x 24 items with every relation (the --simulate data)."""
    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 30, 200) * 24 + rng.integers(0, 24, 200))
    links = rng.integers(0, 24, size=(60, 2)).astype(np.int32)
    soc = rng.integers(0, 30, size=(50, 2)).astype(np.int32)
    return Dataset(name="tiny", n_users=30, n_items=24, users=(keys // 24).astype(np.int32),
                   items=(keys % 24).astype(np.int32), social=soc[soc[:, 0] != soc[:, 1]],
                   item_category=rng.integers(0, 4, 24).astype(np.int32), also_viewed=links[:30],
                   also_bought=links[30:], source="synthetic")


def get_split(name: str):
    if name == "tiny":
        return make_split(tiny_dataset(), SEED), ["bpr", "social", "category"]
    if name == "synthetic10x":
        from bench_train import synthetic_dataset

        ds = synthetic_dataset(n_users=552_230, n_items=174_080, n_interactions=4_990_000, n_coview=170_000,
                               n_cobuy=8_000_000, seed=0)
        return make_split(ds, SEED), ["bpr", "coview", "cobuy"]
    return make_split(load_dataset(name), SEED), default_tasks(name)


def trainer(split, tasks, method, batch, dim, reg=0.0) -> Trainer:
    cfg = FitConfig(dataset=split.dataset.name, tasks=list(tasks), method=method, dim=dim, batch_size=batch, lr=1e-2,
                    wd=1e-4, seed=SEED, record_weights=False, device="cpu", reg=reg)
    return Trainer(cfg, split)


def cuda_step(tr: Trainer):
    from pmtnumba.training.step_cuda import CudaStep

    sp = tr.split
    return CudaStep(tr.encoder.E, tr.tasks, tr.combiner, tr.adam, tr.cfg.batch_size, sp.train_users, sp.train_items,
                    sp.train_ratings, sp.n_users, penalty=tr.penalty)


def cpu_epoch(tr: Trainer, epoch: int, max_steps: int | None = None) -> float:
    sp, cfg, E = tr.split, tr.cfg, tr.encoder.E
    ws = StepWorkspace(tr.tasks, cfg.batch_size, E.shape[0], cfg.dim, E.dtype)
    r = sp.train_ratings
    t0 = time.perf_counter()
    for k, b in enumerate(epoch_batches(sp.train_users.size, cfg.batch_size, cfg.seed, epoch)):
        if max_steps is not None and k >= max_steps:
            break
        ctx = StepContext(epoch=epoch, step=(epoch - 1) * 100_000 + k + 1, rng=tr.rng, n_users=sp.n_users)
        train_step(E, tr.tasks, Batch(sp.train_users[b], sp.train_items[b], None if r is None else r[b]), tr.combiner,
                   tr.adam, ctx, cfg.seed, ws, **tr._penalty_kw)
    return time.perf_counter() - t0


def gpu_epoch(tr: Trainer, ds, epoch: int, max_steps: int | None = None) -> float:
    sp, cfg = tr.split, tr.cfg
    batches = epoch_batches(sp.train_users.size, cfg.batch_size, cfg.seed, epoch)
    t0 = time.perf_counter()
    ds.set_epoch_order(np.concatenate(batches))
    lo = 0
    for k, b in enumerate(batches):
        if max_steps is not None and k >= max_steps:
            break
        ctx = StepContext(epoch=epoch, step=(epoch - 1) * 100_000 + k + 1, rng=tr.rng, n_users=sp.n_users)
        ds.step(lo, len(b), ctx, cfg.seed)  # reads back the losses: the epoch's work is done on return
        lo += len(b)
    return time.perf_counter() - t0


def maxdiff(a, b) -> str:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ab = float(np.max(np.abs(a - b))) if a.size else 0.0
    m = np.abs(a) > 1e-30
    rel = float(np.max(np.abs(a - b)[m] / np.abs(a)[m])) if m.any() else 0.0
    return f"max abs {ab:.3g}, max rel {rel:.3g}"


def equality(name: str, batch: int, dim: int) -> None:
    split, tasks = get_split(name)
    print(f"\n## equality on {name} (tasks {','.join(tasks)}, batch {batch}, d {dim})")
    # first step's G (EW)
    tc, tg = trainer(split, tasks, "ew", batch, dim), trainer(split, tasks, "ew", batch, dim)
    sp = split
    b = epoch_batches(sp.train_users.size, batch, SEED, 1)[0]
    ws = StepWorkspace(tc.tasks, batch, tc.encoder.E.shape[0], dim, tc.encoder.E.dtype)
    r = sp.train_ratings
    rows, G, _, _ = multitask_gradients(tc.encoder.E, tc.tasks, Batch(sp.train_users[b], sp.train_items[b],
                                                                      None if r is None else r[b]), SEED, 1, 1, ws)
    ds = cuda_step(tg)
    ds.set_epoch_order(np.concatenate(epoch_batches(sp.train_users.size, batch, SEED, 1)))
    ds.step(0, len(b), StepContext(epoch=1, step=1, rng=tg.rng, n_users=sp.n_users), SEED)
    R = int(ds.rws.R_dev.copy_to_host()[0])
    same_rows = R == rows.size and np.array_equal(ds.rws.rows[:R].copy_to_host(), rows)
    print(f"first step: rows equal: {same_rows} (R = {R}); G: {maxdiff(G, ds.G[:, :R].copy_to_host())}")
    # one epoch's embeddings: PMTRec, a baseline on the device Gram matrix (PCGrad), GradDrop, PMTRec
    # with the ego-embedding L2 (--reg 1e-4) (the simulator runs PMTRec only: tests/test_cuda_fit.py
    # fits the others against the CPU)
    runs = (("pmtrec", 0.0),) if ARGS.simulate else (("pmtrec", 0.0), ("pcgrad", 0.0), ("graddrop", 0.0),
                                                     ("pmtrec", 1e-4))
    for method, reg in runs:
        tc, tg = trainer(split, tasks, method, batch, dim, reg), trainer(split, tasks, method, batch, dim, reg)
        ds = cuda_step(tg)
        cpu_epoch(tc, 1)
        gpu_epoch(tg, ds, 1)
        ds.download(tg.encoder.E)
        label = method + (f", --reg {reg:g}" if reg else "")
        print(f"one epoch ({label}), embeddings: {maxdiff(tc.encoder.E, tg.encoder.E)}; "
              f"Adam moments: {maxdiff(tc.adam.MV, tg.adam.MV)}")
    kw = eval_device_kwargs("cuda")
    if kw:
        from pmtnumba.evaluation import topk_for_users

        users = np.arange(min(sp.n_users, 2000))
        a = topk_for_users(tc.encoder.user_emb, tc.encoder.item_emb, users, exclude=[sp.train], k=20)
        g = topk_for_users(tc.encoder.user_emb, tc.encoder.item_emb, users, exclude=[sp.train], k=20, **kw)
        a, g = np.asarray(a[0] if isinstance(a, tuple) else a), np.asarray(g[0] if isinstance(g, tuple) else g)
        print(f"top-20 of {users.size} users, same embeddings: lists equal: {np.array_equal(a, g)} "
              f"({float(np.mean(a == g)):.6f} of entries)")
    else:
        print("top-K: n/a (evaluation has no device option in this build; it runs on the host)")


def encoders(name: str, batch: int, dim: int, layers: int, epochs: int, encs=("lightgcn", "ngcf")) -> None:
    """LightGCN and NGCF with PMTRec on the data set's paper tasks, ``epochs`` epochs on each device
    through the trainer (the path ``fit --device cuda`` takes): the parameters after, and the last
    epoch's training seconds (compilation excluded; evaluation on the host, not timed)."""
    split, tasks = get_split(name)
    print(f"\n## graph encoders on {name} (PMTRec, tasks {','.join(tasks)}, batch {batch}, d {dim}, K {layers}, "
          f"{epochs} epoch(s); CPU {N_CPU} threads)")
    print("| encoder | GPU s/epoch | CPU s/epoch | GPU vs CPU | E after | layer weights after |")
    print("|---|---|---|---|---|---|")
    for enc in encs:
        out = {}
        for device in ("cpu", "cuda"):
            cfg = FitConfig(dataset=split.dataset.name, tasks=list(tasks), method="pmtrec", encoder=enc, layers=layers,
                            dim=dim, batch_size=batch, lr=1e-2, wd=1e-4, seed=SEED, record_weights=False,
                            device=device, epochs=epochs, eval_every=epochs)
            tr = Trainer(cfg, split)
            res = tr.fit()
            out[device] = (tr, res.curve[-1]["train_seconds"])
        (tc, c), (tg, g) = out["cpu"], out["cuda"]
        dense = "; ".join(f"{k}: {maxdiff(p, tg.encoder.dense_params()[k])}" for k, p in tc.encoder.dense_params().items())
        print(f"| {enc} | {g:.4f} | {c:.4f} | {c / g:.1f}x | {maxdiff(tc.encoder.E, tg.encoder.E)} | {dense or 'none'} |")


def gpu_mem() -> str:
    if ARGS.simulate:
        return "n/a (simulator)"
    try:
        from numba import cuda

        free, total = cuda.current_context().get_memory_info()
        return f"{(total - free) / 2**30:.2f} GiB in use of {total / 2**30:.1f} GiB"
    except Exception as exc:  # the simulator has no memory figures
        return f"n/a ({type(exc).__name__})"


def speed(name: str, batch: int, dim: int, warm: int, configs=("bpr", "paper ew", "paper pmtrec")) -> None:
    split, paper = get_split(name)
    sp = split
    print(f"\n## speed on {name}: {sp.n_users} users, {sp.n_items} items, {sp.train_users.size} train interactions, "
          f"{-(-sp.train_users.size // batch)} steps of {batch}")
    print("| configuration | GPU s/epoch | CPU 1 thr | CPU all thr | GPU vs 1 thr | GPU vs all thr |")
    print("|---|---|---|---|---|---|")
    for label, tasks, method in (("bpr", ["bpr"], "ew"), ("paper ew", paper, "ew"), ("paper pmtrec", paper, "pmtrec")):
        if label not in configs:
            continue
        tg = trainer(split, tasks, method, batch, dim)
        ds = cuda_step(tg)
        gpu_epoch(tg, ds, 1, max_steps=warm)
        g = gpu_epoch(tg, ds, 2)
        c = {}
        for th in (1, N_CPU):
            numba.set_num_threads(th)
            tc = trainer(split, tasks, method, batch, dim)
            cpu_epoch(tc, 1, max_steps=warm)
            c[th] = cpu_epoch(tc, 2)
        numba.set_num_threads(N_CPU)
        print(f"| {label} ({','.join(tasks)}) | {g:.4f} | {c[1]:.4f} | {c[N_CPU]:.4f} | {c[1] / g:.1f}x | "
              f"{c[N_CPU] / g:.1f}x |")
        del ds
    print(f"GPU memory after {name}'s epochs: {gpu_mem()}")
    # full evaluation (valid)
    tc = trainer(split, paper, "ew", batch, dim)
    ue, ie = tc.encoder.user_emb, tc.encoder.item_emb
    t = {}
    if name == "synthetic10x":
        print("evaluation: CPU skipped on synthetic10x (over the 5-minute budget)")
    else:
        for th in (1, N_CPU):
            numba.set_num_threads(th)
            evaluate(ue, ie, sp.valid, exclude=[sp.train])  # warm
            t0 = time.perf_counter()
            evaluate(ue, ie, sp.valid, exclude=[sp.train])
            t[th] = time.perf_counter() - t0
        numba.set_num_threads(N_CPU)
    kw = eval_device_kwargs("cuda")
    if kw:
        evaluate(ue, ie, sp.valid, exclude=[sp.train], **kw)
        t0 = time.perf_counter()
        evaluate(ue, ie, sp.valid, exclude=[sp.train], **kw)
        gt = time.perf_counter() - t0
        ratios = "" if not t else f" | GPU vs 1 thr {t[1] / gt:.1f}x, vs all thr {t[N_CPU] / gt:.1f}x"
        print(f"full evaluation: GPU {gt:.4f} s" + (f", CPU 1 thr {t[1]:.4f} s, all thr {t[N_CPU]:.4f} s" if t else "")
              + ratios)
    elif t:
        print(f"full evaluation: GPU n/a (no device option in this build); CPU 1 thr {t[1]:.4f} s, "
              f"all thr {t[N_CPU]:.4f} s")


def run() -> int:
    problem = gpu_problem()
    if problem:
        print(f"bench_gpu: {problem}; nothing to measure (use --simulate without a GPU)")
        return 2
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} | {describe('cuda')} | {N_CPU} CPU threads | numba {numba.__version__}"
          + (" | SIMULATOR: tiny data, timings meaningless" if ARGS.simulate else ""))
    if ARGS.simulate:
        equality("tiny", batch=64, dim=4)
        speed("tiny", batch=64, dim=4, warm=1, configs=("bpr",))  # the simulator is slow: one configuration
        encoders("tiny", batch=128, dim=4, layers=1, epochs=1, encs=("ngcf",))  # LightGCN: test_cuda_encoders.py
        return 0
    names = ARGS.datasets.split(",") if ARGS.datasets else (["videogame"] if ARGS.quick else
                                                           ["videogame", "epinion", "synthetic10x"])
    equality("videogame", batch=2048, dim=32)
    encoders("office", batch=2048, dim=32, layers=3, epochs=2)
    for n in names:
        speed(n, batch=2048, dim=32, warm=3)
    return 0


if __name__ == "__main__":
    sys.exit(run())
