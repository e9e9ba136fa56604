"""Compile the GPU evaluation kernels to PTX without a GPU (a typing/lowering check).

The CUDA simulator runs kernels as Python, so it cannot tell whether they compile for a real GPU
(e.g. a numba-core ``register_jitable(inline="always")`` helper types in the simulator but not in
numba-cuda 0.30's CUDA target). This script compiles the production kernels of
``pmtnumba.evaluation.topk_cuda`` to PTX for one compute capability. It needs numba-cuda and
libNVVM (``pip install nvidia-nvvm nvidia-cuda-nvrtc``, or a CUDA toolkit), not a GPU or driver.

Run: ``python benchmarks/compile_cuda_ptx.py [--cc 9.0]``; prints the size of each PTX and the
number of FMA / barrier instructions and whether local memory is used.
"""

import argparse
import os
import types


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cc", default="9.0", help="compute capability, e.g. 8.0 or 9.0")
    args = ap.parse_args()
    cc = tuple(int(x) for x in args.cc.split("."))
    os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
    import numba.cuda.dispatcher as dispatcher

    # device functions ask the current device for its compute capability; there is none here
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    from numba import cuda

    from pmtnumba.evaluation import topk_cuda as tc

    kernels = {
        "scores_kernel": (
            tc.scores_kernel().py_func,
            "float32[:, ::1], int64[::1], float32[:, ::1], float32[:, ::1]",
        ),
        "topk_rows_cuda(k=40)": (
            tc.topk_rows_cuda(40).py_func,
            "float32[:, ::1], int64[::1], int64[::1], int32[::1], int32[:, ::1], float32[:, ::1]",
        ),
    }
    for name, (fn, sig) in kernels.items():
        ptx, _ = cuda.compile_ptx(fn, sig, cc=cc)
        print(f"{name}: sm_{cc[0]}{cc[1]} PTX {len(ptx)} chars, fma.rn.f32 x{ptx.count('fma.rn.f32')}, "
              f"bar.sync x{ptx.count('bar.sync')}, local memory: {'ld.local' in ptx or 'st.local' in ptx}")


if __name__ == "__main__":
    main()
