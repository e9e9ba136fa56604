"""Assemble Table 3 (issue 11) for one encoder on one data set from the three `sweep report`s that
results/table3/commands.sh writes (OUT/main, OUT/t1, OUT/t2), with the paper's row beside each.

    python results/table3/table3.py results/table3/office-lightgcn > results/table3/office-lightgcn/table3.md
"""

import csv
import json
import sys
from pathlib import Path

KEYS = ("recall@5", "recall@20", "ndcg@5", "ndcg@20")
# The paper's Table 3 (R@5, R@20, N@5, N@20); its +T1 / +T2 / +T1,T2 rows are trained with PMTRec.
PAPER = {
    ("epinion", "mf"): [(0.0117, 0.0349, 0.0118, 0.0198), (0.0158, 0.0395, 0.0158, 0.0238),
                        (0.0167, 0.0414, 0.0166, 0.0249), (0.0170, 0.0413, 0.0168, 0.0250)],
    ("videogame", "mf"): [(0.0427, 0.1085, 0.0336, 0.0553), (0.0469, 0.1151, 0.0373, 0.0600),
                          (0.0465, 0.1161, 0.0368, 0.0596), (0.0467, 0.1154, 0.0374, 0.0601)],
    ("office", "mf"): [(0.0281, 0.0729, 0.0243, 0.0402), (0.0372, 0.0860, 0.0304, 0.0470),
                       (0.0232, 0.0684, 0.0190, 0.0345), (0.0347, 0.0905, 0.0281, 0.0473)],
    ("epinion", "ngcf"): [(0.0118, 0.0294, 0.0121, 0.0180), (0.0181, 0.0461, 0.0185, 0.0278),
                          (0.0184, 0.0481, 0.0187, 0.0287), (0.0195, 0.0507, 0.0199, 0.0302)],
    ("videogame", "ngcf"): [(0.0433, 0.1105, 0.0344, 0.0565), (0.0463, 0.1139, 0.0369, 0.0593),
                            (0.0450, 0.1117, 0.0359, 0.0579), (0.0463, 0.1138, 0.0370, 0.0594)],
    ("office", "ngcf"): [(0.0232, 0.0689, 0.0197, 0.0355), (0.0281, 0.0812, 0.0201, 0.0382),
                         (0.0202, 0.0688, 0.0145, 0.0308), (0.0354, 0.0823, 0.0295, 0.0454)],
    ("epinion", "lightgcn"): [(0.0122, 0.0320, 0.0129, 0.0195), (0.0173, 0.0459, 0.0178, 0.0273),
                              (0.0201, 0.0499, 0.0196, 0.0296), (0.0198, 0.0511, 0.0197, 0.0301)],
    ("videogame", "lightgcn"): [(0.0418, 0.1041, 0.0331, 0.0538), (0.0442, 0.1133, 0.0355, 0.0585),
                                (0.0445, 0.1138, 0.0356, 0.0585), (0.0448, 0.1144, 0.0355, 0.0586)],
    ("office", "lightgcn"): [(0.0260, 0.0723, 0.0216, 0.0380), (0.0338, 0.0846, 0.0258, 0.0450),
                             (0.0221, 0.0713, 0.0165, 0.0332), (0.0338, 0.0931, 0.0280, 0.0466)],
}
# (label, sweep directory, method in its report, paper row index)
ROWS = [("BPR", "main", "bpr-only", 0), ("+T1 (EW)", "t1", "ew", None), ("+T1 (PMTRec)", "t1", "pmtrec", 1),
        ("+T2 (EW)", "t2", "ew", None), ("+T2 (PMTRec)", "t2", "pmtrec", 2),
        ("+T1,T2 (EW)", "main", "ew", None), ("+T1,T2 (PMTRec)", "main", "pmtrec", 3)]


def main(out: Path) -> None:
    settings = json.loads((out / "main" / "sweep.json").read_text())
    dataset, encoder = settings["dataset"], settings["base_config"]["encoder"]
    paper = PAPER.get((dataset, encoder))
    print(f"# Table 3: {encoder} on {dataset} (test, mean ± std over seeds; configuration chosen on validation)\n")
    print("| tasks (method) | seeds | " + " | ".join(k.replace("recall", "R").replace("ndcg", "N") for k in KEYS)
          + " | configuration |")
    print("|---|---|" + ":-:|" * len(KEYS) + "---|")
    for label, sub, method, pi in ROWS:
        table, best = out / sub / "report" / "table2.csv", out / sub / "report" / "best.csv"
        row = conf = None
        if table.is_file():
            with open(table, newline="") as f:
                row = next((r for r in csv.DictReader(f) if r["method"] == method), None)
            with open(best, newline="") as f:
                conf = next((r["params"] for r in csv.DictReader(f) if r["method"] == method), "")
        if row is None:
            print(f"| {label} | not run |" + " |" * len(KEYS) + " |")
        else:
            cells = [f"{float(row[k + '_mean']):.4f} ± {float(row[k + '_std']):.4f}" for k in KEYS]
            print(f"| {label} | {row['seeds']} | " + " | ".join(cells) + f" | {conf} |")
        if paper is not None and pi is not None:
            print(f"| paper, {label.split(' (')[0]} | | " + " | ".join(f"{v:.4f}" for v in paper[pi]) + " | |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
