"""Seconds per training epoch of the graph encoders, and LightGCN / NGCF against PyTorch.

Two tables:

``torch``  A LightGCN (and an NGCF) BPR epoch of the engine side by side with a plain PyTorch
           model on the same data, the same triplets (negatives drawn by the engine's sampler for
           both), the same initial parameters and the same thread count: propagation with
           ``torch.sparse.mm`` on the same normalised adjacency, gradients by autograd, one
           ``torch.optim.Adam`` on all parameters. Contenders alternate; medians and the ratio
           torch / engine are printed.
``epochs`` Seconds per epoch for each encoder (mf, lightgcn, ngcf) on each data set, BPR alone
           (EW) and the paper's task set with PMTRec. ``--max-steps N`` times only the first N
           steps of an epoch and scales by steps per epoch (marked ``*``): for epinion, where a
           full-graph epoch has ~312 steps.

    python benchmarks/bench_encoders.py --part torch --datasets office --threads 1
    python benchmarks/bench_encoders.py --part epochs --datasets office,videogame --threads 1
    python benchmarks/bench_encoders.py --part epochs --datasets epinion --max-steps 10
    python benchmarks/bench_encoders.py --part torch --datasets gowalla --encoders lightgcn --dim 64 --max-steps 10

Needs the ``bench`` extra (torch, CPU build) for ``--part torch``; the package never imports it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numba
import numpy as np

from pmtnumba.combiners import StepContext
from pmtnumba.data import load_dataset
from pmtnumba.data.samplers import epoch_batches
from pmtnumba.data.split import make_split
from pmtnumba.rng import make_key
from pmtnumba.tasks import Batch, default_tasks
from pmtnumba.training import FitConfig, Trainer
from pmtnumba.training.step import StepWorkspace, graph_train_step, train_step

try:
    from bench_epoch import cpu_name
except ImportError:  # run from another folder
    import platform

    def cpu_name():
        return platform.processor() or platform.machine()


def steps_of(tr: Trainer, epoch: int, max_steps: int):
    sp, cfg = tr.split, tr.cfg
    batches = epoch_batches(sp.train_users.size, cfg.batch_size, cfg.seed, epoch)
    return batches if not max_steps else batches[:max_steps], len(batches)


def engine_epoch(tr: Trainer, epoch: int, max_steps: int = 0) -> float:
    """Seconds of one training epoch of the engine (no evaluation); scaled to a full epoch when
    only ``max_steps`` steps are run."""
    sp, cfg = tr.split, tr.cfg
    E = tr.encoder.E
    ws = StepWorkspace(tr.tasks, cfg.batch_size, E.shape[0], tr.encoder.out_dim, E.dtype)
    r = sp.train_ratings
    batches, n_all = steps_of(tr, epoch, max_steps)
    mf = tr.encoder.name == "mf"
    step = (epoch - 1) * 100_000
    t0 = time.perf_counter()
    for b in batches:
        step += 1
        batch = Batch(sp.train_users[b], sp.train_items[b], None if r is None else r[b])
        ctx = StepContext(epoch=epoch, step=step, rng=tr.rng, n_users=sp.n_users)
        if mf:
            train_step(E, tr.tasks, batch, tr.combiner, tr.adam, ctx, cfg.seed, ws)
        else:
            graph_train_step(tr.encoder, tr.tasks, batch, tr.combiner, tr.adam, tr.dense_adams, ctx, cfg.seed, ws)
    return (time.perf_counter() - t0) * n_all / len(batches)


# --------------------------------------------------------------------------------------------
# PyTorch reference models (benchmark only)


class TorchModel:
    """LightGCN or NGCF in plain PyTorch, started from the engine trainer's parameters."""

    def __init__(self, tr: Trainer, layout: str = "coo"):
        import torch

        self.torch = torch
        enc = tr.encoder
        adj = enc.adj
        self.kind = enc.name
        self.U = enc.n_users
        self.K = enc.layers
        if layout == "csr":
            self.A = torch.sparse_csr_tensor(torch.from_numpy(adj.indptr), torch.from_numpy(adj.indices.astype(np.int64)),
                                             torch.from_numpy(adj.data32), size=(adj.n_rows, adj.n_rows))
        else:  # COO, as the LightGCN / NGCF reference code builds it
            rows = np.repeat(np.arange(adj.n_rows), np.diff(adj.indptr))
            idx = torch.from_numpy(np.stack([rows, adj.indices.astype(np.int64)]))
            self.A = torch.sparse_coo_tensor(idx, torch.from_numpy(adj.data32), (adj.n_rows, adj.n_rows)).coalesce()
        self.E = torch.nn.Parameter(torch.from_numpy(enc.E.copy()))
        params = [self.E]
        if self.kind == "ngcf":
            self.W1 = torch.nn.Parameter(torch.from_numpy(enc.W1.copy()))
            self.W2 = torch.nn.Parameter(torch.from_numpy(enc.W2.copy()))
            self.b = torch.nn.Parameter(torch.from_numpy(enc.b.copy()))
            self.p = enc.dropout
            params += [self.W1, self.W2, self.b]
        self.opt = torch.optim.Adam(params, lr=tr.cfg.lr, weight_decay=tr.cfg.wd)

    def forward(self):
        torch = self.torch
        if self.kind == "lightgcn":
            out, cur = self.E, self.E
            for _ in range(self.K):
                cur = torch.sparse.mm(self.A, cur)
                out = out + cur
            return out / (self.K + 1)
        Es = [self.E]
        for k in range(self.K):
            X = Es[-1]
            S = torch.sparse.mm(self.A, X)
            Z = (S + X) @ self.W1[k] + (S * X) @ self.W2[k] + self.b[k]
            Es.append(torch.nn.functional.dropout(torch.nn.functional.leaky_relu(Z, 0.2), self.p))
        return torch.cat(Es, dim=1)

    def step(self, u, i, j):
        torch = self.torch
        F = self.forward()
        x = (F[u] * (F[i] - F[j])).sum(1)
        loss = torch.nn.functional.softplus(-x).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def torch_epoch(model: TorchModel, tr: Trainer, epoch: int, max_steps: int = 0) -> float:
    torch = model.torch
    sp = tr.split
    batches, n_all = steps_of(tr, epoch, max_steps)
    bpr = tr.tasks[0]
    step = (epoch - 1) * 100_000
    t0 = time.perf_counter()
    for b in batches:
        step += 1
        batch = Batch(sp.train_users[b], sp.train_items[b])
        u, i, j = bpr.triplets(batch, make_key(tr.cfg.seed, epoch, step, 0))  # the engine's sampler
        model.step(torch.from_numpy(u), torch.from_numpy(i), torch.from_numpy(j))
    return (time.perf_counter() - t0) * n_all / len(batches)


