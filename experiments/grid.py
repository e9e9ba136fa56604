"""Grid search of lr x wd (x extra options) on validation Recall@20; prints one line per setting.

    python experiments/grid.py --dataset office --tasks bpr --lr 0.01,0.005,0.001 --wd 1e-2,1e-4,1e-6
"""

import argparse
import itertools
import json
import time

from pmtnumba.data import load_dataset
from pmtnumba.data.split import make_split
from pmtnumba.training import FitConfig, Trainer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="office")
    p.add_argument("--tasks", default="bpr")
    p.add_argument("--method", default="ew")
    p.add_argument("--method-options", default="{}", help="JSON dict; list values are gridded")
    p.add_argument("--lr", default="0.01,0.005,0.001")
    p.add_argument("--wd", default="1e-2,1e-4,1e-6,1e-8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=300)
    a = p.parse_args()
    sp = make_split(load_dataset(a.dataset), a.seed)
    mopts = json.loads(a.method_options)
    grid_keys = [k for k, v in mopts.items() if isinstance(v, list)]
    grid_vals = [mopts[k] for k in grid_keys]
    best = None
    for lr, wd, *mv in itertools.product([float(x) for x in a.lr.split(",")], [float(x) for x in a.wd.split(",")], *grid_vals):
        opts = dict(mopts)
        opts.update(dict(zip(grid_keys, mv)))
        cfg = FitConfig(dataset=a.dataset, tasks=a.tasks.split(","), method=a.method, method_options=opts,
                        lr=lr, wd=wd, seed=a.seed, epochs=a.epochs)
        t0 = time.perf_counter()
        r = Trainer(cfg, split=sp).fit()
        line = (f"lr={lr:g} wd={wd:g} {json.dumps(opts)} best_epoch={r.best_epoch} valid R@20={r.best_valid['recall@20']:.4f} "
                f"test R@20={r.test['recall@20']:.4f} N@20={r.test['ndcg@20']:.4f} ({time.perf_counter() - t0:.0f}s)")
        print(line, flush=True)
        if best is None or r.best_valid["recall@20"] > best[0]:
            best = (r.best_valid["recall@20"], line)
    print("BEST (by validation):", best[1])


if __name__ == "__main__":
    main()
