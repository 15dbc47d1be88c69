"""The one way fastprop compiles: ``jit`` is ``numba.njit`` with the project's options.

- ``cache=True``: compiled kernels are cached on disk, so a new process starts in about a second
  instead of compiling for half a minute.
- ``error_model="numpy"``: float division follows IEEE rules (``x / 0`` gives inf or NaN) instead
  of Python's, which checks every division for zero and raises. Those checks also stop LLVM from
  vectorising loops; without them the element-wise passes run in SIMD.
"""

from functools import partial

from numba import njit

jit = partial(njit, cache=True, error_model="numpy")
