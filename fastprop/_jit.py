"""The one way fastprop compiles: :func:`jit` is ``numba.njit`` with the project's options.

- ``cache=True``: compiled kernels are cached on disk, so a new process loads them instead of
  compiling them again. Processes that share the cache write it one at a time (see :func:`jit`).
- ``nogil=True``: compiled code runs without the GIL, so other Python threads (several callers
  on one network, a Dask worker's event loop) run while a gradient is computed.
- ``error_model="numpy"``: float division follows IEEE rules (``x / 0`` gives inf or NaN) instead
  of Python's, which checks every division for zero and raises. Those checks also stop LLVM from
  vectorising loops; without them the element-wise passes run in SIMD.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numba
from numba import njit
from numba.core.caching import NullCache

try:
    import fcntl
except ImportError:  # (Windows: numba's cache is written without the lock)
    fcntl = None

#: The options of every compiled function; a call of :func:`jit` may override them.
OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}


def jit(function: Callable | None = None, **options: Any) -> Any:
    """``numba.njit`` with :data:`OPTIONS`, used as ``@jit`` or ``@jit(**options)``.

    numba saves a function's compiled variant to its disk cache by reading the function's cache
    index, adding the variant and writing the index back, then writing the variant's code to a
    data file named after the first number the index does not use. Two processes that compile
    different variants of one function at the same moment (a float32 and a float64 network, say)
    can both read the index before either writes it: one variant is lost, or both take the same
    data file, and the index then names one variant's code for the other's argument types. So
    each cached function's cache saves under an exclusive lock on a file in the temporary
    directory, and loads under a shared one: saves in different processes take turns, and a load
    never sees a save half done.
    """
    if function is None:
        return functools.partial(jit, **options)
    dispatcher = njit(**{**OPTIONS, **options})(function)
    cache = getattr(dispatcher, "_cache", None)
    if fcntl is not None and cache is not None and not isinstance(cache, NullCache):
        cache.save_overload = _with_cache_lock(cache.save_overload, fcntl.LOCK_EX)
        cache.load_overload = _with_cache_lock(cache.load_overload, fcntl.LOCK_SH)
    return dispatcher


def _with_cache_lock(method: Callable, operation: int) -> Callable:
    """``method`` called while this process holds the cache lock (``operation``: shared or
    exclusive)."""
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _cache_lock(operation):
            return method(*args, **kwargs)

    return locked


@functools.cache
def _lock_path() -> str:
    """The lock file of this user's fastprop processes, in the temporary directory."""
    return os.path.join(tempfile.gettempdir(), f"fastprop-numba-cache-{os.getuid()}.lock")


@contextlib.contextmanager
def _cache_lock(operation: int) -> Iterator[None]:
    """Hold :func:`_lock_path` (``flock``; released when the file is closed). Where the file
    cannot be opened or locked, go on without it, as numba does."""
    with contextlib.ExitStack() as stack:
        try:
            lock = stack.enter_context(open(_lock_path(), "a"))
            fcntl.flock(lock, operation)
        except OSError:
            pass
        yield


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
