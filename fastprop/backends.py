"""Backend names and the compiled entry points behind them: the one place that dispatches.

Every CPU backend provides the same four things (see :mod:`fastprop.cpu.common` for the kernels'
signature), so adding one is one module and one entry in :data:`BACKENDS`. The GPU backends
(``"cuda"``, ``"cuda-naive"``: :mod:`fastprop.cuda`) take over the whole call instead, arrays on
the GPU included; they are listed everywhere, and asking for one where CUDA cannot run raises
:class:`fastprop.cuda.runtime.CudaUnavailableError`, which says what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import ModuleType

from ._jit import start_parallel_runtime
from .cpu import matrix, naive
from .cuda import api as cuda_api
from .cuda import runtime as cuda_runtime

DEFAULT_BACKEND = "matrix"


@dataclass(frozen=True)
class Backend:
    """One implementation of the network's compiled entry points.

    Attributes
    ----------
    name : str
        The name users pass as ``backend=``.
    value_and_grad, loss, forward : callable
        The compiled kernels.
    workspace_size : callable
        ``workspace_size(layout, batch, n_threads) -> int``: the work buffer's length.
    uses_threads : callable
        ``uses_threads(batch) -> bool``: whether the kernels may split a batch of ``batch``
        samples among numba's threads (then the caller passes the current thread count;
        otherwise 1, and skips asking numba, which costs a call).
    device : bool
        A GPU backend: ``value_and_grad``, ``loss`` and ``forward`` are those of
        :mod:`fastprop.cuda.api`, called with the network and the method's own arguments;
        ``workspace_size`` is None.
    """

    name: str
    value_and_grad: Callable
    loss: Callable
    forward: Callable
    workspace_size: Callable | None
    uses_threads: Callable[[int], bool]
    device: bool = False


def _from_module(name: str, module: ModuleType) -> Backend:
    return Backend(name, module.value_and_grad, module.loss, module.forward,
                   module.workspace_size, module.uses_threads)


def _one_thread(batch: int) -> bool:
    return False


def _gpu(name: str, form: str) -> Backend:
    return Backend(name, partial(cuda_api.value_and_grad, form=form),
                   partial(cuda_api.loss, form=form), partial(cuda_api.forward, form=form),
                   None, uses_threads=_one_thread, device=True)


#: The backends by name (the GPU ones are listed where CUDA is missing, too).
BACKENDS: dict[str, Backend] = {
    "matrix": _from_module("matrix", matrix),
    "naive": _from_module("naive", naive),
    "cuda": _gpu("cuda", "matrix"),
    "cuda-naive": _gpu("cuda-naive", "naive"),
}


def get_backend(name: str) -> Backend:
    """The backend called ``name``; ``ValueError`` listing the choices for an unknown name,
    :class:`~fastprop.cuda.runtime.CudaUnavailableError` for a GPU backend where CUDA is
    missing."""
    try:
        chosen = BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"backend must be one of {sorted(BACKENDS)}, got {name!r}") from None
    if chosen.device:
        cuda_runtime.cuda()
    else:
        start_parallel_runtime()
    return chosen


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot be timed here (a GPU backend without a GPU, or on the CUDA
    simulator), or ``None``."""
    return cuda_runtime.timing_unavailable_reason() if BACKENDS[name].device else None