def part_torch(a, threads):
    import torch

    import warnings

    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    print(f"torch {torch.__version__} | A_hat as {a.torch_layout}")
    print("| data | encoder | threads | engine s/epoch | torch s/epoch | torch / engine |")
    print("|---|---|---:|---:|---:|---:|")
    for name in a.datasets.split(","):
        sp = make_split(load_dataset(name), seed=0)
        for enc in a.encoders.split(","):
            if enc == "mf":
                continue
            for nt in threads:
                numba.set_num_threads(nt)
                torch.set_num_threads(nt)
                tr = Trainer(FitConfig(dataset=name, tasks=["bpr"], method="ew", encoder=enc, layers=a.layers,
                                       lr=1e-3, wd=1e-4, dim=a.dim), split=sp)
                model = TorchModel(tr, a.torch_layout)
                engine_epoch(tr, 1, 2)  # warm-up (compile)
                torch_epoch(model, tr, 1, 2)
                te, tt = [], []
                for rep in range(a.repeats):
                    te.append(engine_epoch(tr, 2 + rep, a.max_steps))
                    tt.append(torch_epoch(model, tr, 2 + rep, a.max_steps))
                me, mt = statistics.median(te), statistics.median(tt)
                star = "*" if a.max_steps else ""
                print(f"| {name} | {enc} | {nt} | {me:.3f}{star} | {mt:.3f}{star} | {mt / me:.2f}x |", flush=True)


def part_epochs(a, threads):
    print("| data | encoder | tasks | method | threads | steps/epoch | s/epoch |")
    print("|---|---|---|---|---:|---:|---:|")
    for name in a.datasets.split(","):
        sp = make_split(load_dataset(name), seed=0)
        for enc in a.encoders.split(","):
            for ts, method in (("bpr", "ew"), ("paper", "pmtrec")):
                tasks = ["bpr"] if ts == "bpr" else default_tasks(name)
                for nt in threads:
                    numba.set_num_threads(nt)
                    tr = Trainer(FitConfig(dataset=name, tasks=tasks, method=method, encoder=enc, layers=a.layers,
                                           dim=a.dim), split=sp)
                    engine_epoch(tr, 1, 2)  # warm-up (compile)
                    t = statistics.median(engine_epoch(tr, 2 + rep, a.max_steps) for rep in range(a.repeats))
                    n_all = steps_of(tr, 1, 0)[1]
                    star = "*" if a.max_steps and a.max_steps < n_all else ""
                    print(f"| {name} | {enc} | {','.join(tasks)} | {method} | {nt} | {n_all} | {t:.3f}{star} |",
                          flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", default="torch", choices=["torch", "epochs"])
    p.add_argument("--datasets", default="office")
    p.add_argument("--encoders", default="lightgcn,ngcf")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--dim", type=int, default=32, help="embedding size (LightGCN's published runs: 64)")
    p.add_argument("--torch-layout", default="coo", choices=["coo", "csr"], help="torch.sparse layout of A_hat")
    p.add_argument("--threads", default="1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=0, help="time only the first N steps of an epoch, scaled (0: all)")
    a = p.parse_args()
    threads = [int(t) for t in a.threads.split(",") if int(t) <= numba.config.NUMBA_NUM_THREADS]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} | {cpu_name()} | {numba.config.NUMBA_NUM_THREADS} cores visible | "
          f"numba {numba.__version__} | load {os.getloadavg()[0]:.1f} | layers {a.layers} | dim {a.dim}")
    (part_torch if a.part == "torch" else part_epochs)(a, threads)


if __name__ == "__main__":
    main()
