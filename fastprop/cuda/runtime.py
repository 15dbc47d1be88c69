"""numba-cuda on demand: whether a CUDA backend can run, and device arrays in and out.

Nothing imports ``numba.cuda`` until :func:`cuda` is called. ``NUMBA_ENABLE_CUDASIM=1`` in the
environment before that first call selects numba's CUDA simulator (kernels run as Python on the
CPU: for tests, never for speed).
"""

from __future__ import annotations

import functools
import importlib.util
from types import ModuleType
from typing import Any

import numpy as np

INSTALL_HINT = "pip install fastprop[cuda]"


class CudaUnavailableError(RuntimeError):
    """A CUDA backend was asked for where it cannot run (no numba-cuda, no GPU or driver)."""


@functools.cache
def _load() -> tuple[ModuleType | None, str | None]:
    """``(numba.cuda, None)`` when usable, else ``(None, why)``."""
    if importlib.util.find_spec("numba_cuda") is None:
        return None, f"the numba-cuda package is not installed ({INSTALL_HINT})"
    try:
        from numba import cuda
    except Exception as exc:  # a broken install: say what numba-cuda said
        return None, f"numba.cuda failed to import: {exc} ({INSTALL_HINT})"
    if not cuda.is_available():
        detail = getattr(cuda, "cuda_error", lambda: None)()
        detail = f" ({' '.join(str(detail).split())})" if detail else ""
        return None, ("no CUDA GPU or driver was found" + detail
                      + "; NUMBA_ENABLE_CUDASIM=1 runs the CUDA backends on numba's simulator")
    return cuda, None


def unavailable_reason() -> str | None:
    """Why the CUDA backends cannot run here, or ``None`` when they can."""
    return _load()[1]


def cuda() -> ModuleType:
    """The ``numba.cuda`` module; :class:`CudaUnavailableError` saying what is missing."""
    module, why = _load()
    if module is None:
        raise CudaUnavailableError(f"the CUDA backends need the numba-cuda package "
                                   f"({INSTALL_HINT}) and a CUDA GPU: {why}")
    return module


def bind(module_globals: dict[str, Any]) -> None:
    """Set the global ``cuda`` of a kernel module to ``numba.cuda`` (:func:`cuda`).

    Kernels must name ``numba.cuda`` through a module global: the CUDA simulator runs a kernel
    by swapping its own module for every global of the kernel's module that is ``numba.cuda``.
    """
    module_globals["cuda"] = cuda()


def simulated() -> bool:
    """Whether numba's CUDA simulator stands in for a GPU (then nothing is worth timing)."""
    from numba.cuda.core import config

    return bool(config.ENABLE_CUDASIM)


def timing_unavailable_reason() -> str | None:
    """Why CUDA timings are meaningless here (no GPU, or only the simulator), or ``None``."""
    why = unavailable_reason()
    if why is None and simulated():
        why = "only numba's CUDA simulator is available (its timings mean nothing)"
    return why


def is_device_array(obj: object) -> bool:
    """Whether ``obj`` lives on the GPU: it exports ``__cuda_array_interface__``, or is a numba
    device array (the simulator's have no interface)."""
    return hasattr(obj, "__cuda_array_interface__") or hasattr(obj, "__cuda_ndarray__")


def as_device(obj: Any) -> Any:
    """A numba device array for a GPU array, without a copy (CuPy, PyTorch: a view)."""
    if hasattr(obj, "__cuda_ndarray__"):
        return obj
    return cuda().as_cuda_array(obj)


def to_device(array: np.ndarray) -> Any:
    """A device copy of the host array ``array``."""
    return cuda().to_device(array)


def to_host(array: Any) -> np.ndarray:
    """A host copy of the device array ``array`` (waits for the kernels that write it)."""
    return array.copy_to_host()


def address_range(array: Any) -> tuple[int, int]:
    """``(first byte, one past the last byte)`` of a contiguous device array."""
    interface = getattr(array, "__cuda_array_interface__", None)
    start = interface["data"][0] if interface is not None else array.ctypes.data
    return start, start + array.size * array.dtype.itemsize
