"""Compile every CUDA kernel of fastprop to PTX for a Hopper GPU (compute capability 9.0),
without a GPU: ``python tests/cuda_ptx.py``. Needs numba-cuda and NVVM (the ``cuda-toolkit``
wheels with ``nvvm``, ``nvrtc`` and ``cudart``), and the simulator off. Prints one line per
kernel and dtype, and how many float64 instructions a float32 kernel has (there should be few).
Exits with 77 where NVVM is missing.
"""

from __future__ import annotations

import sys

from numba import cuda, float32, float64, int32, int64
from numba import types as nt

from fastprop.cuda import checks, finish, fused, gemm, naive, rows, runtime


def signatures(ty):
    """Each kernel's argument types for floating type ``ty``."""
    vec, mat, ivec, layout = ty[::1], ty[:, ::1], int64[::1], int64[:, ::1]
    flags = int32[::1]
    return {
        checks.kernels().check_values: (ivec, int64, vec, vec, vec, nt.boolean, flags),
        rows.kernels().loss_rows: (layout, int64, vec, mat, ivec, int64, ty, flags),
        rows.kernels().output_rows: (layout, vec, int64, mat),
        naive.kernels().forward_layer: (layout, int64, vec, vec, int64, vec, int64),
        naive.kernels().backward_layer: (layout, int64, vec, vec, int64),
        naive.kernels().weights_layer: (layout, int64, vec, vec, int64, vec, int64, ty, flags,
                                        vec),
        gemm.kernels(ty.name).forward: (layout, int64, int64, vec, vec, int64, vec, int64),
        gemm.kernels(ty.name).delta: (layout, int64, vec, vec, int64),
        gemm.kernels(ty.name).weights: (layout, vec, vec, int64, int64, vec),
        fused.kernels(ty.name).forward_backward: (layout, int64, vec, vec, mat, ivec, vec,
                                                  int64, ty, nt.boolean, flags),
        finish.kernels(ty.name).sum_splits: (vec, int64, layout, vec, ty, flags, vec),
        finish.kernels(ty.name).loss_report: (layout, vec, int64, ty, vec, ty, flags,
                                              float64[::1]),
    }


def main() -> int:
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        load_nvidia_dynamic_lib("nvvm")
    except Exception as exc:
        print(f"NVVM is not installed ({type(exc).__name__}): pip install "
              f"'cuda-toolkit[nvvm,nvrtc,cudart]==13.*' to compile here")
        return 77
    runtime._load = lambda: (cuda, None)  # no driver is needed to compile
    for ty in (float32, float64):
        for kernel, args in signatures(ty).items():
            ptx, _ = cuda.compile_ptx(kernel.py_func, args, cc=(9, 0))
            f64 = sum(".f64" in line for line in ptx.splitlines())
            print(f"{ty} {kernel.py_func.__qualname__}: {len(ptx)} chars, {f64} f64 lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
