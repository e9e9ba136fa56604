"""Shared fixtures: small synthetic data sets (no files needed).

The thread-count determinism tests compare 1 thread with 2. Numba fixes its largest thread count
when it is first imported (``NUMBA_NUM_THREADS``, default: the number of cores), so on a one-core
runner, or with ``NUMBA_NUM_THREADS=1`` exported, they would compare 1 with 1 and test nothing.
Numba allows more threads than cores when the variable is set before import, so it is raised to
at least 2 here, before anything imports numba (a larger value is kept).
"""

import os

if int(os.environ.get("NUMBA_NUM_THREADS") or 0) < 2:
    os.environ["NUMBA_NUM_THREADS"] = str(max(2, int(os.environ.get("NUMBA_NUM_THREADS") or os.cpu_count() or 1)))

# CUDA tests run in numba's CUDA simulator unless PMTNUMBA_REAL_GPU=1; numba reads the switch
# once, at its first import, so it is set here, before anything imports numba.
_CONFTEST_SET_CUDASIM = os.environ.get("PMTNUMBA_REAL_GPU") != "1" and "NUMBA_ENABLE_CUDASIM" not in os.environ
if os.environ.get("PMTNUMBA_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from pmtnumba.data.dataset import Dataset  # noqa: E402


def synthetic_dataset(n_users=60, n_items=40, per_user=8, seed=0, ratings=True, name="synthetic"):
    """A small random data set with every side relation, for fast tests."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        its = rng.choice(n_items, size=per_user, replace=False)
        users += [u] * per_user
        items += list(its)
    users = np.array(users, np.int32)
    items = np.array(items, np.int32)
    soc = rng.integers(0, n_users, size=(n_users * 2, 2)).astype(np.int32)
    soc = soc[soc[:, 0] != soc[:, 1]]
    links = rng.integers(0, n_items, size=(n_items * 3, 2)).astype(np.int32)
    links = links[links[:, 0] != links[:, 1]]
    return Dataset(
        name=name,
        n_users=n_users,
        n_items=n_items,
        users=users,
        items=items,
        ratings=rng.integers(1, 6, size=users.size).astype(np.float32) if ratings else None,
        user_raw=np.arange(100, 100 + n_users),
        item_raw=np.arange(500, 500 + n_items),
        social=soc,
        item_category=rng.integers(0, 5, size=n_items).astype(np.int32),
        also_viewed=links[: n_items],
        also_bought=links[n_items:],
        source="synthetic",
    )


def several_threads() -> int:
    """The thread count the determinism tests compare with 1 thread: 2, never 1."""
    import numba

    n = numba.config.NUMBA_NUM_THREADS
    assert n >= 2, f"numba was imported with NUMBA_NUM_THREADS={n} before tests/conftest.py could raise it"
    return 2


@pytest.fixture(scope="module")
def one_numba_thread():
    """Run a module's kernels on one thread: on a shared 2-core machine every parallel region can
    cost milliseconds of waiting. Tests that compare thread counts set their own."""
    import numba

    saved = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(saved)


@pytest.fixture
def tiny_dataset():
    return synthetic_dataset()


@pytest.fixture(scope="session")
def cuda_sim():
    """``numba.cuda`` for CUDA-twin tests: the simulator (tiny inputs only, it is slow) unless
    PMTNUMBA_REAL_GPU=1. Skips when numba-cuda is not installed or no device is usable."""
    cuda = pytest.importorskip("numba.cuda")
    if not cuda.is_available():
        pytest.skip("numba.cuda: no usable GPU and the simulator is off")
    return cuda

@pytest.fixture
def small_cuda_blocks(monkeypatch):
    """Small GEMM and top-K blocks for the CUDA simulator, which runs every thread as a Python
    thread: tiny problems still span several GEMM tiles, strides and selects, and a simulated
    evaluation costs seconds, not tens of seconds (the block shape changes no result; the
    production shape has its own test, test_cuda_evaluation_default_block_shape)."""
    from pmtnumba.evaluation import topk_cuda

    topk_cuda.use_simulator_blocks(monkeypatch.setattr)


def _load_cuda_simulator():
    """Import numba.cuda now, as the simulator (the variable set above), then unset the variable
    again if this file set it: subprocesses started by tests must not inherit it, and
    pmtnumba.device counts the simulator as a usable GPU (``--device auto`` -> cuda) only while
    NUMBA_ENABLE_CUDASIM is set (the CUDA training tests set it with monkeypatch)."""
    try:
        from numba import cuda  # noqa: F401  (reads the variable now)
    except ImportError:  # the CPU-only install: the CUDA tests skip
        pass
    finally:
        if _CONFTEST_SET_CUDASIM:
            os.environ.pop("NUMBA_ENABLE_CUDASIM", None)


_load_cuda_simulator()


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path, monkeypatch):
    """Every test runs in its own empty folder: a fit without --out (it writes to ./runs/) leaves
    nothing in the checkout."""
    monkeypatch.chdir(tmp_path)
