"""CPU backends: Numba-compiled kernels for the loop form and the matrix form of backprop."""

from .._jit import start_parallel_runtime

start_parallel_runtime()
