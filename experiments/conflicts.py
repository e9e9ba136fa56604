"""How much do the task gradients conflict, and how much does PCGrad change the step?

Trains PCGrad (MF, CPU) for a few epochs and, for every step, reads the Gram matrix A of the
task gradients that PCGrad itself is given: the pairwise cosines ``A_ij / sqrt(A_ii A_jj)`` and
the relative change of the combined step against EW's, ``||g_pcgrad - g_ew|| / ||g_ew||`` (both
are combinations ``w^T G`` of the same task gradients, so the norm is ``sqrt(d^T A d)`` with
``d = w - 1``). Prints one line per epoch: where the cosines are near 0 and the change is tiny,
PCGrad (and GradVac) train almost exactly as EW does.

    python experiments/conflicts.py --dataset epinion --adam dense --lr 0.01 --wd 1e-6 --epochs 4
"""

import argparse

import numpy as np

from pmtnumba.combiners.pcgrad import PCGrad
from pmtnumba.training import FitConfig, Trainer


class RecordingPCGrad(PCGrad):
    """PCGrad that keeps, per step, the change against EW and the task cosines."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def task_weights(self, A, T, ctx):
        w = super().task_weights(A, T, ctx)
        d = w - 1.0
        n_ew = np.sqrt(A.sum())
        norms = np.sqrt(np.diag(A))
        cos = A / np.maximum(np.outer(norms, norms), 1e-300)
        self.steps.append((ctx.epoch, np.sqrt(max(d @ A @ d, 0.0)) / n_ew, cos[np.triu_indices(T, 1)]))
        return w


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="epinion")
    p.add_argument("--adam", default="dense", choices=["dense", "sparse"])
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--wd", type=float, default=1e-6)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    cfg = FitConfig(dataset=a.dataset, method="pcgrad", adam_mode=a.adam, lr=a.lr, wd=a.wd, epochs=a.epochs,
                    eval_every=a.epochs + 1, seed=a.seed, threads=1, device="cpu")
    trainer = Trainer(cfg)
    rec = trainer.combiner = RecordingPCGrad()
    names = [t.name for t in trainer.tasks]
    pairs = [f"{names[i]}-{names[j]}" for i in range(len(names)) for j in range(i + 1, len(names))]
    print(f"{a.dataset} pcgrad {a.adam} Adam lr {a.lr} wd {a.wd} seed {a.seed}; tasks {','.join(names)}")
    trainer.fit()
    for e in range(1, a.epochs + 1):
        rows = [s for s in rec.steps if s[0] == e]
        change = np.array([s[1] for s in rows])
        cos = np.array([s[2] for s in rows])
        proj = sum(bool((c < 0).any()) for c in cos)
        cs = "; ".join(f"cos({pr}) mean {cos[:, k].mean():+.4f} min {cos[:, k].min():+.4f}" for k, pr in enumerate(pairs))
        print(f"epoch {e}: {len(rows)} steps, {proj} with a negative cosine; ||g_pcgrad - g_ew|| / ||g_ew|| "
              f"mean {change.mean():.2e} max {change.max():.2e}; {cs}", flush=True)


if __name__ == "__main__":
    main()
