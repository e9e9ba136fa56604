"""Table-3 style task investigation: BPR alone, +T1, +T2, +T1,T2 under one method.

    python experiments/task_sets.py --dataset office --method ew --lr 0.01 --wd 1e-4
"""

import argparse
import json
import time

from pmtnumba.data import load_dataset
from pmtnumba.data.split import make_split
from pmtnumba.tasks import PAPER_TASKS
from pmtnumba.training import FitConfig, Trainer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="office")
    p.add_argument("--method", default="ew")
    p.add_argument("--method-options", default="{}")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--wd", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sets", default="bpr,t1,t2,t1t2")
    p.add_argument("--aux-sampling", default="anchored")
    a = p.parse_args()
    sp = make_split(load_dataset(a.dataset), a.seed)
    t1, t2 = PAPER_TASKS[a.dataset][1:3]
    sets = {"bpr": ["bpr"], "t1": ["bpr", t1], "t2": ["bpr", t2], "t1t2": ["bpr", t1, t2]}
    print(f"{a.dataset} method={a.method} lr={a.lr} wd={a.wd} seed={a.seed} aux={a.aux_sampling}")
    for s in a.sets.split(","):
        cfg = FitConfig(dataset=a.dataset, tasks=sets[s], method=a.method, method_options=json.loads(a.method_options),
                        lr=a.lr, wd=a.wd, seed=a.seed, aux_sampling=a.aux_sampling)
        t0 = time.perf_counter()
        r = Trainer(cfg, split=sp).fit()
        te = r.test
        print(f"{'+'.join(sets[s]):28s} best_epoch={r.best_epoch:3d} valid R@20={r.best_valid['recall@20']:.4f} | test "
              f"R@5={te['recall@5']:.4f} R@20={te['recall@20']:.4f} N@5={te['ndcg@5']:.4f} N@20={te['ndcg@20']:.4f} "
              f"| {r.train_seconds / len(r.curve):.2f}s/epoch ({time.perf_counter() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
