"""Seconds per training epoch of every registered gradient combiner, side by side, one thread.

On videogame with the paper's task set (bpr, coview, cobuy) by default: each method gets its own
Trainer on the same split (seed 0) and one warm-up epoch (JIT compilation, first-touch of the
workspaces); then the methods are measured alternately ``--repeats`` times (method order rotated
every round, so slow drift of a busy machine spreads over all of them) and the median epoch time
is printed with its ratio to EW measured in the same run. The epoch loop is ``run_epoch`` of
``bench_epoch.py`` (steps only: no evaluation). PMTRec's weight recording is off (it is a
diagnostic of the training loop, not part of the combiner).

    python benchmarks/bench_methods.py                     # 11 methods, videogame, 3 repeats
    python benchmarks/bench_methods.py --methods ew,pcgrad,pmtrec --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numba

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_epoch import cpu_name, run_epoch  # noqa: E402

from pmtnumba.combiners import COMBINERS  # noqa: E402
from pmtnumba.data import load_dataset  # noqa: E402
from pmtnumba.data.samplers import epoch_batches  # noqa: E402
from pmtnumba.data.split import make_split  # noqa: E402
from pmtnumba.tasks import default_tasks  # noqa: E402
from pmtnumba.training import FitConfig, Trainer  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="videogame")
    p.add_argument("--tasks", default=None, help="comma list (default: the data set's paper task set)")
    p.add_argument("--methods", default=",".join(COMBINERS), help="comma list (default: all registered)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--dim", type=int, default=32)
    a = p.parse_args()
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in COMBINERS]
    if unknown:
        p.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(COMBINERS)}")
    if "ew" not in methods:
        methods.insert(0, "ew")  # the reference of the ratios
    tasks = a.tasks.split(",") if a.tasks else default_tasks(a.dataset)
    numba.set_num_threads(min(a.threads, numba.config.NUMBA_NUM_THREADS))

    t_start = time.perf_counter()
    sp = make_split(load_dataset(a.dataset), seed=0)
    n_steps = len(epoch_batches(sp.train_users.size, a.batch_size, 0, 1))
    trainers, n_warn, first_warn = {}, {}, {}
    for m in methods:
        cfg = FitConfig(dataset=a.dataset, tasks=list(tasks), method=m, batch_size=a.batch_size, dim=a.dim,
                        record_weights=False, threads=a.threads)
        tr = Trainer(cfg, split=sp)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            run_epoch(tr, 1)  # warm-up: compile
        trainers[m] = tr
        n_warn[m] = len(w)
        if w:
            first_warn.setdefault(m, str(w[0].message))
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region ran
        layer = f"{numba.config.THREADING_LAYER} (unused)"
    times = {m: [] for m in methods}
    for rep in range(a.repeats):
        order = methods[rep % len(methods):] + methods[: rep % len(methods)]
        for m in order:
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                times[m].append(run_epoch(trainers[m], rep + 2))
            n_warn[m] += len(w)
            if w:
                first_warn.setdefault(m, str(w[0].message))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} | {cpu_name()} | {os.cpu_count()} cores, "
          f"{numba.get_num_threads()} numba thread(s) | numba {numba.__version__} | threading layer {layer} | "
          f"load avg {load:.2f}")
    print(f"# {a.dataset}: {sp.train_users.size} train interactions, {n_steps} steps of {a.batch_size} | "
          f"tasks {'+'.join(tr.cfg.tasks)} | dim {a.dim} | median of {a.repeats} epochs after 1 warm-up")
    base = statistics.median(times["ew"])
    print(f"{'method':18s} {'median s':>9s} {'min s':>8s} {'max s':>8s} {'ms/step':>8s} {'x EW':>6s} {'warnings':>8s}")
    for m in methods:
        med = statistics.median(times[m])
        print(f"{m:18s} {med:9.3f} {min(times[m]):8.3f} {max(times[m]):8.3f} {1e3 * med / n_steps:8.2f} "
              f"{med / base:6.2f} {n_warn[m]:8d}")
    for m, msg in first_warn.items():
        print(f"# {m} warned ({n_warn[m]}x), first: {msg}")
    print(f"# total {time.perf_counter() - t_start:.0f}s")


if __name__ == "__main__":
    main()
