"""One multi-task training step on a GPU: the CUDA twin of :mod:`pmtnumba.training.step`.

The same pipeline, every stage a CUDA twin of its CPU kernel::

    batch     = train_users/items[perm[lo:lo+B]]             (gather; perm uploaded once per epoch)
    per task: samples -> slots                                (samplers_cuda, link_samplers_cuda,
                                                               triplet_cuda, rating_cuda)
    R, CSR    = index_rows_cuda(slot rows)                    (rowgrad_cuda)
    G[t,r,:]  = gather_rows_cuda(...)                         (rowgrad_cuda)
    g         = ew_cuda / pmtrec_cuda(G)                      (combiners/*_cuda)
    Adam on R with g                                          (optim/adam_cuda)

Everything lives on the device from :class:`CudaStep`'s construction on: the embedding table,
Adam's moments, the training interactions, every task's CSR structures and all step buffers
(sized for a full batch once). A step copies nothing to the device except kernel scalars (the
random key, offsets) and reads back one small array: the per-task losses and pair counts, the
row count and a finite flag. The task-wise baselines that combine ``g = sum_t w_t G[t]`` (PCGrad,
GradVac, CAGrad, Aligned-MTL, Nash-MTL, RLW) add one T x T copy back (the Gram matrix, built on
the device by combiners/gram_cuda.py) and T weights down; GradDrop, which works per coordinate,
runs on the device with the run generator's own draws (combiners/graddrop_cuda.py) and reads back
R. PMTRec's recorded weights are summarised on the device (training/weights_cuda.py) and copied
back once per epoch.

``G`` is the ``[T, R, d]`` prefix of a ``[T, S, d]`` device buffer (S slots bound R), so R never
has to be known on the host to launch a kernel: kernels read it from the device.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..combiners import EW, PMTRec, StepContext
from ..combiners.taskwise import TaskwiseCombiner
from ..combiners.base_cuda import ew_cuda
from ..combiners.graddrop import GradDrop
from ..combiners.graddrop_cuda import GradDropDevice
from ..combiners.gram_cuda import GramWorkspace
from ..combiners.pmtrec import focus_factor
from ..combiners.pmtrec_cuda import MAX_TASKS, pmtrec_cuda
from ..data.link_samplers_cuda import (
    compact_triplets_cuda,
    sample_category_anchored_cuda,
    sample_category_independent_cuda,
    sample_link_anchored_cuda,
    sample_link_independent_cuda,
)
from ..data.samplers_cuda import sample_unlinked_cuda
from ..errors import PmtError, TrainingDiverged
from ..optim import Adam
from ..optim.adam_cuda import adam_dense_cuda, adam_sparse_cuda, dense_local_reset_cuda, dense_local_set_cuda
from ..rng import make_key
from ..scan_cuda import THREADS, blocks
from ..tasks import AlignUniformTask, BPRTask, CategoryTask, RatingTask, Task
from ..tasks import align_uniform_cuda as AU
from ..tasks.bpr import MAX_TRIES as BPR_MAX_TRIES
from ..tasks.links import LinkTask
from ..tasks.rating_cuda import rating_slots_cuda
from ..tasks.rowgrad_cuda import RowIndexWorkspace, gather_rows_cuda, index_rows_cuda
from ..tasks.triplet_cuda import triplet_slots_cuda
from .step import ENCODER_STREAM, combine_encoder_gradients


# -- small kernels of the step ----------------------------------------------------------------


@cuda.jit
def _gather_batch(perm, lo, n, train_users, train_items, bu, bi):
    s = cuda.grid(1)
    if s < n:
        m = perm[lo + s]
        bu[s] = train_users[m]
        bi[s] = train_items[m]


@cuda.jit
def _gather_ratings(perm, lo, n, train_ratings, br):
    s = cuda.grid(1)
    if s < n:
        br[s] = train_ratings[perm[lo + s]]


@cuda.jit
def _bpr_rows(bu, bi, neg, n, n_users, a, b, c, n_dev):
    """BPR's (u, i, j) in row ids: items offset by the users."""
    s = cuda.grid(1)
    if s < n:
        a[s] = bu[s]
        b[s] = bi[s] + n_users
        c[s] = neg[s] + n_users
    if s == 0:
        n_dev[0] = n


