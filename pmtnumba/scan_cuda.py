"""Deterministic prefix sums on the GPU (the building block of row indexing and compaction).

``exclusive_scan(x, n, out, sums)`` writes ``out[i] = x[0] + ... + x[i-1]`` for ``i <= n``
(``out[n]`` is the total) in three launches: per-chunk sums (one thread per ``CHUNK`` entries),
one thread scanning the chunk sums, and each thread re-scanning its chunk. Integer adds only, so
the result is exact and independent of scheduling; no atomics.
"""

from __future__ import annotations

from numba import cuda

from .device import simulator_loaded

CHUNK = 256
# threads per block; the simulator runs each thread as a Python thread, so it gets fewer
# (the launch shape changes no result: every kernel is written per work item)
THREADS = 32 if simulator_loaded() else 128


def blocks(n: int, threads: int = THREADS) -> int:
    """Blocks of ``threads`` covering ``n`` work items (at least one)."""
    return max(1, (int(n) + threads - 1) // threads)


@cuda.jit
def _chunk_sums(x, n, sums):
    j = cuda.grid(1)
    lo = j * CHUNK
    if lo < n:
        hi = min(lo + CHUNK, n)
        s = 0
        for i in range(lo, hi):
            s += x[i]
        sums[j] = s


@cuda.jit
def _scan_sums(sums, m, out, n):
    if cuda.grid(1) == 0:
        s = 0
        for j in range(m):
            v = sums[j]
            sums[j] = s
            s += v
        out[n] = s


@cuda.jit
def _chunk_scan(x, n, sums, out):
    j = cuda.grid(1)
    lo = j * CHUNK
    if lo < n:
        hi = min(lo + CHUNK, n)
        s = sums[j]
        for i in range(lo, hi):
            v = x[i]
            out[i] = s
            s += v


def n_chunks(n: int) -> int:
    return max(1, (int(n) + CHUNK - 1) // CHUNK)


def exclusive_scan(x, n: int, out, sums) -> None:
    """``out[:n+1]`` = exclusive prefix sums of ``x[:n]`` with the total at ``out[n]``
    (``sums``: int64 scratch of at least ``n_chunks(n)`` entries). All arrays on the device."""
    m = n_chunks(n)
    if n > 0:
        _chunk_sums[blocks(m), THREADS](x, n, sums)
    _scan_sums[1, 1](sums, m if n > 0 else 0, out, n)
    if n > 0:
        _chunk_scan[blocks(m), THREADS](x, n, sums, out)
