"""Figure 3 (issue 11): test Recall@20 per encoder and task set, mean ± std over seeds, from the
Table 3 columns that results/table3/commands.sh wrote (results/table3/<data set>-<encoder>/), with
the paper's value of each bar as a red tick. One panel per data set that has a column.

    python results/table3/figure3.py results/table3 results/table3/figure3.png   # needs the plot extra
"""

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from table3 import PAPER, ROWS  # noqa: E402

ENCODERS = ("mf", "lightgcn", "ngcf")
DATASETS = ("office", "videogame", "epinion")
KEY = "recall@20"


def cell(col: Path, sub: str, method: str):
    """(mean, std) of test R@20 of ``method`` in the report of ``col/sub``, or None."""
    table = col / sub / "report" / "table2.csv"
    if not table.is_file():
        return None
    with open(table, newline="") as f:
        row = next((r for r in csv.DictReader(f) if r["method"] == method), None)
    return None if row is None else (float(row[KEY + "_mean"]), float(row[KEY + "_std"]))


def main(root: Path, out: Path) -> None:
    present = [d for d in DATASETS if any((root / f"{d}-{e}").is_dir() for e in ENCODERS)]
    if not present:
        sys.exit(f"{root}: no Table 3 column (<data set>-<encoder>/) yet")
    fig, axes = plt.subplots(1, len(present), figsize=(5.5 * len(present) + 1.6, 3.6), squeeze=False)
    width = 0.8 / len(ROWS)
    for ax, d in zip(axes[0], present):
        for j, (label, sub, method, pi) in enumerate(ROWS):
            x = np.arange(len(ENCODERS)) + (j - (len(ROWS) - 1) / 2) * width
            vals = [cell(root / f"{d}-{e}", sub, method) for e in ENCODERS]
            ax.bar(x, [v[0] if v else np.nan for v in vals], width, yerr=[v[1] if v else 0 for v in vals],
                   label=label, capsize=2)
            if pi is not None:
                paper = [PAPER.get((d, e), [None] * 4)[pi] for e in ENCODERS]
                ax.plot(x, [p[1] if p else np.nan for p in paper], "_", color="red", markersize=9, mew=2,
                        label="the paper" if j == len(ROWS) - 1 else None)
        ax.set_xticks(np.arange(len(ENCODERS)), ENCODERS)
        ax.set_title(d)
        ax.set_ylabel("test R@20")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"written: {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
