"""One setting for the threads fastprop uses: numba's pool and the BLAS's.

The backends never stack the two: the matrix backend's products run on the BLAS's threads and its
element-wise passes on the calling thread (numba's pool is never started there); the naive
backend uses numba's pool and no BLAS. :func:`set_num_threads` sets both to the same count, so
that neither alone can use more cores than the user allows.

numba keeps its thread count per calling thread; the count set here is the process's, applied in
every thread that calls a backend (:func:`numba_threads`).
"""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Callable

_requested: int | None = None
_generation = 0
_applied = threading.local()
_thread_count: Callable[[], int] | None = None


@functools.cache
def _controller():
    """threadpoolctl's view of the process's thread pools (loaded on first use)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in numba's pool and in every loaded BLAS.

    Parameters
    ----------
    n : int
        From 1 to ``numba.config.NUMBA_NUM_THREADS`` (the cores, unless the environment says
        otherwise); any integer type, NumPy's included. It holds in every thread of the process,
        those started before the call too.
    """
    global _requested, _generation
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    try:
        count = None if isinstance(n, bool) else operator.index(n)
    except TypeError:
        count = None
    if count is None:
        raise TypeError(f"n must be an integer, got {n!r}")
    if not 1 <= count <= limit:
        raise ValueError(f"n must be an integer from 1 to {limit}, got {count}")
    numba.set_num_threads(count)
    _requested = count
    _generation += 1
    _applied.generation = _generation
    _controller().limit(limits=count, user_api="blas")


def numba_threads() -> int:
    """numba's thread count in the calling thread, once :func:`set_num_threads`'s count, if
    one was set since this thread last asked, is applied to it."""
    if _requested is not None and getattr(_applied, "generation", 0) != _generation:
        import numba

        numba.set_num_threads(_requested)
        _applied.generation = _generation
    return (_thread_count or _load_thread_count())()


def _load_thread_count() -> Callable[[], int]:
    """The cheapest reader of numba's thread count in the calling thread, found on first use.

    ``numba.get_num_threads`` takes two locks on every call, to start the threading layer if it
    has not started. Once it has, the layer's own C getter (which numba calls after those locks)
    returns the same count without them. A function compiled to read the count would be as
    cheap, but numba cannot cache it: every new process would compile it before its first
    gradient. Where numba no longer has the getter, its public function is used.
    """
    global _thread_count
    import numba
    from numba.np.ufunc import parallel

    numba.get_num_threads()  # starts the layer, which sets the getter
    getter = getattr(parallel, "_get_num_threads", None)
    _thread_count = numba.get_num_threads if getter is None else getter
    return _thread_count


def _blas_pools() -> list:
    """threadpoolctl's controller of every loaded BLAS library."""
    return _controller().select(user_api="blas").lib_controllers


def get_num_threads() -> dict[str, int]:
    """``{"numba": n, "blas": n}``: the thread counts in use (the BLAS's largest, if several)."""
    blas = [pool.num_threads for pool in _blas_pools()]
    return {"numba": numba_threads(), "blas": max(blas, default=0)}


def blas_paths() -> list[str]:
    """The files of the BLAS libraries loaded in this process (NumPy's among them)."""
    return [pool.filepath for pool in _blas_pools()]


def blas_kernels() -> list[str | None]:
    """The kernel family of every loaded BLAS as threadpoolctl reports it (OpenBLAS's
    ``Haswell``, ``SkylakeX``, ...), ``None`` where the library does not say."""
    return [getattr(pool, "architecture", None) for pool in _blas_pools()]


def blas_description() -> list[str]:
    """One line per loaded BLAS: library, version, kernel architecture, threads."""
    return [f"{pool.internal_api} {pool.version} ({getattr(pool, 'architecture', '?')} kernels, "
            f"{pool.num_threads} threads): {pool.prefix}"
            for pool in _blas_pools()]
