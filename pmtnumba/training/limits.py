"""Limits checked before training allocates anything: memory, batch size, the split, the options.

:func:`estimate_fit_memory` adds up the large buffers of a fit (embedding table, Adam moments,
the best-epoch copy, the per-step buffers sized by the batch, the evaluation buffers) and
:func:`check_memory` refuses a configuration whose estimate does not fit in the memory available
(``MemAvailable`` of /proc/meminfo, or the cgroup's limit if lower; ``PMTNUMBA_MEMORY_LIMIT``
overrides both, e.g. ``8GiB``), with the estimate and its parts in the message.

:func:`check_split` refuses data on which training or evaluation cannot mean anything: no
training, validation or test interactions (metrics would be NaN), or no item a user has not
interacted with (BPR cannot draw a negative).
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..errors import PmtError

GiB = float(2**30)
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
          "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise PmtError(f"PMTNUMBA_MEMORY_LIMIT: expected a size like 8GiB or 512MiB, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def available_memory() -> tuple[int | None, str]:
    """(bytes this process may still allocate, where the figure comes from), or (None, '')."""
    env = os.environ.get("PMTNUMBA_MEMORY_LIMIT")
    if env:
        return parse_bytes(env), "PMTNUMBA_MEMORY_LIMIT"
    avail, src = None, ""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail, src = int(line.split()[1]) * 1024, "available memory"
                    break
    except OSError:
        pass
    try:  # cgroup v2 limit of this container
        with open("/sys/fs/cgroup/memory.max") as f:
            lim = f.read().strip()
        if lim != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                cur = int(f.read().strip())
            left = int(lim) - cur
            if avail is None or left < avail:
                avail, src = left, "memory left under the container's limit"
    except (OSError, ValueError):
        pass
    return avail, src


def _fmt(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if n >= 0.1 * GiB else f"{n / 2**20:.1f} MiB"


def estimate_fit_memory(n_users: int, n_items: int, dim: int, batch_size: int, slots_per_step: int,
                        n_tasks: int, itemsize: int = 4, max_k: int = 40, encoder: str = "mf",
                        layers: int = 3, n_train: int = 0) -> dict[str, int]:
    """Bytes of the large buffers of one fit, by part.

    ``slots_per_step`` is the workspace's slot count for the (capped) batch (the sum of the tasks'
    ``max_slots``). Step buffers: the slot gradients ``[S, w]``, the storage of ``G`` ``[T, S, w]``
    (:class:`.step.StepWorkspace`), the combined gradient ``[S, w]``, the slot and row indices, with
    ``w`` the width of the final embeddings (``d``; NGCF ``d (K+1)``). A graph encoder adds its
    graph and propagation buffers (:func:`encoder_buffers`; ``n_train`` training interactions).
    """
    rows = n_users + n_items
    table = rows * dim * itemsize
    S = slots_per_step
    width = dim * (layers + 1) if encoder == "ngcf" else dim
    step = (n_tasks + 2) * S * width * itemsize + S * 16 + rows * 8
    from ..evaluation.ranking import DEFAULT_BUFFER_BYTES

    evaluation = min(DEFAULT_BUFFER_BYTES, max(1, n_items) * 4 * 4096) + n_users * max_k * 8
    parts = {
        "embedding table": table,
        "Adam moments": 2 * table,
        "best-epoch copy": table,
        "step buffers": step,
        "evaluation": evaluation,
    }
    parts.update(encoder_buffers(encoder, rows, dim, layers, n_tasks, n_train, itemsize))
    return parts


def encoder_buffers(encoder: str, rows: int, dim: int, layers: int, n_tasks: int, n_train: int,
                    itemsize: int = 4) -> dict[str, int]:
    """Bytes a graph encoder holds besides the table (none for MF), by part.

    The graph: CSR of the symmetric adjacency, ``nnz = 2 n_train`` (int32 indices, float32 and
    float64 values, int64 row pointers, float64 degrees). LightGCN: the final embeddings and two
    scratch tables forward (``3 N d``); backward on the ``[T, N, d]`` stack of task gradients, its
    output and two scratch stacks (``4 T N d``). NGCF: E^(0..K), the K products and pre-activations
    and the concatenated output forward (``(4K + 2) N d``); backward the ``[T, N, d (K+1)]``
    gradient of the output and four ``[T, N, d]`` stacks; its weights are negligible.
    """
    if encoder == "mf":
        return {}
    nnz = 2 * int(n_train)
    graph = nnz * (4 + 4 + 8) + (rows + 1) * 8 + rows * 8
    N, d, K, T = rows, dim, int(layers), int(n_tasks)
    if encoder == "lightgcn":
        fwd, bwd = 3 * N * d, 4 * T * N * d
    else:
        fwd, bwd = (4 * K + 2) * N * d, T * N * d * (K + 1) + 4 * T * N * d
    return {"graph": graph, "propagation": (fwd + bwd) * itemsize}


def estimate_device_memory(host_parts: dict[str, int], n_rows: int, dim: int, n_tasks: int, n_train: int,
                           graph: bool, itemsize: int = 4) -> dict[str, int]:
    """Bytes a ``--device cuda`` fit allocates on the GPU, by part, from the host estimate
    ``host_parts`` (:func:`estimate_fit_memory`): the table, its moments, the step buffers and a
    graph encoder's buffers live there too; the best-epoch copy and the evaluation stay on the host.
    Added: the training interactions (two int64 columns, and float32 ratings) and, with a graph
    encoder, the per-row combiner buffers over every row (``[T, N, d]`` gradients, ``[N, d]``
    combined, ``[N, T]`` float64 weights)."""
    out = {k: v for k, v in host_parts.items() if k not in ("best-epoch copy", "evaluation")}
    out["training interactions"] = int(n_train) * 20
    if graph:
        N, d, T = int(n_rows), int(dim), int(n_tasks)
        out["combiner rows"] = (T + 1) * N * d * itemsize + N * T * 8
    return out


def check_device_memory(parts: dict[str, int], free: int | None, what: str) -> int:
    """Refuse (PmtError) a GPU run whose estimate exceeds ``free`` bytes of GPU memory (None:
    unknown, no check); return the estimate."""
    total = int(sum(parts.values()))
    if free is not None and total > free:
        detail = ", ".join(f"{k} {_fmt(v)}" for k, v in parts.items())
        raise PmtError(f"{what} on the GPU needs about {_fmt(total)} of GPU memory ({detail}), but only "
                       f"{_fmt(max(0, free))} is free; use a smaller --dim or --batch-size, or --device cpu")
    return total


def check_memory(parts: dict[str, int], what: str) -> int:
    """Refuse (PmtError) when the estimate exceeds the memory available; return the estimate."""
    total = int(sum(parts.values()))
    avail, src = available_memory()
    if avail is not None and total > avail:
        detail = ", ".join(f"{k} {_fmt(v)}" for k, v in parts.items())
        raise PmtError(f"{what} needs about {_fmt(total)} of memory ({detail}), but only {_fmt(max(0, avail))} "
                       f"is available ({src}); use a smaller --dim or --batch-size")
    return total


def check_split(split, task_names) -> None:
    """Refuse a split on which training or evaluation cannot mean anything (see module doc)."""
    ds = split.dataset
    name = ds.name
    n_train = int(split.train_users.shape[0])
    n_valid = int(split.valid[0][-1])
    n_test = int(split.test[0][-1])
    for part, n in (("training", n_train), ("validation", n_valid), ("test", n_test)):
        if n == 0:
            if getattr(split, "kind", "random") == "fixed":
                raise PmtError(f"data set {name!r}: the {part} part of its fixed split is empty"
                               + (" (--holdout 0 holds nothing out of train)" if part == "validation" else "")
                               + "; its metrics would be undefined")
            raise PmtError(f"data set {name!r} (seed {split.seed}): the {part} part of the 60/20/20 split is empty "
                           f"({ds.n_interactions} interaction(s) are too few); its metrics would be undefined")
    if ds.n_items < 2:
        raise PmtError(f"data set {name!r} has {ds.n_items} item(s): BPR needs at least 2 (a positive and a "
                       f"negative item)")
    deg = np.diff(split.train[0])
    if not np.any((deg > 0) & (deg < ds.n_items)):
        raise PmtError(f"data set {name!r}: every training user has interacted with all {ds.n_items} items, so BPR "
                       f"cannot draw a negative item")


def check_task_options(task_options: dict, task_names) -> None:
    """An option of a task that is not trained is an error, not silently ignored (--gamma)."""
    flag = {"align_uniform": "--gamma"}
    for task in task_options:
        if task not in task_names:
            opt = flag.get(task, f"options of task {task!r}")
            raise PmtError(f"{opt} applies to the {task} task, which is not among the tasks "
                           f"({', '.join(task_names)}); add it with --tasks or drop the option")
