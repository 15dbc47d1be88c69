"""Where a comparison ran: the CPU, the GPU, the libraries, their threads and the environment.

Timings mean little without these: which BLAS ran which kernels on how many threads, and which
environment variables changed that. The machine note on stdout and the Markdown page's stamp
both come from one :class:`Machine`.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numba
import numpy as np

from .. import threads
from ..cpu import blas
from ..cuda import runtime as cuda_runtime

__all__ = ["ENVIRONMENT", "Machine", "blas_text", "environment_text", "machine", "machine_note"]

#: Environment variables that change which kernels, cache sizes or threads the BLAS, numba or the
#: matrix backend use. The machine note and the Markdown stamps say which are set, and to what.
ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
               "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "MKL_ENABLE_INSTRUCTIONS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER",
               "FASTPROP_LARGE_PRODUCTS", "FASTPROP_NUMPY_DOT")


@dataclass(frozen=True)
class Machine:
    """Where and when a run ran: what the machine note prints and the Markdown stamps show.

    ``blas`` holds threadpoolctl's record of every loaded BLAS (``internal_api``, ``version``,
    ``architecture``: the kernels it runs, ``num_threads``, ``prefix``, ``filepath``);
    ``environment`` maps each of :data:`ENVIRONMENT` to its value, None where it is unset;
    ``gpu`` names the CUDA GPU, None where none was asked about or none can be timed.
    """

    date: str
    cpu: str
    cores: int
    python: str
    numpy: str
    numba: str
    threading_layer: str
    numba_threads: int
    blas: tuple[dict, ...]
    products: str
    large_products: str
    environment: dict[str, str | None]
    gpu: str | None = None


def _cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what :mod:`platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _gpu_name() -> str | None:
    """The current CUDA device's name, or None where CUDA cannot be timed (no GPU, or only the
    simulator)."""
    if cuda_runtime.timing_unavailable_reason() is not None:
        return None
    name = cuda_runtime.cuda().get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def machine(gpu: bool = False) -> Machine:
    """The machine, its libraries and the environment, now (UTC).

    Parameters
    ----------
    gpu : bool
        Also name the CUDA GPU (this loads numba-cuda, where it is installed).

    Returns
    -------
    Machine
    """
    from threadpoolctl import threadpool_info

    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not started"
    return Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), cpu=_cpu_name(),
        cores=os.cpu_count() or 0, python=platform.python_version(), numpy=np.__version__,
        numba=numba.__version__, threading_layer=layer,
        numba_threads=threads.get_num_threads()["numba"],
        blas=tuple(info for info in threadpool_info() if info.get("user_api") == "blas"),
        products=blas.PRODUCTS, large_products=blas.LARGE_PRODUCTS,
        environment={name: os.environ.get(name) for name in ENVIRONMENT},
        gpu=_gpu_name() if gpu else None)


def blas_text(info: dict) -> str:
    """One BLAS of :attr:`Machine.blas`: library, version, kernels and threads."""
    return (f"{info.get('internal_api')} {info.get('version')} "
            f"({info.get('architecture') or '?'} kernels, {info.get('num_threads')} threads)")


def environment_text(environment: dict[str, str | None], code: str = "") -> str:
    """``A=1, B=2; unset: C, D``, each name between ``code`` marks."""
    set_ = [f"{code}{name}={value}{code}" for name, value in environment.items()
            if value is not None]
    unset = [f"{code}{name}{code}" for name, value in environment.items() if value is None]
    parts = [", ".join(set_) or "none set"]
    if unset:
        parts.append("unset: " + ", ".join(unset))
    return "; ".join(parts)


def machine_note(where: Machine | None = None) -> list[str]:
    """Cores, CPU, GPU, numba and its threading layer, the BLAS libraries, the environment.

    Parameters
    ----------
    where : Machine, optional
        The machine to describe (default: :func:`machine`, now).

    Returns
    -------
    list of str
        One line each.
    """
    where = where or machine()
    return [f"cpu: {where.cpu}, {where.cores} cores",
            *([f"gpu: {where.gpu}"] if where.gpu is not None else []),
            f"environment: {environment_text(where.environment)}",
            f"python {where.python}, numpy {where.numpy}, numba {where.numba} (threading layer "
            f"{where.threading_layer}, {where.numba_threads} threads)",
            *(f"blas: {blas_text(info)}: {info.get('prefix')}" for info in where.blas),
            f"matrix backend's BLAS products: {where.products}",
            f"matrix backend's large products on threads: {where.large_products}"]
