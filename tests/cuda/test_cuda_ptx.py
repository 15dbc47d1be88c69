"""Every CUDA kernel of fastprop compiles to PTX for a Hopper GPU (compute capability 9.0),
without a GPU: the real numba-cuda compiler, which the simulator of ``test_cuda.py`` never runs.

As a script, ``python tests/cuda/test_cuda_ptx.py`` compiles them and prints one line per kernel and
dtype, with how many float64 instructions the PTX has (few in float32: only the losses'); it
needs numba-cuda and NVVM (the ``cuda-toolkit`` wheels with ``nvvm``, ``nvrtc`` and
``cudart``, in the ``test`` extra) and exits with 77 where NVVM is missing. The test runs it in
a process of its own, with the simulator off.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

N_KERNELS = 12


def signatures(ty):
    """``(kernel, argument types)`` of each kernel for the numba floating type ``ty``."""
    from numba import float64, int64
    from numba import types as nt

    from fastprop.cuda import checks, config, fused, gemm, naive, report, samples
    vec, mat, ivec, layout = ty[::1], ty[:, ::1], int64[::1], int64[:, ::1]
    wide = gemm.kernels(ty.name, gemm.tiles(ty.name))
    narrow = gemm.kernels(ty.name, config.GEMM_NARROW_TILES[ty.name])
    flags = int64[::1]
    return [
        (checks.kernels().check_values, (ivec, int64, vec, vec, vec, nt.boolean, int64, flags)),
        (samples.kernels().loss_rows, (layout, int64, vec, mat, ivec, vec, int64, ty, int64,
                                       flags)),
        (samples.kernels().output_rows, (layout, vec, int64, mat)),
        (naive.kernels().forward_layer, (layout, int64, vec, vec, int64, vec, int64)),
        (naive.kernels().backward_layer, (layout, int64, vec, vec, int64)),
        (naive.kernels().weights_layer, (layout, int64, vec, vec, int64, vec, int64, ty, int64,
                                         flags, vec)),
        (wide.forward, (layout, int64, int64, vec, vec, int64, vec, int64)),
        (wide.delta, (layout, int64, vec, vec, int64)),
        (wide.weights, (layout, vec, vec, int64, int64, vec)),
        (narrow.weights, (layout, vec, vec, int64, int64, vec)),
        (fused.kernels(ty.name).forward_backward, (layout, int64, vec, vec, mat, ivec, vec,
                                                   vec, int64, ty, int64, int64, nt.boolean,
                                                   int64, flags)),
        (report.kernels(ty.name).reduce_and_report, (vec, int64, layout, vec, ty, vec, int64, ty,
                                                     int64, flags, vec, float64[::1])),
    ]


def main() -> int:
    """Compile every kernel in both dtypes; 77 where NVVM is missing."""
    from numba import cuda, float32, float64

    from fastprop.cuda import runtime

    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        load_nvidia_dynamic_lib("nvvm")
    except Exception as exc:
        print(f"NVVM is not installed ({type(exc).__name__}): pip install "
              f"'cuda-toolkit[nvvm,nvrtc,cudart]==13.*' to compile here")
        return 77
    runtime._load = lambda: (cuda, None)  # no driver is needed to compile
    for ty in (float32, float64):
        for kernel, args in signatures(ty):
            ptx, _ = cuda.compile_ptx(kernel.py_func, args, cc=(9, 0))
            f64 = sum(".f64" in line for line in ptx.splitlines())
            print(f"{ty} {kernel.py_func.__qualname__}: {len(ptx)} chars, {f64} f64 lines")
    return 0


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None,
                    reason="numba-cuda is not installed")
def test_kernels_compile_for_hopper():
    """Every kernel compiles to PTX for compute capability 9.0 (skipped without NVVM)."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    script = Path(__file__)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env=env, cwd=script.parent)
    if result.returncode == 77:
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(" chars, ") == 2 * N_KERNELS


if __name__ == "__main__":
    sys.exit(main())
