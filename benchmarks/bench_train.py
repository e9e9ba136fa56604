"""Training epoch time of pmtnumba against its yardsticks, one thread then two, side by side.

Contenders, on each data set (the shipped ``videogame`` split, a synthetic data set the size of
the 2018 Video Games split: 55,223 users, 17,408 items, ~300,000 train interactions, d = 32, and the
shipped ``office`` split with its paper task set bpr + align_uniform + rating instead of
bpr + coview + cobuy):

=================  ==============================================================================
``pmt-bpr``        pmtnumba, BPR only (lazy Adam, batch 2048)
``pmt-ew``         pmtnumba, bpr + coview + cobuy, EW combiner
``pmt-pmtrec``     pmtnumba, bpr + coview + cobuy, PMTRec combiner
``torch-bpr``      a straightforward PyTorch BPR-MF: nn.Embedding d 32, batch 2048, dense
                   torch.optim.Adam, negatives drawn in NumPy
``torch-pmtrec``   the same model with three losses, one autograd gradient per loss (separate
                   graphs), the per-row softmax-of-norms fusion of the three dense [N, d]
                   embedding gradients, then Adam: the paper's way of running PMTRec (office:
                   DirectAU as ``F.normalize``, ``pdist``, ``exp``, ``mean``, ``log`` on the batch's
                   distinct users and items, and the rating loss ``mean((e_u . e_i - r)^2)``)
``implicit-bpr``   ``implicit.cpu.bpr.BayesianPersonalizedRanking`` (factors 32, SGD, no Adam),
                   one ``fit`` with ``iterations=1`` per measured epoch, on the same train matrix
=================  ==============================================================================

Every contender samples its own triplets each epoch (pmtnumba with its counter-based samplers,
PyTorch with vectorised NumPy rejection sampling of the same distributions, implicit with its own
sampler); the sampling is part of the epoch time. Each contender gets a warm-up epoch at each thread
count, then the contenders are run alternately ``--repeats`` times (order rotated every round) and
the medians are printed with the ratios issue 6 names:

* ``torch-pmtrec / pmt-pmtrec``  (target >= 8)
* PMTRec's overhead over EW as % of the PMTRec epoch, ``(pmt-pmtrec - pmt-ew) / pmt-pmtrec``
  (target <= 15 %), next to the combiner's own time measured inside those epochs
* ``pmt-bpr / implicit-bpr``     (target <= 2)

Numba, ``torch.set_num_threads`` and implicit's ``num_threads`` all get the thread count. Needs the
``bench`` extra (``pip install -e '.[bench]'``); a contender whose package is missing is skipped.

    python benchmarks/bench_train.py                      # both data sets, 1 then 2 threads, 3 repeats
    python benchmarks/bench_train.py --quick              # a quarter-size synthetic set, 2 repeats
    python benchmarks/bench_train.py --datasets synthetic --threads 1 --repeats 5
    python benchmarks/bench_train.py --datasets office     # the DirectAU task set (issue 14)
    python benchmarks/bench_train.py --profile            # where a pmtnumba epoch spends its time

``--profile`` runs no yardsticks: it profiles ``--repeats`` epochs of each pmtnumba contender with
cProfile and prints, per function (each Numba kernel is one), milliseconds per step.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sps

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pmtnumba  # noqa: E402,F401  (sets GOMP_SPINCOUNT before torch/implicit load OpenMP)
import numba  # noqa: E402
from bench_epoch import cpu_name, run_epoch  # noqa: E402

from pmtnumba.data import load_dataset  # noqa: E402
from pmtnumba.data.dataset import Dataset  # noqa: E402
from pmtnumba.data.link_samplers import symmetric_link_csr  # noqa: E402
from pmtnumba.data.samplers import epoch_batches  # noqa: E402
from pmtnumba.data.split import make_split  # noqa: E402
from pmtnumba.training import FitConfig, Trainer  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover - bench extra missing
    torch = None
try:
    from implicit.cpu.bpr import BayesianPersonalizedRanking
except ImportError:  # pragma: no cover
    BayesianPersonalizedRanking = None

TASKS3 = ["bpr", "coview", "cobuy"]
OFFICE3 = ["bpr", "align_uniform", "rating"]  # the paper's office task set
BATCH, DIM, LR, WD = 2048, 32, 1e-2, 1e-4  # pmtnumba's defaults, used by every contender
ALPHA, TAU = 1.1, 1e-4  # PMTRec's defaults


# ------------------------------------------------------------------------------------------------
# data


def synthetic_dataset(n_users=55_223, n_items=17_408, n_interactions=499_000, n_coview=17_000,
                      n_cobuy=800_000, seed=0) -> Dataset:
    """A random data set the size of the 2018 Video Games split (60 % of ``n_interactions`` ends
    up in train: ~299,400). Users and items are drawn with power-law weights ``(rank + 5)^-a``
    (a = 0.7 for users, 0.9 for items; distinct pairs only). Co-view links join items drawn by
    popularity among 45 % of the items (so most items have none, as in videogame), co-buy links
    among 95 % of them (about 46 per item, also as in videogame)."""
    rng = np.random.default_rng(seed)

    def powerlaw(n, a):
        p = (np.arange(n) + 5.0) ** -a
        p = p / p.sum()
        return p[rng.permutation(n)]  # popularity not tied to the id

    pu, pi = powerlaw(n_users, 0.7), powerlaw(n_items, 0.9)
    keys = np.empty(0, np.int64)
    while keys.size < n_interactions:
        m = int(1.3 * (n_interactions - keys.size)) + 1000
        u = rng.choice(n_users, m, p=pu)
        i = rng.choice(n_items, m, p=pi)
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * n_items + i]))
    keys = rng.permutation(keys)[:n_interactions]

    def links(n_links, frac):
        sub = rng.choice(n_items, int(frac * n_items), replace=False)
        p = pi[sub] / pi[sub].sum()
        a = sub[rng.choice(sub.size, n_links, p=p)]
        b = sub[rng.choice(sub.size, n_links, p=p)]
        pairs = np.stack([a, b], 1)
        return pairs[a != b].astype(np.int32)

    return Dataset(name="synthetic", n_users=n_users, n_items=n_items,
                   users=(keys // n_items).astype(np.int32), items=(keys % n_items).astype(np.int32),
                   also_viewed=links(n_coview, 0.45), also_bought=links(n_cobuy, 0.95), source="synthetic")


# ------------------------------------------------------------------------------------------------
# the PyTorch yardstick


class NumpySampler:
    """Vectorised NumPy sampling of the pmtnumba tasks' distributions: BPR negatives uniform over
    the items a user has no train interaction with; anchored link triplets (anchor = the batch
    item, positive uniform among its links, negative uniform among the items neither the anchor
    nor linked). Rejection rounds on sorted pair keys (a few leftovers may stay unresolved, as in
    any bounded rejection sampler)."""

    ROUNDS = 8

    def __init__(self, sp, link_csrs, seed=0):
        self.n_users, self.n_items = sp.n_users, sp.n_items
        indptr, indices = sp.train
        self.train_keys = np.repeat(np.arange(sp.n_users, dtype=np.int64), np.diff(indptr)) * sp.n_items + indices
        self.links = []
        for ip, ix in link_csrs:
            keys = np.repeat(np.arange(sp.n_items, dtype=np.int64), np.diff(ip)) * sp.n_items + ix
            self.links.append((ip, ix.astype(np.int64), keys))
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def _member(sorted_keys, q):
        pos = np.searchsorted(sorted_keys, q)
        pos[pos == sorted_keys.size] = 0
        return sorted_keys[pos] == q

    def _negatives(self, anchors, keys, exclude_self):
        neg = self.rng.integers(0, self.n_items, anchors.size)
        for _ in range(self.ROUNDS):
            bad = self._member(keys, anchors * self.n_items + neg)
            if exclude_self:
                bad |= neg == anchors
            nb = int(bad.sum())
            if nb == 0:
                break
            neg[bad] = self.rng.integers(0, self.n_items, nb)
        return neg

    def bpr(self, users, items):
        """(u, i, j) as row ids of the one [U + I, d] table."""
        j = self._negatives(users, self.train_keys, False)
        U = self.n_users
        return users, items + U, j + U

    def link(self, t, items):
        ip, ix, keys = self.links[t]
        deg = ip[items + 1] - ip[items]
        a = items[deg > 0]
        deg = deg[deg > 0]
        pos = ix[ip[a] + (self.rng.random(a.size) * deg).astype(np.int64)]
        neg = self._negatives(a, keys, True)
        U = self.n_users
        return a + U, pos + U, neg + U


class TorchMF:
    """BPR-MF in PyTorch as one would write it: one nn.Embedding of U + I rows (Xavier init),
    dense torch.optim.Adam (lr 1e-2, weight decay 1e-4, pmtnumba's defaults)."""

    def __init__(self, sp, link_csrs, three_tasks: bool, seed=0, tasks=None):
        torch.manual_seed(seed)
        self.tasks = tasks or TASKS3
        self.emb = torch.nn.Embedding(sp.n_users + sp.n_items, DIM)
        torch.nn.init.xavier_uniform_(self.emb.weight)
        self.opt = torch.optim.Adam(self.emb.parameters(), lr=LR, weight_decay=WD)
        self.sampler = NumpySampler(sp, link_csrs, seed)
        self.sp = sp
        self.three = three_tasks

    def _loss(self, a, b, c):
        ea, eb, ec = self.emb(torch.from_numpy(a)), self.emb(torch.from_numpy(b)), self.emb(torch.from_numpy(c))
        x = (ea * (eb - ec)).sum(1)
        return torch.nn.functional.softplus(-x).mean()

    def _directau(self, users, items, gamma=1.0):
        """DirectAU as its authors write it: alignment + gamma * (uniformity of the distinct users
        + of the distinct items) / 2 on L2-normalised embeddings."""
        F = torch.nn.functional
        u, i = torch.from_numpy(users), torch.from_numpy(items)
        x, y = F.normalize(self.emb(u), dim=-1), F.normalize(self.emb(i), dim=-1)
        align = (x - y).norm(p=2, dim=1).pow(2).mean()

        def unif(z):
            return torch.pdist(z, p=2).pow(2).mul(-2).exp().mean().log()

        xu, yi = F.normalize(self.emb(torch.unique(u)), dim=-1), F.normalize(self.emb(torch.unique(i)), dim=-1)
        return align + gamma * (unif(xu) + unif(yi)) / 2

    def _rating(self, users, items, r):
        x = (self.emb(torch.from_numpy(users)) * self.emb(torch.from_numpy(items))).sum(1)
        return (x - torch.from_numpy(r)).pow(2).mean()

    def epoch(self, epoch: int) -> float:
        sp, W = self.sp, self.emb.weight
        t0 = time.perf_counter()
        for b in epoch_batches(sp.train_users.size, BATCH, 0, epoch):
            users, items = sp.train_users[b], sp.train_items[b]
            if not self.three:
                loss = self._loss(*self.sampler.bpr(users, items))
                self.opt.zero_grad()
                loss.backward()
            else:
                # one autograd gradient per task loss: three dense [N, d] tensors
                if self.tasks == OFFICE3:
                    losses = [lambda: self._loss(*self.sampler.bpr(users, items)),
                              lambda: self._directau(users, items + sp.n_users),
                              lambda: self._rating(users, items + sp.n_users, sp.train_ratings[b])]
                else:
                    trip = [self.sampler.bpr(users, items), self.sampler.link(0, items), self.sampler.link(1, items)]
                    losses = [lambda abc=abc: self._loss(*abc) for abc in trip]
                G = torch.stack([torch.autograd.grad(f(), W)[0] for f in losses])
                # PMTRec fusion: per-row softmax over tasks of the (focused) gradient norms
                n = G.norm(dim=2)
                n[0] *= ALPHA ** epoch
                w = torch.softmax(n / TAU, dim=0)
                W.grad = (w.unsqueeze(2) * G).sum(0)
            self.opt.step()
        return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------
# pmtnumba and implicit


class TimedCombiner:
    """Wraps a combiner and adds up the seconds spent in it (the in-epoch combiner cost)."""

    def __init__(self, inner):
        self.inner, self.name, self.seconds = inner, inner.name, 0.0

    def __call__(self, G, ctx):
        t0 = time.perf_counter()
        g = self.inner(G, ctx)
        self.seconds += time.perf_counter() - t0
        return g


class PmtContender:
    def __init__(self, sp, tasks, method):
        cfg = FitConfig(dataset=sp.dataset.name, tasks=list(tasks), method=method, record_weights=False,
                        batch_size=BATCH, dim=DIM, lr=LR, wd=WD)
        self.tr = Trainer(cfg, split=sp)
        self.tr.combiner = TimedCombiner(self.tr.combiner)
        self.comb_seconds = []

    def epoch(self, epoch: int) -> float:
        c = self.tr.combiner
        c.seconds = 0.0
        t = run_epoch(self.tr, epoch)
        self.comb_seconds.append(c.seconds)
        return t


class ImplicitContender:
    def __init__(self, sp):
        indptr, indices = sp.train
        self.X = sps.csr_matrix(
            (np.ones(indices.size, np.float32), indices, indptr), shape=(sp.n_users, sp.n_items))
        self.model = BayesianPersonalizedRanking(factors=DIM, learning_rate=LR, regularization=WD, iterations=1,
                                                 random_state=0)

    def epoch(self, epoch: int) -> float:
        self.model.num_threads = numba.get_num_threads()
        t0 = time.perf_counter()
        self.model.fit(self.X, show_progress=False)
        return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def task_set(name):
    return OFFICE3 if name == "office" else TASKS3


def _link_csrs(sp):
    ds = sp.dataset
    if ds.also_viewed is None or ds.also_bought is None:
        return []
    return [symmetric_link_csr(ds.also_viewed, sp.n_items), symmetric_link_csr(ds.also_bought, sp.n_items)]


def bench_dataset(name, sp, threads, repeats, only):
    link_csrs = _link_csrs(sp)
    tasks = task_set(name)
    makers = {
        "pmt-bpr": lambda: PmtContender(sp, ["bpr"], "ew"),
        "pmt-ew": lambda: PmtContender(sp, tasks, "ew"),
        "pmt-pmtrec": lambda: PmtContender(sp, tasks, "pmtrec"),
    }
    if torch is not None:
        makers["torch-bpr"] = lambda: TorchMF(sp, link_csrs, False)
        makers["torch-pmtrec"] = lambda: TorchMF(sp, link_csrs, True, tasks=tasks)
    if BayesianPersonalizedRanking is not None:
        makers["implicit-bpr"] = lambda: ImplicitContender(sp)
    names = [n for n in makers if only is None or n in only]
    cont = {n: makers[n]() for n in names}
    n_train = sp.train_users.size
    n_steps = len(epoch_batches(n_train, BATCH, 0, 1))
    results = []
    epoch = 0
    for nt in threads:
        numba.set_num_threads(nt)
        if torch is not None:
            torch.set_num_threads(nt)
        for n in names:  # warm-up (JIT, thread pools, first touch)
            epoch += 1
            cont[n].epoch(epoch)
        for n in names:
            if isinstance(cont[n], PmtContender):
                cont[n].comb_seconds.clear()
        times = {n: [] for n in names}
        load0 = _load()
        for rep in range(repeats):
            epoch += 1
            for n in names[rep % len(names):] + names[: rep % len(names)]:
                times[n].append(cont[n].epoch(epoch))
        med = {n: statistics.median(v) for n, v in times.items()}
        comb = {n: statistics.median(c.comb_seconds) for n, c in cont.items() if isinstance(c, PmtContender)}
        results.append((nt, med, comb, load0, _load(), times))
        print(f"\n## {name} ({'+'.join(tasks)}): {sp.n_users} users, {sp.n_items} items, {n_train} train "
              f"interactions, {n_steps} steps of {BATCH} | {nt} thread(s) | load avg {load0} -> {_load()}", flush=True)
        print(f"{'contender':14s} {'median s':>9s} {'min s':>8s} {'max s':>8s} {'ms/step':>8s} "
              f"{'samples/s':>11s} {'combiner s':>10s}")
        for n in names:
            c = f"{comb[n]:10.4f}" if n in comb and n != "pmt-bpr" else f"{'':10s}"
            print(f"{n:14s} {med[n]:9.3f} {min(times[n]):8.3f} {max(times[n]):8.3f} {1e3 * med[n] / n_steps:8.2f} "
                  f"{n_train / med[n]:11.0f} {c}")
        print(ratio_lines(med, comb))
    return results


def ratio_lines(med, comb) -> str:
    out = []
    if "torch-pmtrec" in med and "pmt-pmtrec" in med:
        r = med["torch-pmtrec"] / med["pmt-pmtrec"]
        out.append(f"torch-pmtrec / pmt-pmtrec        = {r:6.2f}x   (target >= 8: {'met' if r >= 8 else 'NOT met'})")
    if "torch-bpr" in med and "pmt-bpr" in med:
        out.append(f"torch-bpr / pmt-bpr              = {med['torch-bpr'] / med['pmt-bpr']:6.2f}x")
    if "pmt-ew" in med and "pmt-pmtrec" in med:
        ov = 100 * (med["pmt-pmtrec"] - med["pmt-ew"]) / med["pmt-pmtrec"]
        cm = 100 * (comb["pmt-pmtrec"] - comb["pmt-ew"]) / med["pmt-pmtrec"]
        out.append(f"PMTRec over EW, % of PMTRec epoch = {ov:5.1f} %  (epoch difference; combiner time difference "
                   f"{cm:.1f} %; target <= 15 %: {'met' if max(ov, cm) <= 15 else 'NOT met'})")
    if "implicit-bpr" in med and "pmt-bpr" in med:
        r = med["pmt-bpr"] / med["implicit-bpr"]
        out.append(f"pmt-bpr / implicit-bpr           = {r:6.2f}x   (target <= 2: {'met' if r <= 2 else 'NOT met'})")
    return "\n".join(out)


def profile_dataset(name, sp, threads, repeats):
    """Per-function time of pmtnumba epochs (cProfile; each Numba kernel call is one entry)."""
    n_steps = len(epoch_batches(sp.train_users.size, BATCH, 0, 1))
    for nt in threads:
        numba.set_num_threads(nt)
        t3 = task_set(name)
        for label, tasks, method in (("pmt-bpr", ["bpr"], "ew"), ("pmt-ew", t3, "ew"),
                                     ("pmt-pmtrec", t3, "pmtrec")):
            c = PmtContender(sp, tasks, method)
            c.epoch(1)  # warm-up
            prof = cProfile.Profile()
            prof.enable()
            for e in range(repeats):
                c.epoch(2 + e)
            prof.disable()
            st = pstats.Stats(prof).stats
            total = sum(v[2] for v in st.values())
            rows = sorted(((v[2], f"{Path(k[0]).name}:{k[2]}", v[1]) for k, v in st.items()), reverse=True)[:12]
            print(f"\n## profile {name} {label} | {nt} thread(s) | {1e3 * total / repeats / n_steps:.2f} ms/step "
                  f"(profiled; cProfile adds ~1 us per Python call)")
            print(f"{'function':46s} {'ms/step':>8s} {'share':>6s} {'calls/step':>10s}")
            for tt, fn, calls in rows:
                print(f"{fn:46s} {1e3 * tt / repeats / n_steps:8.3f} {100 * tt / total:5.1f}% "
                      f"{calls / repeats / n_steps:10.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="videogame,synthetic,office",
                   help="comma list of 'videogame', 'synthetic', 'office'")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--contenders", default=None, help="comma list (default: all available)")
    p.add_argument("--quick", action="store_true", help="a quarter-size synthetic set and 2 repeats")
    p.add_argument("--profile", action="store_true", help="profile the pmtnumba epochs instead (no yardsticks)")
    a = p.parse_args()
    t_start = time.perf_counter()
    threads = [int(t) for t in a.threads.split(",") if int(t) <= numba.config.NUMBA_NUM_THREADS]
    repeats = 2 if a.quick and a.repeats == 3 else a.repeats
    only = set(a.contenders.split(",")) if a.contenders else None
    print(f"# bench_train {time.strftime('%Y-%m-%d %H:%M')} | {cpu_name()} | {os.cpu_count()} cores | "
          f"numba {numba.__version__} ({numba.config.THREADING_LAYER}) | numpy {np.__version__} | "
          f"torch {torch.__version__ if torch else 'missing'} | "
          f"implicit {'ok' if BayesianPersonalizedRanking else 'missing'} | "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')} | "
          f"load avg {_load()}")
    print(f"# d {DIM}, batch {BATCH}, lr {LR}, wd {WD}; " + (f"{repeats} profiled epochs after a warm-up" if a.profile
          else f"medians of {repeats} alternated epochs after a warm-up"))
    for name in a.datasets.split(","):
        if name == "synthetic":
            s = 4 if a.quick else 1
            ds = synthetic_dataset(55_223 // s, 17_408 // s, 499_000 // s, 17_000 // s, 800_000 // s)
        else:
            ds = load_dataset(name)
        if a.profile:
            profile_dataset(name, make_split(ds, seed=0), threads, repeats)
        else:
            bench_dataset(name, make_split(ds, seed=0), threads, repeats, only)
    print(f"\n# total {time.perf_counter() - t_start:.0f} s | load avg {_load()}")


if __name__ == "__main__":
    main()
