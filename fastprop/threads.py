"""One setting for the threads fastprop uses: numba's pool and the BLAS's.

The backends never stack the two: the matrix backend's products run on the BLAS's threads and its
element-wise passes on the calling thread (numba's pool is never started there); the naive
backend uses numba's pool and no BLAS. :func:`set_num_threads` sets both to the same count, so
that neither alone can use more cores than the user allows.
"""

from __future__ import annotations

import functools

import numba
from threadpoolctl import ThreadpoolController


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in numba's pool and in every loaded BLAS.

    Parameters
    ----------
    n : int
        From 1 to ``numba.config.NUMBA_NUM_THREADS`` (the cores, unless the environment says
        otherwise).
    """
    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"n must be an integer from 1 to {limit}, got {n!r}")
    numba.set_num_threads(n)
    _controller().limit(limits=n, user_api="blas")


def _blas_pools() -> list:
    """threadpoolctl's controller of every loaded BLAS library."""
    return _controller().select(user_api="blas").lib_controllers


def get_num_threads() -> dict[str, int]:
    """``{"numba": n, "blas": n}``: the thread counts in use (the BLAS's largest, if several)."""
    blas = [pool.num_threads for pool in _blas_pools()]
    return {"numba": numba.get_num_threads(), "blas": max(blas, default=0)}


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
