"""Backend names and the compiled entry points behind them: the one place that dispatches.

Every backend provides the same four things (see :mod:`fastprop.cpu.common` for the kernels'
signature), so adding one is one module and one entry in :data:`BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from .cpu import matrix, naive

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
    uses_threads : bool
        Whether the kernels split work among numba's threads (then the caller passes the current
        thread count; otherwise 1, and skips asking numba, which costs a call).
    """

    name: str
    value_and_grad: Callable
    loss: Callable
    forward: Callable
    workspace_size: Callable
    uses_threads: bool


def _from_module(name: str, module: ModuleType, uses_threads: bool) -> Backend:
    return Backend(name, module.value_and_grad, module.loss, module.forward,
                   module.workspace_size, uses_threads)


#: The available backends by name.
BACKENDS: dict[str, Backend] = {
    "matrix": _from_module("matrix", matrix, uses_threads=False),
    "naive": _from_module("naive", naive, uses_threads=True),
}


def get_backend(name: str) -> Backend:
    """The backend called ``name``; ``ValueError`` listing the choices for an unknown name."""
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"backend must be one of {sorted(BACKENDS)}, got {name!r}") from None