@cuda.jit
def _item_rows(bu, bi, n, n_users, u, i, n_dev):
    s = cuda.grid(1)
    if s < n:
        u[s] = bu[s]
        i[s] = bi[s] + n_users
    if s == 0:
        n_dev[0] = n


@cuda.jit
def _unused_slots(slot_rows, per, n_dev):
    """Slots past the task's ``per * n`` used ones get row -1 (skipped by the row index)."""
    s = cuda.grid(1)
    if per * n_dev[0] <= s < slot_rows.shape[0]:
        slot_rows[s] = -1


@cuda.jit
def _task_loss(loss, n_dev, info, t, T):
    """``info[t]`` = mean loss (summed in sample order), ``info[T + t]`` = samples."""
    if cuda.grid(1) == 0:
        n = n_dev[0]
        s = 0.0
        for p in range(n):
            s += loss[p]
        info[t] = s / n if n > 0 else 0.0
        info[T + t] = n


@cuda.jit
def _finite_flag(G, g, R_dev, info, at):
    """``info[at]`` = 1 if every entry of G's and g's first R rows is finite, else 0 (every writer
    of 0 writes the same value; thread 0 writes R to ``info[at + 1]``)."""
    i = cuda.grid(1)
    d = G.shape[2]
    k = i // d
    c = i - k * d
    if k < R_dev[0]:
        ok = g[k, c] - g[k, c] == 0
        for t in range(G.shape[0]):
            ok = ok and G[t, k, c] - G[t, k, c] == 0
        if not ok:
            info[at] = 0
    if i == 0:
        info[at + 1] = R_dev[0]


@cuda.jit
def _set_one(info, at):
    if cuda.grid(1) == 0:
        info[at] = 1


# -- tasks on the device ------------------------------------------------------------------


class _DeviceTask:
    """A task's device structures and buffers (for a batch of at most ``B``) and its launch."""

    per_sample = 3  # slots per sample

    def __init__(self, task: Task, B: int, n_users: int):
        self.task = task
        self.B = B
        self.n_users = n_users
        self.n_dev = cuda.device_array(1, np.int64)
        self.loss = cuda.device_array(max(B, 1), np.float64)

    def run(self, E, bu, bi, br, n, key, rows, grads):  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self, rows, info, t, T):
        """Mark the unused slots, write the mean loss and the sample count into ``info``."""
        _unused_slots[blocks(rows.shape[0]), THREADS](rows, self.per_sample, self.n_dev)
        _task_loss[1, 1](self.loss, self.n_dev, info, t, T)


class _TripletDeviceTask(_DeviceTask):
    def __init__(self, task, B, n_users):
        super().__init__(task, B, n_users)
        m = max(B, 1)
        self.a = cuda.device_array(m, np.int64)
        self.b = cuda.device_array(m, np.int64)
        self.c = cuda.device_array(m, np.int64)

    def _triplets(self, bu, bi, n, key):  # pragma: no cover - interface
        raise NotImplementedError

    def run(self, E, bu, bi, br, n, key, rows, grads):
        self._triplets(bu, bi, n, key)
        triplet_slots_cuda[blocks(n), THREADS](E, self.a, self.b, self.c, self.n_dev, rows, grads, self.loss)


class _BPRDevice(_TripletDeviceTask):
    def __init__(self, task: BPRTask, B, n_users):
        super().__init__(task, B, n_users)
        ctx = task.ctx
        self.indptr = cuda.to_device(np.ascontiguousarray(ctx.train_indptr, np.int64))
        self.indices = cuda.to_device(np.ascontiguousarray(ctx.train_indices))
        self.n_items = int(ctx.n_items)
        self.neg = cuda.device_array(max(B, 1), np.int64)

    def _triplets(self, bu, bi, n, key):
        sample_unlinked_cuda[blocks(n), THREADS](bu[:n], self.indptr, self.indices, self.n_items, key,
                                                 BPR_MAX_TRIES, self.neg)
        _bpr_rows[blocks(n), THREADS](bu, bi, self.neg, n, self.n_users, self.a, self.b, self.c, self.n_dev)


