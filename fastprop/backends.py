"""The backends by name: the one place that dispatches.

Every backend is an object with one protocol, whatever it runs on::

    backend.value_and_grad(spec, params, X, Y, *, out=None, check_finite=True) -> (loss, grad)
    backend.loss(spec, params, X, Y, *, check_finite=True) -> loss
    backend.forward(spec, params, X, *, check_finite=True) -> outputs

where ``spec`` is the network's :class:`~fastprop.spec.NetworkSpec` (:attr:`fastprop.MLP.spec`),
and ``backend.device`` says whether it runs on a GPU. Each checks its arguments and keeps its own
buffers. The CPU backends (:class:`~fastprop.cpu.backend.CpuBackend`) wrap a kernels module each;
the GPU backends (:class:`~fastprop.cuda.backend.CudaBackend`, ``"cuda"`` and ``"cuda-naive"``)
are listed everywhere, and asking for one where CUDA cannot run raises
:class:`fastprop.cuda.runtime.CudaUnavailableError`, which says what is missing.
"""

from __future__ import annotations

from .cpu.backend import CpuBackend
from .cuda import runtime as cuda_runtime
from .cuda.backend import CudaBackend

DEFAULT_BACKEND = "matrix"

Backend = CpuBackend | CudaBackend

#: The backends by name (the GPU ones are listed where CUDA is missing, too).
BACKENDS: dict[str, Backend] = {
    "matrix": CpuBackend("matrix", "fastprop.cpu.matrix"),
    "naive": CpuBackend("naive", "fastprop.cpu.naive"),
    "cuda": CudaBackend("cuda", "matrix"),
    "cuda-naive": CudaBackend("cuda-naive", "naive"),
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
    return chosen


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot be timed here (a GPU backend without a GPU, or on the CUDA
    simulator), or ``None``."""
    return cuda_runtime.timing_unavailable_reason() if BACKENDS[name].device else None
