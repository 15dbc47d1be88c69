"""The GPU backends, ``"cuda"`` (matrix form) and ``"cuda-naive"`` (loop form), on numba-cuda.

Importing this package imports nothing from ``numba.cuda``: :mod:`fastprop.cuda.runtime` does
that on the first use of a CUDA backend, so ``import fastprop`` works on any machine.

Modules, one job each:

- :mod:`~fastprop.cuda.runtime`: is numba-cuda installed, is there a GPU (or the simulator),
  device arrays in and out without host copies;
- :mod:`~fastprop.cuda.config`: launch settings (tile sizes, threads per block), patched by the
  tests to tiny values on the CUDA simulator;
- :mod:`~fastprop.cuda.retarget`: the CPU core's scalar activation and loss functions compiled
  again as CUDA device functions (one source for both targets);
- :mod:`~fastprop.cuda.samples`: per-sample device functions shared by the naive and fused
  kernels, and the per-sample loss and output kernels;
- :mod:`~fastprop.cuda.checks`, :mod:`~fastprop.cuda.report`: the input-value check and the last
  kernel (gradient reduction, loss, the report read by the host);
- :mod:`~fastprop.cuda.launch`: what a call hands the kernels, and the launches all forms share;
- :mod:`~fastprop.cuda.naive`, :mod:`~fastprop.cuda.gemm`, :mod:`~fastprop.cuda.fused`: the
  kernels of the loop form, of the matrix form and of the fused narrow-network path;
- :mod:`~fastprop.cuda.workspace`: device buffers reused per batch size;
- :mod:`~fastprop.cuda.api`: the entry points behind ``MLP.value_and_grad(..., backend="cuda")``.
"""