class _CompactingDevice(_TripletDeviceTask):
    """Link and category tasks: draw (anchor, pos, neg) with -1 for skipped samples, then compact."""

    def __init__(self, task, B, n_users):
        super().__init__(task, B, n_users)
        m = max(B, 1)
        self.anchor = cuda.device_array(m, np.int64)
        self.pos = cuda.device_array(m, np.int64)
        self.negs = cuda.device_array(m, np.int64)
        self.flags = cuda.device_array(m, np.int64)
        self.where = cuda.device_array(m + 1, np.int64)
        self.sums = cuda.device_array(m // 256 + 2, np.int64)
        self.anchored = task.ctx.aux_sampling == "anchored"

    def _compact(self, anchor, n, offset):
        compact_triplets_cuda(anchor, self.pos, self.negs, n, offset, self.a, self.b, self.c, self.n_dev,
                              self.flags, self.where, self.sums)


class _LinkDevice(_CompactingDevice):
    def __init__(self, task: LinkTask, B, n_users):
        super().__init__(task, B, n_users)
        self.indptr = cuda.to_device(task.indptr)
        self.indices = cuda.to_device(task.indices if task.indices.size else np.zeros(1, task.indices.dtype))
        self.empty = task.n_links == 0

    def _triplets(self, bu, bi, n, key):
        t = self.task
        if self.anchored:
            anchors = bu if t.side == "user" else bi
            sample_link_anchored_cuda[blocks(n), THREADS](anchors[:n], self.indptr, self.indices, t.n_local, key,
                                                          t.max_tries, self.pos, self.negs)
            self._compact(anchors, n, t.offset)
        elif self.empty:
            _bpr_rows[1, 1](bu, bi, self.negs, 0, 0, self.a, self.b, self.c, self.n_dev)  # n = 0
        else:
            sample_link_independent_cuda[blocks(n), THREADS](self.indptr, self.indices, t.n_local, key, t.max_tries,
                                                             self.anchor[:n], self.pos, self.negs)
            self._compact(self.anchor, n, t.offset)


class _CategoryDevice(_CompactingDevice):
    def __init__(self, task: CategoryTask, B, n_users):
        super().__init__(task, B, n_users)
        one = lambda x: cuda.to_device(x if x.size else np.zeros(1, np.int64))  # noqa: E731
        self.item_cat = one(task.item_cat)
        self.cat_indptr = one(task.cat_indptr)
        self.cat_items = one(task.cat_items)
        self.item_pos = one(task.item_pos)
        self.pair_cum = one(task.pair_cum)
        self.no_items = task.cat_items.size == 0
        self.no_pairs = task.pair_cum.size == 0 or task.pair_cum[-1] == 0

    def _triplets(self, bu, bi, n, key):
        t = self.task
        if (self.anchored and self.no_items) or (not self.anchored and self.no_pairs):
            _bpr_rows[1, 1](bu, bi, self.negs, 0, 0, self.a, self.b, self.c, self.n_dev)  # n = 0
        elif self.anchored:
            sample_category_anchored_cuda[blocks(n), THREADS](bi[:n], self.item_cat, self.cat_indptr, self.cat_items,
                                                              self.item_pos, key, self.pos, self.negs)
            self._compact(bi, n, t.offset)
        else:
            sample_category_independent_cuda[blocks(n), THREADS](self.item_cat, self.cat_indptr, self.cat_items,
                                                                 self.pair_cum, key, self.anchor[:n], self.pos,
                                                                 self.negs)
            self._compact(self.anchor, n, t.offset)


class _RatingDevice(_DeviceTask):
    per_sample = 2

    def __init__(self, task: RatingTask, B, n_users):
        super().__init__(task, B, n_users)
        self.u = cuda.device_array(max(B, 1), np.int64)
        self.i = cuda.device_array(max(B, 1), np.int64)

    def run(self, E, bu, bi, br, n, key, rows, grads):
        _item_rows[blocks(n), THREADS](bu, bi, n, self.n_users, self.u, self.i, self.n_dev)
        rating_slots_cuda[blocks(n), THREADS](E, self.u, self.i, br, self.n_dev, rows, grads, self.loss)


_TWINS = (BPRTask, LinkTask, CategoryTask, RatingTask, AlignUniformTask)


def cuda_unsupported(tasks: list[Task], encoder: str, dim: int = 0) -> str | None:
    """Why this run cannot train on the GPU (a short phrase), or None; ``dim`` is the width the
    tasks see (the encoder's output: NGCF's is d (K + 1))."""
    if encoder not in ("mf", "lightgcn", "ngcf"):
        return f"the {encoder!r} encoder has no CUDA twin"
    missing = [t.name for t in tasks if not isinstance(t, _TWINS)]
    if missing:
        return f"task(s) {', '.join(missing)} have no CUDA twin yet"
    if any(isinstance(t, AlignUniformTask) for t in tasks) and dim > AU.MAX_DIM:
        return f"align_uniform on the GPU supports final embeddings up to {AU.MAX_DIM} wide (--dim; ngcf: --dim x (--layers + 1))"
    if len(tasks) > MAX_TASKS:
        return f"at most {MAX_TASKS} tasks train on the GPU, got {len(tasks)}"
    return None


class _AlignUniformDevice(_DeviceTask):
    """DirectAU: alignment slots ``0..2n-1``, then the user and the item uniformity slots."""

    def __init__(self, task: AlignUniformTask, B, n_users, n_rows, dim):
        super().__init__(task, B, n_users)
        from ..scan_cuda import n_chunks

        m = max(B, 1)
        self.u = cuda.device_array(m, np.int64)
        self.i = cuda.device_array(m, np.int64)
        self.flag = cuda.to_device(np.zeros(n_rows, np.int64))
        self.pos = cuda.device_array(n_rows + 1, np.int64)
        self.sums = cuda.device_array(n_chunks(n_rows) + 1, np.int64)
        self.uniq = [cuda.device_array(m, np.int64) for _ in range(2)]
        self.m_dev = [cuda.device_array(1, np.int64) for _ in range(2)]
        self.N = [cuda.device_array((m, dim), np.float64) for _ in range(2)]
        self.rowsum = [cuda.device_array(m, np.float64) for _ in range(2)]
        self.acc = [cuda.device_array((m, dim), np.float64) for _ in range(2)]
        self.scal = [cuda.device_array(3, np.float64) for _ in range(2)]
        self.offs = cuda.device_array(2, np.int64)

    def run(self, E, bu, bi, br, n, key, rows, grads):
        t = self.task
        _item_rows[blocks(n), THREADS](bu, bi, n, self.n_users, self.u, self.i, self.n_dev)
        AU.align_slots_cuda[blocks(n), THREADS](E, self.u, self.i, self.n_dev, t.eps, rows, grads, self.loss)
        for j, side in enumerate((self.u, self.i)):
            AU.unique_rows_cuda(side[:n], self.n_dev, self.flag, self.pos, self.sums, self.uniq[j], self.m_dev[j])
            AU.normalized_rows_cuda[blocks(n), THREADS](E, self.uniq[j], self.m_dev[j], t.eps, self.N[j])
            AU.uniformity_rows_cuda[blocks(n), THREADS](self.N[j], self.m_dev[j], self.rowsum[j], self.acc[j])
            AU._uniformity_scalars[1, 1](self.rowsum[j], self.m_dev[j], t.gamma / 2.0, self.scal[j])
        AU._slot_offsets[1, 1](self.n_dev, self.scal[0], self.offs)
        for j in range(2):
            AU.normalize_backward_slots_cuda[blocks(n), THREADS](E, self.uniq[j], self.acc[j], self.scal[j], t.eps,
                                                                 self.offs, j, rows, grads)

    def finish(self, rows, info, t, T):
        AU._finish[blocks(rows.shape[0]), THREADS](self.loss, self.n_dev, self.task.gamma / 2.0, self.scal[0],
                                                   self.scal[1], info, t, T, rows, rows.shape[0])


def on_gram(combiner) -> bool:
    """Whether ``combiner`` runs on the device as ``sum_t w_t G[t]`` with host weights from the
    Gram matrix (every task-wise baseline that implements ``task_weights``; not GradDrop)."""
    return isinstance(combiner, TaskwiseCombiner) and type(combiner).task_weights is not TaskwiseCombiner.task_weights


def _device_encoder(encoder, T: int):
    """The device half of a graph encoder (its CUDA twin, for steps of ``T`` tasks)."""
    if encoder.name == "lightgcn":
        from ..encoders.lightgcn_cuda import LightGCNDevice

        return LightGCNDevice(encoder, T)
    if encoder.name == "ngcf":
        from ..encoders.ngcf_cuda import NGCFDevice

        return NGCFDevice(encoder, T)
    raise PmtError(f"--device cuda: the {encoder.name!r} encoder has no CUDA twin; use --device cpu")


def _device_task(task: Task, B: int, n_users: int, n_rows: int = 0, dim: int = 0) -> _DeviceTask:
    if isinstance(task, BPRTask):
        return _BPRDevice(task, B, n_users)
    if isinstance(task, LinkTask):
        return _LinkDevice(task, B, n_users)
    if isinstance(task, CategoryTask):
        return _CategoryDevice(task, B, n_users)
    if isinstance(task, RatingTask):
        return _RatingDevice(task, B, n_users)
    if isinstance(task, AlignUniformTask):
        return _AlignUniformDevice(task, B, n_users, n_rows, dim)
    raise PmtError(f"task {task.name!r} has no CUDA twin yet; use --device cpu")


# -- the step -----------------------------------------------------------------------------


class CudaStep:
    """A run's device state and its training step (see the module docstring).

    ``E`` (host, float32 [N, d]) and ``adam`` (its hyper-parameters, step count and moments) are
    uploaded once; :meth:`download` copies the table and moments back into them. A graph
    ``encoder`` (LightGCN, NGCF) runs through its twin; NGCF's layer weights are uploaded once
    too, each with its Adam from ``dense_adams`` (the trainer's), and downloaded with the table.
    """

    def __init__(self, E: np.ndarray, tasks: list[Task], combiner, adam: Adam, batch_size: int,
                 train_users: np.ndarray, train_items: np.ndarray, train_ratings: np.ndarray | None, n_users: int,
                 encoder=None, penalty=None, dense_adams=None):
        T = len(tasks)
        if T > MAX_TASKS:
            raise PmtError(f"--device cuda supports at most {MAX_TASKS} tasks, got {T}")
        self.tasks = tasks
        self.combiner = combiner
        self.adam = adam
        self.B = int(batch_size)
        self.n_users = int(n_users)
        N, d = E.shape
        w = d if encoder is None else encoder.out_dim  # the width the tasks see (NGCF: d (K + 1))
        self.E = cuda.to_device(E)
        self.MV = cuda.to_device(adam.MV)
        self.train_users = cuda.to_device(np.ascontiguousarray(train_users, np.int64))
        self.train_items = cuda.to_device(np.ascontiguousarray(train_items, np.int64))
        self.train_ratings = None if train_ratings is None else cuda.to_device(np.ascontiguousarray(train_ratings))
        self.dtasks = [_device_task(t, self.B, self.n_users, N, w) for t in tasks]
        self.offsets = np.zeros(T + 1, np.int64)
        for t, task in enumerate(tasks):
            self.offsets[t + 1] = self.offsets[t] + task.max_slots(self.B)
        S = int(self.offsets[-1])
        self.S = S
        self.slot_rows = cuda.to_device(np.full(S, -1, np.int64))
        self.slot_task = cuda.to_device(np.repeat(np.arange(T, dtype=np.int64), np.diff(self.offsets)))
        self.slot_grads = cuda.device_array((S, w), E.dtype)
        self.rws = RowIndexWorkspace(N, S)
        self.G = cuda.device_array((T, S, w), E.dtype)
        self.g = cuda.device_array((S, d), E.dtype)
        # a graph encoder's gradient reaches up to every row: M bounds the rows a combiner sees
        self.enc = None
        self.dense = None  # NGCF's layer weights (training/dense_cuda.py)
        self.M = S
        if encoder is not None and encoder.name != "mf":
            self.enc = _device_encoder(encoder, T)
            self.M = N
            self.g0 = cuda.device_array((N, d), E.dtype)
            if encoder.dense_params():
                from .dense_cuda import DenseDevice

                if dense_adams is None:
                    raise ValueError(f"CudaStep: the {encoder.name} encoder's layer weights need dense_adams (the "
                                     f"trainer's Adam of each)")

                self.dense = DenseDevice(self.enc.params, self.enc.grads, encoder.dense_params(), dense_adams, T,
                                         on_gram(combiner))
        self.gram_ws = GramWorkspace(T, self.M * d) if on_gram(combiner) else None
        self.graddrop = GradDropDevice() if isinstance(combiner, GradDrop) else None
        self.W = cuda.device_array((self.M, T), np.float64)
        self.local = cuda.to_device(np.full(N, -1, np.int64)) if adam.mode == "dense" else None
        self.bu = cuda.device_array(max(self.B, 1), np.int64)
        self.bi = cuda.device_array(max(self.B, 1), np.int64)
        self.br = None if train_ratings is None else cuda.device_array(max(self.B, 1), train_ratings.dtype)
        #: ``--reg`` (an :class:`~.ego_reg.EgoReg`, its value left in ``penalty.loss``) and its twin
        self.penalty = penalty
        self.pen = None
        if penalty is not None:
            from .ego_reg_cuda import EgoRegDevice

            self.pen = EgoRegDevice(penalty.reg, N, self.M, self.offsets[0], self.offsets[1])
        self.info = cuda.device_array(2 * T + 2 + (2 if penalty is not None else 0), np.float64)
        self.perm = None
        self.weights = None  # PMTRec's weight summaries on the device (record_weights)

    def record_weights(self, recorder) -> None:
        """Summarise PMTRec's per-row weights into ``recorder`` (a :class:`~.weights.WeightRecorder`)
        on the device; :meth:`flush_weights` adds them into it once per epoch."""
        from .weights_cuda import DeviceWeights

        if not isinstance(self.combiner, PMTRec):
            raise PmtError(f"weights are recorded for PMTRec only, not {self.combiner.name}")
        self.weights = DeviceWeights(recorder, len(self.tasks), self.M)

    def flush_weights(self) -> None:
        """Add the epoch's device weight summaries into the host recorder (before its end_epoch)."""
        if self.weights is not None:
            self.weights.flush()

    def set_epoch_order(self, perm: np.ndarray) -> None:
        """Upload the epoch's shuffled order of the training interactions (once per epoch)."""
        self.perm = cuda.to_device(np.ascontiguousarray(perm, np.int64))

    def _G_host(self, G, R: int) -> np.ndarray:
        return G[:, :R, :].copy_to_host() if R else np.zeros((len(self.tasks), 0, G.shape[2]), G.dtype)

    def step(self, lo: int, n: int, ctx: StepContext, seed: int):
        """Train on the interactions ``perm[lo:lo+n]``; returns ``(losses [T], pairs [T])``."""
        T = len(self.tasks)
        _gather_batch[blocks(n), THREADS](self.perm, lo, n, self.train_users, self.train_items, self.bu, self.bi)
        if self.br is not None:
            _gather_ratings[blocks(n), THREADS](self.perm, lo, n, self.train_ratings, self.br)
        X = self.E if self.enc is None else self.enc.forward(self.E, make_key(seed, ctx.epoch, ctx.step,
                                                                               ENCODER_STREAM))  # the tasks' table
        for t, dt in enumerate(self.dtasks):
            a, b = int(self.offsets[t]), int(self.offsets[t + 1])
            rows, grads = self.slot_rows[a:b], self.slot_grads[a:b]
            key = make_key(seed, ctx.epoch, ctx.step, dt.task.stream)
            dt.run(X, self.bu, self.bi, self.br, n, key, rows, grads)
            dt.finish(rows, self.info, t, T)
        index_rows_cuda(self.slot_rows, self.rws)
        R_dev = self.rws.R_dev
        d = self.G.shape[2]
        nd = blocks(self.S * d)
        gather_rows_cuda[nd, THREADS](self.rws.indptr, self.rws.order, self.slot_task, self.slot_grads, R_dev, self.G)
        G, rows, g, M = self.G, self.rws.rows, self.g, self.S
        if self.enc is not None:  # back through the encoder: rows0, R0 and G0 [T, R0, d] on E
            rows, R_dev, G = self.enc.backward(rows, R_dev, self.G)
            g, M = self.g0, self.M
        d = G.shape[2]
        nd = blocks(M * d)
        self._combine(G, rows, R_dev, g, M, ctx)
        _set_one[1, 1](self.info, 2 * T)
        _finite_flag[nd, THREADS](G, g, R_dev, self.info, 2 * T)
        if self.dense is not None:
            self.dense.check_finite(self.info, 2 * T)
        if self.pen is not None:  # after the combiner, as on the CPU (ego_reg.py says why)
            self.pen(self.E, self.slot_rows, rows, R_dev, g, self.info, T, 2 * T + 2, may_miss=self.enc is not None)
        self._adam(rows, R_dev, g, M)
        if self.dense is not None:
            self.dense.adam()
        info = self.info.copy_to_host()
        losses, pairs = info[:T].copy(), info[T:2 * T].astype(np.int64)
        R = int(info[2 * T + 1])
        if not (np.isfinite(losses).all() and info[2 * T] == 1):
            self._diverged(G, losses, R, ctx)
        if self.pen is not None:
            self._penalty_done(info[2 * T + 2], info[2 * T + 3], ctx)
        return losses, pairs

    def _combine(self, G, rows, R_dev, g, M, ctx) -> None:
        """``g[:R]`` = the combination of ``G [T, R, d]`` (R on the device); and, with NGCF, of
        its layer weights' gradients into ``dense.g`` (training/dense_cuda.py: the CPU's rule)."""
        T, d, dense = G.shape[0], G.shape[2], self.dense
        if type(self.combiner) is EW:
            ew_cuda[blocks(M * d), THREADS](G, R_dev, g)
            if dense is not None:
                dense.ew()
        elif isinstance(self.combiner, PMTRec):
            c = self.combiner
            focus = focus_factor(c.alpha, ctx.epoch)
            if dense is not None:
                dense.pmtrec(focus, float(c.tau), bool(c.drop_absent))
            pmtrec_cuda[blocks(M), THREADS](G, R_dev, focus, float(c.tau), bool(c.drop_absent), g, self.W)
            if self.weights is not None:
                self.weights.observe(rows, self.W, R_dev)
        elif self.gram_ws is not None:  # g = sum_t w_t G[t], w from the T x T Gram matrix (host solve)
            c, ws = self.combiner, self.gram_ws
            G2 = G.reshape(T, M * d)
            A = None
            if c.uses_gram:  # over all shared parameters: the sum of the parts' Gram matrices
                A = ws.gram(G2, R_dev, d) + (dense.gram() if dense is not None else 0.0)
            w = c.task_weights(A, T, ctx)
            ws.weighted_sum(G2, w, R_dev, d, g.reshape(M * d))
            if dense is not None:
                dense.weighted_sum(w)
        elif self.graddrop is not None and dense is None and GradDropDevice.supports(ctx.rng):  # same draws
            self.graddrop.combine(self.combiner, G.reshape(T, M * d), R_dev, d, ctx.rng, g.reshape(M * d))
        else:  # no twin (GradDrop with a non-PCG64 generator, or with NGCF): G to the host and g back
            R = int(R_dev.copy_to_host()[0])
            rows_h = rows[:R].copy_to_host() if R else np.zeros(0, np.int64)
            if dense is None:
                ctx.rows = rows_h
                gh = self.combiner(self._G_host(G, R), ctx)
            else:
                gh, gd = combine_encoder_gradients(self.combiner, ctx, rows_h, self._G_host(G, R), dense.to_host())
                dense.set_combined(gd)
            if R:
                g[:R].copy_to_device(np.ascontiguousarray(gh, dtype=g.dtype))

    def _penalty_done(self, loss, missing, ctx):
        """Leave the penalty's value in ``penalty.loss``; a non-finite one is a divergence."""
        if missing:  # MF: the target rows are the slots' own rows, so none can be missing
            raise AssertionError(f"--reg on the device: {int(missing)} main-task rows were not among the step's rows")
        if not math.isfinite(loss):
            raise TrainingDiverged(f"training diverged: the --reg penalty is not finite at epoch {ctx.epoch}, step "
                                   f"{ctx.step}; try a smaller --lr")
        self.penalty.loss = float(loss)

    def _diverged(self, G, losses, R, ctx):
        """Name the task at fault, as the CPU step does (only on this failure path is G read back)."""
        G = self._G_host(G, R)
        for t, task in enumerate(self.tasks):
            if not np.isfinite(losses[t]) or not np.isfinite(G[t]).all():
                what = "loss" if not np.isfinite(losses[t]) else "gradient"
                raise TrainingDiverged(
                    f"training diverged: task {task.name!r} has a non-finite {what} at epoch {ctx.epoch}, "
                    f"step {ctx.step}; try a smaller --lr")
        raise TrainingDiverged(
            f"training diverged: the {self.combiner.name} combiner produced a non-finite gradient at epoch "
            f"{ctx.epoch}, step {ctx.step}")

    def _adam(self, rows, R_dev, g, M):
        ad = self.adam
        args = ad.next_args()
        if ad.mode == "sparse":
            adam_sparse_cuda[blocks(M), THREADS](self.E, self.MV, rows, R_dev, g, *args)
        else:
            dense_local_set_cuda[blocks(M), THREADS](rows, R_dev, self.local)
            adam_dense_cuda[blocks(self.E.shape[0]), THREADS](self.E, self.MV, self.local, g, *args)
            dense_local_reset_cuda[blocks(M), THREADS](rows, R_dev, self.local)

    def download(self, E: np.ndarray) -> None:
        """Copy the table into ``E`` and the moments into ``adam.MV`` (checkpoints, evaluation);
        with NGCF also its layer weights into the encoder and their moments into their Adams."""
        self.E.copy_to_host(E)
        self.MV.copy_to_host(self.adam.MV)
        if self.dense is not None:
            self.dense.download()


def ptx_signatures():
    """(kernel, signature) pairs for tests/cuda_ptx_check.py."""
    i64, E, G = "int64[::1]", "float32[:, ::1]", "float32[:, :, ::1]"
    return [
        (_gather_batch, f"void({i64}, int64, int64, {i64}, {i64}, {i64}, {i64})"),
        (_gather_ratings, f"void({i64}, int64, int64, float32[::1], float32[::1])"),
        (_bpr_rows, f"void({i64}, {i64}, {i64}, int64, int64, {i64}, {i64}, {i64}, {i64})"),
        (_item_rows, f"void({i64}, {i64}, int64, int64, {i64}, {i64}, {i64})"),
        (_unused_slots, f"void({i64}, int64, {i64})"),
        (_task_loss, f"void(float64[::1], {i64}, float64[::1], int64, int64)"),
        (_finite_flag, f"void({G}, {E}, {i64}, float64[::1], int64)"),
        (_set_one, "void(float64[::1], int64)"),
    ]
