"""Compile every CUDA twin to PTX without a GPU (run as a script, WITHOUT NUMBA_ENABLE_CUDASIM).

The CUDA simulator runs the kernels as Python, so it cannot tell whether they compile for a real
GPU. This script asks numba-cuda's compiler (NVVM) for the PTX of each kernel at the argument
types training uses; it needs libnvvm and libnvrtc but no driver. Numba asks the current device
for its compute capability when it compiles a device function; with no device we give it 9.0.
Prints one line per kernel and exits 1 if any fails, 77 if the compiler is not installed.
"""

import sys
import types

try:
    from numba import cuda
    from numba.cuda import dispatcher as _dispatcher
except ImportError:
    sys.exit(77)

CC = (9, 0)
_dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=CC)


def kernels():
    from pmtnumba.combiners.base_cuda import ew_cuda
    from pmtnumba.combiners.pmtrec_cuda import pmtrec_cuda
    from pmtnumba.data import link_samplers_cuda as L
    from pmtnumba.data.samplers_cuda import sample_unlinked_cuda
    from pmtnumba.evaluation import topk_cuda as TK
    from pmtnumba.optim import adam_cuda as A
    from pmtnumba import scan_cuda as SC
    from pmtnumba.tasks import rowgrad_cuda as RG
    from pmtnumba.tasks.rating_cuda import rating_slots_cuda
    from pmtnumba.tasks.triplet_cuda import triplet_slots_cuda

    i64, i32, f32, f64, u64 = "int64[::1]", "int32[::1]", "float32[::1]", "float64[::1]", "uint64"
    E = "float32[:, ::1]"
    G = "float32[:, :, ::1]"
    out = [
        (sample_unlinked_cuda, f"void({i64}, {i64}, {i32}, int64, {u64}, int64, {i64})"),
        (L.sample_link_anchored_cuda, f"void({i64}, {i64}, {i32}, int64, {u64}, int64, {i64}, {i64})"),
        (L.sample_link_independent_cuda, f"void({i64}, {i32}, int64, {u64}, int64, {i64}, {i64}, {i64})"),
        (L.sample_category_anchored_cuda, f"void({i64}, {i64}, {i64}, {i64}, {i64}, {u64}, {i64}, {i64})"),
        (L.sample_category_independent_cuda, f"void({i64}, {i64}, {i64}, {i64}, {u64}, {i64}, {i64}, {i64})"),
        (L._keep_flags, f"void({i64}, int64, {i64})"),
        (L._scatter_kept, f"void({i64}, {i64}, {i64}, int64, {i64}, int64, {i64}, {i64}, {i64}, {i64})"),
        (SC._chunk_sums, f"void({i64}, int64, {i64})"),
        (SC._scan_sums, f"void({i64}, int64, {i64}, int64)"),
        (SC._chunk_scan, f"void({i64}, int64, {i64}, {i64})"),
        (triplet_slots_cuda, f"void({E}, {i64}, {i64}, {i64}, {i64}, {i64}, {E}, {f64})"),
        (rating_slots_cuda, f"void({E}, {i64}, {i64}, {f32}, {i64}, {i64}, {E}, {f64})"),
        (RG._mark, f"void({i64}, {i64})"),
        (RG._list_rows, f"void({i64}, {i64}, {i64})"),
        (RG._zero_int, f"void({i64}, int64)"),
        (RG._count, f"void({i64}, {i64}, {i64})"),
        (RG._place, f"void({i64}, {i64}, {i64}, {i64}, {i64})"),
        (RG._sort_segments, f"void({i64}, {i64}, {i64}, {i64}, {i64})"),
        (RG.gather_rows_cuda, f"void({i64}, {i64}, {i64}, {E}, {i64}, {G})"),
        (ew_cuda, f"void({G}, {i64}, {E})"),
        (pmtrec_cuda, f"void({G}, {i64}, float64, float64, boolean, {E}, float64[:, ::1])"),
        (A.adam_sparse_cuda, f"void({E}, {E}, {i64}, {i64}, {E}" + ", float32" * 8 + ")"),
        (A.dense_local_set_cuda, f"void({i64}, {i64}, {i64})"),
        (A.dense_local_reset_cuda, f"void({i64}, {i64}, {i64})"),
        (A.adam_dense_cuda, f"void({E}, {E}, {i64}, {E}" + ", float32" * 8 + ")"),
        (TK.scores_kernel(), f"void({E}, {i64}, {E}, {E})"),
        (TK.topk_rows_cuda(40), f"void({E}, {i64}, {i64}, {i32}, int32[:, ::1], {E})"),
    ]
    import importlib

    for mod in ("pmtnumba.training.step_cuda", "pmtnumba.tasks.align_uniform_cuda", "pmtnumba.combiners.gram_cuda",
                "pmtnumba.training.weights_cuda", "pmtnumba.combiners.graddrop_cuda",
                "pmtnumba.encoders.propagate_cuda", "pmtnumba.training.ego_reg_cuda", "pmtnumba.encoders.ngcf_cuda",
                "pmtnumba.training.dense_cuda"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError:
            continue
        out += m.ptx_signatures()
    return out


def main() -> int:
    try:
        ks = kernels()
    except ImportError as exc:
        print(f"import failed: {exc}")
        return 1
    bad = 0
    for k, sig in ks:
        name = getattr(k, "__name__", None) or k.py_func.__name__
        try:
            cuda.compile_ptx(k.py_func, sig, cc=CC)
            print(f"ok   {k.py_func.__module__}.{name}")
        except Exception as exc:  # report every failing kernel, not only the first
            msg = str(exc).strip().splitlines()
            if any(w in str(exc) for w in ("libnvvm", "libnvrtc", "NVVM", "nvrtc")) and "Failure finding" in str(exc):
                print(f"compiler not installed: {msg[0]}")
                return 77
            bad += 1
            print(f"FAIL {k.py_func.__module__}.{name}: {type(exc).__name__}: {' '.join(msg)[:400]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
