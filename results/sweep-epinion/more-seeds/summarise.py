"""Epinion's leading methods over seeds 0-2: seed 0 from the sweep reports (the study's trials),
seeds 1-2 from more-seeds/ and (BPR only, dense) dense/report/seeds/. Prints mean ± std (ddof 1)
of test R@20 / N@20 and paired t-tests (scipy.stats.ttest_rel over the 3 seeds).

    python results/sweep-epinion/more-seeds/summarise.py
"""
import csv
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
TOP = HERE.parent


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def collect(mode):
    got = {}
    for r in rows(TOP / mode / "report" / "runs.csv"):
        got.setdefault(r["method"], {})[int(r["seed"])] = r
    files = [HERE / "dense-seeds12" / "runs.csv"] if mode == "dense" else \
        [HERE / f"sparse-seed{s}" / "runs.csv" for s in (1, 2)]
    if mode == "dense":
        files += sorted((TOP / "dense" / "report" / "seeds").glob("bpr-only-*/seed*/runs.csv"))
    for f in files:
        for r in rows(f):
            m = "bpr-only" if "bpr-only" in str(f) else r["method"]
            got.setdefault(m, {})[int(r["seed"])] = r
    return got


for mode, methods in (("dense", ("bpr-only", "pmtrec", "ew")), ("sparse", ("ew", "bpr-only", "pmtrec"))):
    got = collect(mode)
    print(f"{mode} Adam, test R@20 / N@20 per seed 0, 1, 2; mean ± std")
    for m in methods:
        r20 = np.array([float(got[m][s]["recall@20"]) for s in (0, 1, 2)])
        n20 = np.array([float(got[m][s]["ndcg@20"]) for s in (0, 1, 2)])
        print(f"  {m:9s} R@20 {' '.join(f'{x:.4f}' for x in r20)} -> {r20.mean():.4f} ± {r20.std(ddof=1):.4f} | "
              f"N@20 {' '.join(f'{x:.4f}' for x in n20)} -> {n20.mean():.4f} ± {n20.std(ddof=1):.4f}")
    for a, b in ((methods[0], methods[1]), (methods[0], methods[2]), (methods[1], methods[2])):
        p = [stats.ttest_rel([float(got[a][s][k]) for s in (0, 1, 2)], [float(got[b][s][k]) for s in (0, 1, 2)]).pvalue
             for k in ("recall@20", "ndcg@20")]
        print(f"  paired t-test {a} vs {b}: p {p[0]:.3g} (R@20) / {p[1]:.3g} (N@20)")
