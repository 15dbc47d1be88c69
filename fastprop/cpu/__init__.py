"""CPU backends: Numba-compiled kernels for the loop form and the matrix form of backprop."""
