"""CUDA twin of :meth:`pmtnumba.training.weights.WeightRecorder.observe`: PMTRec's per-row weights
summarised on the device, copied back once per epoch.

A GPU step leaves PMTRec's weights ``W`` [R, T] and the rows' global ids on the device. Instead of
copying them back every step for :meth:`WeightRecorder.observe`, :class:`DeviceWeights` keeps the
same accumulators there: the histogram counts ``hist`` [groups, T, N_BINS], the weight sums
``sums`` [groups, T] and the extremes ``mins`` / ``maxs`` [groups, T]; :meth:`DeviceWeights.flush`
adds them into the host recorder once per epoch (before ``end_epoch``), so ``weights.csv`` is
written by the same host code from the same numbers.

- Counts: one thread per (row, task) adds 1 to its bin (:func:`~.weights.weight_bin`, the scalar form
  of the CPU's ``_bin_of``: log-odds bins) with an integer atomic add. Integer sums do not depend on
  the order: the counts equal the CPU's for the same ``W``, except where the GPU's ``log``/``log1p``
  (libdevice, within an ulp of the CPU's) put a weight exactly at a bin edge into the next bin.
- Extremes: per chunk, then over the chunks (min and max are exact in any order).
- Sums, in a fixed order, no atomics: thread (c, t) adds ``W[k, t]`` of the rows of chunk c
  (``ROWS_PER_PART`` consecutive rows, k ascending) into one accumulator per group; then one thread
  per (group, task) adds the chunk sums in chunk order and adds the step's total to ``sums``, as the
  CPU adds its step's ``bincount`` total. For a step of at most ``ROWS_PER_PART`` rows this is the
  CPU's order exactly (bincount adds rows in order from 0.0); larger steps differ by rounding only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..scan_cuda import THREADS, blocks
from .weights import N_BINS, weight_bin

ROWS_PER_PART = 1024  # consecutive rows summed by one thread (per task)
MAX_GROUPS = 16  # row groups (degree quartiles of users and items: at most 8)


@cuda.jit
def weight_hist_cuda(rows, W, R_dev, group_of_row, hist):
    i = cuda.grid(1)
    T = W.shape[1]
    k = i // T
    if k < R_dev[0]:
        t = i - k * T
        cuda.atomic.add(hist, (group_of_row[rows[k]], t, weight_bin(W[k, t])), 1)


@cuda.jit
def weight_part_sums_cuda(rows, W, R_dev, group_of_row, per, part):
    """``part[0, c, g, t]`` = sum, ``part[1, ...]`` = min, ``part[2, ...]`` = max of the weights
    ``W[k, t]`` of chunk c's rows in group g (0, +inf, -inf when it has none)."""
    c, t = cuda.grid(2)
    lo = c * per
    R = R_dev[0]
    if lo < R and t < W.shape[1]:
        acc = cuda.local.array(MAX_GROUPS, np.float64)
        lo_w = cuda.local.array(MAX_GROUPS, np.float64)
        hi_w = cuda.local.array(MAX_GROUPS, np.float64)
        n_groups = part.shape[2]
        for g in range(n_groups):
            acc[g] = 0.0
            lo_w[g] = math.inf
            hi_w[g] = -math.inf
        for k in range(lo, min(lo + per, R)):
            g = group_of_row[rows[k]]
            w = W[k, t]
            acc[g] += w
            lo_w[g] = min(lo_w[g], w)
            hi_w[g] = max(hi_w[g], w)
        for g in range(n_groups):
            part[0, c, g, t] = acc[g]
            part[1, c, g, t] = lo_w[g]
            part[2, c, g, t] = hi_w[g]


@cuda.jit
def weight_add_parts_cuda(part, R_dev, per, sums, mins, maxs):
    i = cuda.grid(1)
    T = sums.shape[1]
    g = i // T
    if g < sums.shape[0]:
        t = i - g * T
        n = (R_dev[0] + per - 1) // per
        s = 0.0
        for c in range(n):
            s += part[0, c, g, t]
            mins[g, t] = min(mins[g, t], part[1, c, g, t])
            maxs[g, t] = max(maxs[g, t], part[2, c, g, t])
        sums[g, t] += s


class DeviceWeights:
    """The device half of a :class:`~.weights.WeightRecorder` for steps of at most ``S`` rows."""

    def __init__(self, recorder, T: int, S: int):
        G = len(recorder.labels)
        if G > MAX_GROUPS:
            raise ValueError(f"at most {MAX_GROUPS} row groups on the GPU, got {G}")
        if T != len(recorder.tasks):
            raise ValueError(f"the recorder has {len(recorder.tasks)} tasks, the step {T}")
        self.recorder = recorder
        self.group_of_row = cuda.to_device(np.ascontiguousarray(recorder.group_of_row, np.int64))
        # The epoch's starting values, kept on the host and copied over the accumulators at each flush
        # (a host-to-device copy of a few MB per epoch: no kernel, nothing to keep in step with).
        self._empty = (np.zeros((G, T, N_BINS), np.int64), np.zeros((G, T), np.float64), np.full((G, T), np.inf),
                       np.full((G, T), -np.inf))
        self.hist, self.sums, self.mins, self.maxs = (cuda.to_device(a) for a in self._empty)
        self.n_parts = max(1, (int(S) + ROWS_PER_PART - 1) // ROWS_PER_PART)
        self.part = cuda.device_array((3, self.n_parts, G, T), np.float64)
        self.S = int(S)

    def observe(self, rows, W, R_dev) -> None:
        """Add one step's weights ``W[:R]`` of the global rows ``rows[:R]`` (all on the device)."""
        T = W.shape[1]
        weight_hist_cuda[blocks(self.S * T), THREADS](rows, W, R_dev, self.group_of_row, self.hist)
        weight_part_sums_cuda[(blocks(self.n_parts), T), (THREADS, 1)](rows, W, R_dev, self.group_of_row,
                                                                       ROWS_PER_PART, self.part)
        weight_add_parts_cuda[blocks(self.sums.size), THREADS](self.part, R_dev, ROWS_PER_PART, self.sums, self.mins,
                                                               self.maxs)

    def flush(self) -> None:
        """Add the accumulated counts and sums into the host recorder (once per epoch) and zero them."""
        self.recorder.add_counts(self.hist.copy_to_host(), self.sums.copy_to_host(), self.mins.copy_to_host(),
                                 self.maxs.copy_to_host())
        for dev, empty in zip((self.hist, self.sums, self.mins, self.maxs), self._empty):
            dev.copy_to_device(empty)


def ptx_signatures():
    """(kernel, signature) pairs for tests/cuda_ptx_check.py."""
    i64, W = "int64[::1]", "float64[:, ::1]"
    return [
        (weight_hist_cuda, f"void({i64}, {W}, {i64}, {i64}, int64[:, :, ::1])"),
        (weight_part_sums_cuda, f"void({i64}, {W}, {i64}, {i64}, int64, float64[:, :, :, ::1])"),
        (weight_add_parts_cuda, f"void(float64[:, :, :, ::1], {i64}, int64, {W}, {W}, {W})"),
    ]
