"""The one way fastprop compiles: ``jit`` is ``numba.njit`` with the project's options.

- ``cache=True``: compiled kernels are cached on disk, so a new process loads them instead of
  compiling them again.
- ``nogil=True``: compiled code runs without the GIL, so other Python threads (several callers
  on one network, a Dask worker's event loop) run while a gradient is computed.
- ``error_model="numpy"``: float division follows IEEE rules (``x / 0`` gives inf or NaN) instead
  of Python's, which checks every division for zero and raises. Those checks also stop LLVM from
  vectorising loops; without them the element-wise passes run in SIMD.
"""

from functools import partial

import numba
from numba import njit

jit = partial(njit, cache=True, nogil=True, error_model="numpy")


_runtime_started = False


def start_parallel_runtime() -> None:
    """Start numba's parallel runtime (its threading layer) in this process, once.

    The CPU backends call this before their first compiled call, so before any of their code can
    be loaded from numba's disk cache. numba starts the runtime when it loads a cached parallel
    function, but not when it loads a cached function that only calls one: such a function,
    compiled in a process that had loaded its parallel callee from the cache, is cached without
    the start-up step, and loading it in a later process leaves its calls into the runtime
    unresolved (LLVM aborts the interpreter: "Symbol not found: allocate_sched").

    Not at import: with GNU OpenMP as the threading layer, a process forked after the runtime
    started is terminated when it runs parallel code, and importing fastprop must not break
    ``fork`` (asv's benchmark runner, ``multiprocessing``).
    """
    global _runtime_started
    if not _runtime_started:
        numba.get_num_threads()
        _runtime_started = True
