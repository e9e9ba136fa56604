"""DirectAU's uniformity term alone, loss and gradient, on one office batch: pmtnumba against
PyTorch autograd, side by side, and the fraction of the core's FMA peak the engine reaches.

The batch is the first training batch of epoch 1 on the shipped ``office`` split (seed 0, 2,048
interactions); the table is the trainer's initial one (float32, d 32). Per step each contender
computes both uniformity terms of DirectAU (the batch's distinct users and distinct items) and the
gradient of their sum with respect to the table:

=================  ==============================================================================
``pmt``            ``uniformity_loss_grad(E, users)`` and ``(E, items)`` (``np.unique`` inside)
``torch``          ``torch.unique``, ``F.normalize``, ``torch.pdist(...).pow(2).mul(-2).exp().mean()
                   .log()`` per term, ``backward()`` into the [N, d] table (the autograd way)
=================  ==============================================================================

Both run ``--repeats`` times alternately after a warm-up; printed: median wall and CPU seconds
(``time.process_time``: the load of other processes on a shared machine inflates wall time, not
CPU time) and the ratio torch / pmt. The FMA peak is read from ``/proc/cpuinfo`` (flags, MHz):
2 FMA units x float32 lanes x 2 flops x GHz, with 8 lanes for AVX2 (16 for AVX-512) and 4 on AMD
family 23 models below 0x30 (Zen 1, whose 256-bit operations run as two 128-bit halves). The
flops of a term over ``m`` rows are those of the symmetric formulation: the Gram products of the
``m (m-1) / 2`` pairs and the two gradient products, ``3 m (m-1) d``. A large ``torch.mm`` in the
same run gives the rate a vendor GEMM reaches on this core.

    python benchmarks/bench_uniformity.py                 # 1 thread, 7 repeats
    python benchmarks/bench_uniformity.py --threads 2 --repeats 11
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pmtnumba  # noqa: E402,F401  (sets GOMP_SPINCOUNT before torch loads OpenMP)
import numba  # noqa: E402
from bench_epoch import cpu_name  # noqa: E402

from pmtnumba.data import load_dataset  # noqa: E402
from pmtnumba.data.samplers import epoch_batches  # noqa: E402
from pmtnumba.data.split import make_split  # noqa: E402
from pmtnumba.tasks.align_uniform import uniformity_loss_grad  # noqa: E402
from pmtnumba.training import FitConfig, Trainer  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover - bench extra missing
    torch = None


def cpu_peak_gflops() -> tuple[float, str]:
    """Nominal float32 FMA peak of one core from /proc/cpuinfo, and how it was derived."""
    flags, mhz, family, model = set(), 0.0, 0, 0
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            k = k.strip()
            if k == "flags" and not flags:
                flags = set(v.split())
            elif k == "cpu MHz" and not mhz:
                mhz = float(v)
            elif k == "cpu family" and not family:
                family = int(v)
            elif k == "model" and not model:
                model = int(v)
    lanes = 16 if "avx512f" in flags else 8 if ("avx2" in flags and "fma" in flags) else 4
    why = f"{lanes} float32 lanes ({'avx512f' if lanes == 16 else 'avx2+fma' if lanes == 8 else 'sse'})"
    vendor_zen1 = family == 23 and model < 0x30 and lanes == 8
    if vendor_zen1:
        lanes = 4
        why = "4 float32 lanes (AMD family 23 model < 0x30, Zen 1: 256-bit FMAs run as two 128-bit halves)"
    peak = 2 * lanes * 2 * mhz / 1e3
    return peak, f"2 FMA units x {why} x 2 flops x {mhz / 1e3:.3f} GHz = {peak:.1f} GFLOP/s"


def office_batch():
    sp = make_split(load_dataset("office"), seed=0)
    tr = Trainer(FitConfig(dataset="office", tasks=["bpr", "align_uniform"]), split=sp)
    E = np.ascontiguousarray(tr.encoder.E)
    b = epoch_batches(sp.train_users.size, 2048, 0, 1)[0]
    users = sp.train_users[b].astype(np.int64)
    items = sp.train_items[b].astype(np.int64) + sp.n_users
    return E, users, items


def pmt_step(E, users, items):
    lu, _, gu = uniformity_loss_grad(E, users)
    li, _, gi = uniformity_loss_grad(E, items)
    return lu + li


class TorchUniformity:
    def __init__(self, E, users, items):
        self.W = torch.from_numpy(E.copy()).requires_grad_(True)
        self.u, self.i = torch.from_numpy(users), torch.from_numpy(items)

    @staticmethod
    def _unif(x):
        x = torch.nn.functional.normalize(x, dim=-1)
        return torch.pdist(x, p=2).pow(2).mul(-2).exp().mean().log()

    def step(self):
        self.W.grad = None
        W = self.W
        loss = self._unif(W[torch.unique(self.u)]) + self._unif(W[torch.unique(self.i)])
        loss.backward()
        return float(loss.detach())


def timed(f):
    w0, c0 = time.perf_counter(), time.process_time()
    f()
    return time.perf_counter() - w0, time.process_time() - c0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    numba.set_num_threads(a.threads)
    if torch is not None:
        torch.set_num_threads(a.threads)
    E, users, items = office_batch()
    mu, mi, d = np.unique(users).size, np.unique(items).size, E.shape[1]
    flops = 3.0 * d * (mu * (mu - 1) + mi * (mi - 1))
    peak, why = cpu_peak_gflops()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# bench_uniformity {time.strftime('%Y-%m-%d %H:%M')} | {cpu_name()} | {a.threads} thread(s) | "
          f"numba {numba.__version__} | torch {torch.__version__ if torch else 'missing'} | load avg {load}")
    print(f"# office batch 1: {mu} distinct users, {mi} distinct items, d {d}, {E.dtype}; "
          f"{flops / 1e6:.0f} Mflop per step (3 m (m-1) d per term)")
    print(f"# peak: {why}")
    conts = {"pmt": lambda: pmt_step(E, users, items)}
    if torch is not None:
        tu = TorchUniformity(E, users, items)
        conts["torch"] = tu.step
        ref = pmt_step(E, users, items)
        print(f"# loss: pmt {ref:.6f}, torch {tu.step():.6f}")
    for f in conts.values():  # warm-up (JIT, thread pools)
        f()
        f()
    times = {n: [] for n in conts}
    names = list(conts)
    for rep in range(a.repeats):
        for n in names[rep % len(names):] + names[: rep % len(names)]:
            times[n].append(timed(conts[n]))
    med = {n: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v)) for n, v in times.items()}
    print(f"{'contender':10s} {'wall ms':>8s} {'cpu ms':>8s} {'GFLOP/s (cpu)':>14s} {'of peak':>8s}")
    for n in names:
        w, c = med[n]
        g = flops / c / 1e9
        print(f"{n:10s} {1e3 * w:8.1f} {1e3 * c:8.1f} {g:14.1f} {100 * g / peak:7.1f}%")
    if "torch" in med:
        rw, rc = med["torch"][0] / med["pmt"][0], med["torch"][1] / med["pmt"][1]
        print(f"torch / pmt = {rw:.2f}x wall, {rc:.2f}x cpu   (target >= 4: {'met' if min(rw, rc) >= 4 else 'NOT met'})")
        torch.set_num_threads(1)
        A, B = torch.rand(1024, 1024), torch.rand(1024, 1024)
        A @ B
        w, c = timed(lambda: [A @ B for _ in range(8)])
        print(f"# torch.mm 1024^3 float32, 1 thread: {8 * 2 * 1024 ** 3 / c / 1e9:.1f} GFLOP/s (cpu) "
              f"= {100 * 8 * 2 * 1024 ** 3 / c / 1e9 / peak:.0f}% of the nominal peak")
    print(f"# load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
