"""CUDA twins of the task-wise baselines' device part (combiners/gram_cuda.py) against the CPU
combiners, in the simulator on tiny inputs: the Gram matrix, the host weights from it, and g."""

import numpy as np
import pytest

from tests.cuda_helpers import cuda, diff  # noqa: F401  (skips without the simulator)

from pmtnumba.combiners import StepContext, make_combiner
from pmtnumba.combiners import gram_cuda as GC
from pmtnumba.combiners.gram import gram
from pmtnumba.training.step_cuda import on_gram

GRAM_METHODS = ["pcgrad", "gradvac", "cagrad", "aligned-mtl", "nash-mtl", "rlw"]


def _step_gradients(seed, T=3, S=23, R=17, d=4):
    """G [T, S, d] float32 whose first R rows are the step's (rows past R hold junk the kernels must
    not read); task 1 conflicts with task 0 on part of the rows, task 2 is sparse."""
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(T, S, d)).astype(np.float32)
    G[1, : R // 2] = -0.7 * G[0, : R // 2]
    G[2, ::3] = 0.0
    G[:, R:] = np.nan
    return G


def _device_combine(c, G, R, ctx, ws):
    T, S, d = G.shape
    Gd = cuda.to_device(G)
    R_dev = cuda.to_device(np.array([R], np.int64))
    g = cuda.to_device(np.zeros((S, d), G.dtype))
    G2 = Gd.reshape(T, S * d)
    A = ws.gram(G2, R_dev, d) if c.uses_gram else None
    w = c.task_weights(A, T, ctx)
    ws.weighted_sum(G2, w, R_dev, d, g.reshape(S * d))
    return A, g.copy_to_host()[:R]


@pytest.mark.parametrize("parts,chunk", [(GC.GRAM_PARTS, GC.CHUNK), (7, 3)])
@pytest.mark.parametrize("method", GRAM_METHODS)
def test_gram_baselines_match_cpu(method, parts, chunk, monkeypatch):
    """Two steps (stateful methods carry their state), same seeds: g, A, the state and the generator
    agree. parts/chunk (7, 3) makes the reduction take three rounds on these tiny inputs."""
    monkeypatch.setattr(GC, "GRAM_PARTS", parts)
    monkeypatch.setattr(GC, "CHUNK", chunk)
    cpu, gpu = make_combiner(method), make_combiner(method)
    assert on_gram(gpu)
    T, S, R, d = 3, 23, 17, 4
    ws = GC.GramWorkspace(T, S * d)
    assert len(ws.sizes) == (3 if parts == 7 else 2)
    rc, rg = np.random.default_rng(5), np.random.default_rng(5)
    for step in (1, 2):
        G = _step_gradients(step, T, S, R, d)
        g_cpu = cpu(G[:, :R], StepContext(epoch=1, step=step, rng=rc))
        A, g_gpu = _device_combine(gpu, G, R, StepContext(epoch=1, step=step, rng=rg), ws)
        if gpu.uses_gram:
            ab, rel = diff(f"gram A ({method}, parts {parts})", gram(G[:, :R]), A)
            assert rel < 1e-13
        ab, rel = diff(f"{method} g (parts {parts}) step {step}", g_cpu, g_gpu)
        assert np.isfinite(g_gpu).all() and rel < 1e-5
        np.testing.assert_allclose(gpu.last_weights, cpu.last_weights, rtol=1e-10, atol=1e-12)
    assert rc.bit_generator.state == rg.bit_generator.state  # the same draws, in the same order
    for k, v in cpu.state_dict().items():
        np.testing.assert_allclose(gpu.state_dict()[k], v, rtol=1e-10, atol=1e-12)


def test_which_combiners_take_the_gram_path():
    assert not on_gram(make_combiner("graddrop"))  # per coordinate: graddrop_cuda
    assert not on_gram(make_combiner("pmtrec")) and not on_gram(make_combiner("ew"))


def test_gram_zero_rows():
    """A step that touched no row: A is 0 and the weights are the CPU combiner's on an empty G."""
    ws = GC.GramWorkspace(2, 8)
    G = np.ones((2, 2, 4), np.float32)
    cpu, gpu = make_combiner("cagrad"), make_combiner("cagrad")
    cpu(G[:, :0], StepContext())
    A, g = _device_combine(gpu, G, 0, StepContext(), ws)
    assert A.shape == (2, 2) and not A.any()
    np.testing.assert_array_equal(gpu.last_weights, cpu.last_weights)


def test_pcg64_jump_matches_numpy():
    """The device's PCG64 arithmetic (plain Python here) draws NumPy's numbers at any position."""
    from pmtnumba.combiners import pcg64 as P

    rng = np.random.default_rng(7)
    rng.permutation(3)  # leaves a buffered 32-bit half-word: advance_generator must keep it
    ref = np.random.default_rng(7)
    ref.permutation(3)
    U = ref.random(300)
    state, inc = P.generator_state(rng)
    tab = P.jump_table(inc)
    sh, sl = np.uint64(state >> 64), np.uint64(state & (2**64 - 1))
    with np.errstate(over="ignore"):
        for n in (0, 1, 2, 5, 64, 255, 299):
            h, lo = P.jump(tab, np.uint64(n), sh, sl)
            h, lo = P.affine128(tab[0, 0], tab[0, 1], tab[0, 2], tab[0, 3], h, lo)
            assert P.output_double(h, lo) == U[n], n
    P.advance_generator(rng, 300)
    assert rng.bit_generator.state == ref.bit_generator.state
    assert rng.permutation(9).tolist() == ref.permutation(9).tolist()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("leak", [0.0, 0.3])
def test_graddrop_matches_cpu(leak):
    """GradDrop on the device: the CPU's uniforms bit for bit, g equal, the generator where the CPU's is."""
    from pmtnumba.combiners.graddrop_cuda import GradDropDevice

    T, S, R, d = 3, 23, 17, 4
    cpu, gpu = make_combiner("graddrop", leak=leak), make_combiner("graddrop", leak=leak)
    dev = GradDropDevice()
    rc, rg = np.random.default_rng(11), np.random.default_rng(11)
    for step in (1, 2):
        G = _step_gradients(step, T, S, R, d)
        g_cpu = cpu(G[:, :R], StepContext(step=step, rng=rc))
        g = cuda.to_device(np.zeros((S, d), np.float32))
        dev.combine(gpu, cuda.to_device(G).reshape(T, S * d), cuda.to_device(np.array([R], np.int64)), d, rg,
                    g.reshape(S * d))
        ab, rel = diff(f"graddrop leak {leak} g step {step}", g_cpu, g.copy_to_host()[:R])
        assert ab == 0.0
        assert np.any(g_cpu != G[:, :R].sum(0))  # something was dropped
        assert rc.bit_generator.state == rg.bit_generator.state
