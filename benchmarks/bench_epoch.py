"""Seconds per training epoch and per full validation evaluation, with 1 and 2 Numba threads.

Each contender (dataset x task set x method x thread count) runs one warm-up epoch (JIT), then
the contenders are measured alternately ``--repeats`` times and the medians are printed with
ratios to the BPR-only epoch measured in the same run.

    python benchmarks/bench_epoch.py                                  # office, videogame, epinion; BPR
    python benchmarks/bench_epoch.py --datasets videogame --task-sets bpr,paper --methods ew
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numba

from pmtnumba.combiners import StepContext
from pmtnumba.data import load_dataset
from pmtnumba.data.samplers import epoch_batches
from pmtnumba.data.split import make_split
from pmtnumba.tasks import Batch, default_tasks
from pmtnumba.training import FitConfig, Trainer
from pmtnumba.training.step import StepWorkspace, train_step


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (for the header of every benchmark table)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_epoch(tr: Trainer, epoch: int) -> float:
    sp, cfg = tr.split, tr.cfg
    E = tr.encoder.E
    ws = StepWorkspace(tr.tasks, cfg.batch_size, E.shape[0], cfg.dim, E.dtype)
    t0 = time.perf_counter()
    step = (epoch - 1) * 10_000
    r = sp.train_ratings
    for b in epoch_batches(sp.train_users.size, cfg.batch_size, cfg.seed, epoch):
        step += 1
        batch = Batch(sp.train_users[b], sp.train_items[b], None if r is None else r[b])
        ctx = StepContext(epoch=epoch, step=step, rng=tr.rng, n_users=sp.n_users)
        train_step(E, tr.tasks, batch, tr.combiner, tr.adam, ctx, cfg.seed, ws)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="office,videogame,epinion")
    p.add_argument("--task-sets", default="bpr", help="comma list of 'bpr' and/or 'paper'")
    p.add_argument("--methods", default="ew")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-eval", action="store_true")
    a = p.parse_args()
    threads = [int(t) for t in a.threads.split(",") if int(t) <= numba.config.NUMBA_NUM_THREADS]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} | {cpu_name()} | "
          f"{numba.config.NUMBA_NUM_THREADS} cores visible | numba {numba.__version__} | layer {numba.config.THREADING_LAYER}")
    rows = []
    for name in a.datasets.split(","):
        sp = make_split(load_dataset(name), seed=0)
        contenders = []
        for ts in a.task_sets.split(","):
            tasks = ["bpr"] if ts == "bpr" else default_tasks(name)
            for m in a.methods.split(","):
                tr = Trainer(FitConfig(dataset=name, tasks=tasks, method=m), split=sp)
                run_epoch(tr, 1)  # warm-up: compile
                contenders.append((ts, m, tr))
        times = {(ts, m, nt): [] for ts, m, _ in contenders for nt in threads}
        evals = {nt: [] for nt in threads}
        for rep in range(a.repeats):
            for ts, m, tr in contenders:
                for nt in threads:
                    numba.set_num_threads(nt)
                    times[(ts, m, nt)].append(run_epoch(tr, rep + 2))
            if not a.no_eval:
                tr = contenders[0][2]
                tr.evaluate("valid")  # warm
                for nt in threads:
                    numba.set_num_threads(nt)
                    t0 = time.perf_counter()
                    tr.evaluate("valid")
                    evals[nt].append(time.perf_counter() - t0)
        base = {nt: statistics.median(times[(contenders[0][0], contenders[0][1], nt)]) for nt in threads}
        for (ts, m, nt), v in times.items():
            med = statistics.median(v)
            tasks = "+".join(["bpr"] if ts == "bpr" else default_tasks(name))
            rows.append((name, tasks, m, nt, med, med / base[nt], len(epoch_batches(sp.train_users.size, 2048, 0, 1))))
        if not a.no_eval:
            for nt in threads:
                rows.append((name, "full evaluation (valid)", "-", nt, statistics.median(evals[nt]), float("nan"), 0))
    print(f"{'dataset':10s} {'what':28s} {'method':8s} {'thr':>3s} {'median s':>9s} {'x first':>8s} {'steps':>6s}")
    for r in rows:
        print(f"{r[0]:10s} {r[1]:28s} {r[2]:8s} {r[3]:3d} {r[4]:9.3f} {r[5]:8.2f} {r[6]:6d}")


if __name__ == "__main__":
    main()
