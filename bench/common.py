"""What the asv benchmarks share: the cases, the contenders, and how they are measured.

The cases are those of ``fastprop compare``'s presets: ``asv`` for the main grid and ``gpu`` for
``gpu_targets.py``. A case's network and arrays are ``fastprop.benchmarking.problems.problem``'s,
the problem ``fastprop compare`` times too, so both time the same arrays for the same case.

asv installs each commit it benchmarks and runs this suite, as it is in the working tree, against
it. So:

- the cases are read from this working tree's ``fastprop/benchmarking/cases.py`` (it needs the
  standard library alone), whatever commit is installed: asv discovers the benchmarks once and
  then refers to a parameter combination by its index, so the parameter lists must be the same
  in every process it starts;
- the problem, the peers and the timing come from the installed fastprop:
  ``fastprop.benchmarking`` where it has it, else the same code under its older names
  (``fastprop.peers``, ``fastprop.timing``, and ``fastprop.compare``, whose problem had the same
  recipe and seed). Commits older than those skip the benchmarks that need them;
- the contender lists start with the names known when this suite was written, a backend or peer
  added later is appended (the contender is the first parameter, which keeps the index of every
  older combination the same), and a contender that the installed fastprop lacks is skipped.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

import fastprop as fp


def _working_tree_cases() -> ModuleType:
    """``fastprop/benchmarking/cases.py`` of the working tree this suite is in, loaded from its
    file, not from the installed fastprop (see the module docstring)."""
    path = Path(__file__).resolve().parent.parent / "fastprop" / "benchmarking" / "cases.py"
    spec = importlib.util.spec_from_file_location("bench._cases", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their class's module up
    spec.loader.exec_module(module)
    return module


cases = _working_tree_cases()
try:
    from fastprop.benchmarking import peers, timing
    from fastprop.benchmarking.problems import problem as _problem
except ImportError:  # an older commit: see the module docstring
    try:
        from fastprop import compare, peers, timing

        _problem = functools.partial(compare._problem, seed=0)
    except ImportError:
        peers = timing = _problem = None

__all__ = [
    "BACKENDS",
    "CASES",
    "CONTENDERS",
    "DTYPES",
    "NETWORK",
    "Contender",
    "Shape",
    "case_names",
    "cases",
    "contender",
    "gflops",
    "measured",
    "median_seconds",
    "problem",
    "skip_reason",
]

Shape = cases.Shape
#: The network's options besides its sizes and dtype.
NETWORK = cases.NETWORK


def case_names(preset: str) -> tuple[str, ...]:
    """The shapes of a preset as asv's parameter values, ``"BxHxM"``."""
    return tuple(str(shape) for shape in cases.PRESETS[preset].shapes)


#: The main grid, ``"BxHxM"``: batch x width x depth. One parameter rather than a cross product
#: of three, so that every point is a size someone uses.
CASES = case_names("asv")
DTYPES = cases.PRESETS["asv"].dtypes

# Names known when this suite was written, first and in this order (see the module docstring).
_KNOWN_BACKENDS = ("matrix", "naive")
_KNOWN_PEERS = ("numpy", "torch", "jax", "gemm")
#: fastprop's backends: today's, then any that ``fastprop.BACKENDS`` adds (GPU backends).
BACKENDS = tuple(dict.fromkeys([*_KNOWN_BACKENDS, *fp.BACKENDS]))
#: Every contender: fastprop's backends, then the peers.
CONTENDERS = tuple(dict.fromkeys([
    *_KNOWN_BACKENDS, *_KNOWN_PEERS, *fp.BACKENDS, *(peers.PEERS if peers else ()),
]))

#: The naive backend is skipped from this many multiply-adds per layer and gradient (``batch *
#: width**2``) up, i.e. at 1024x1024 and 512x2048, where one call takes seconds: minutes added
#: to a quick run for a number nobody needs every run.
NAIVE_MAX_MACS = 2**28
#: Warm-up calls before anything is timed: the first loads (or compiles) the kernels, or traces
#: and compiles with jax, or allocates the GEMM floor's buffers; the last one, warm, is timed
#: to size the measurements.
WARMUP_CALLS = 2
#: Seconds that :func:`median_seconds` spends measuring, roughly (at least three rounds).
MEASURE_BUDGET_S = 0.5
#: OpenBLAS's threads spin for a while after each call unless this variable says otherwise
#: (``fastprop compare`` sets it to 18: 2**18 cycles). On a small machine the spinning threads of
#: one contender's BLAS slow down the next contender of an interleaved measurement. OpenBLAS reads
#: it only when it is loaded, and asv's runner has loaded numpy's before this suite is imported,
#: so it must be in asv's environment: ``asv.conf.json`` sets it for the environments asv builds,
#: and a run on an existing environment (``--python=same``) needs it set by hand, or its ratios
#: are skipped.
SPIN_VARIABLE = "OPENBLAS_THREAD_TIMEOUT"


@functools.cache
def problem(case: str, dtype: str) -> Any:
    """The network and arrays ``(net, params, X, Y)`` of ``case`` in ``dtype``: those of
    ``fastprop compare``, built once per process and shared by every contender.

    Raises
    ------
    NotImplementedError
        Where the installed fastprop has no problem to give (asv's way to skip a benchmark
        from its ``setup``).
    """
    if _problem is None:
        raise NotImplementedError("this fastprop has no fastprop.benchmarking")
    return _problem(cases.Case.of(case, dtype))


def skip_reason(name: str, case: str) -> str | None:
    """Why contender ``name`` is not run at ``case`` in this environment, or ``None``.

    Parameters
    ----------
    name : str
        A name from :data:`CONTENDERS`.
    case : str
        A grid point, ``"BxHxM"``.

    Returns
    -------
    str or None
        The reason, for asv's skip message.
    """
    if name in BACKENDS:
        if name not in fp.BACKENDS:
            return f"this fastprop has no backend {name!r}"
        batch, width, _ = Shape.parse(case)
        if name == "naive" and batch * width**2 >= NAIVE_MAX_MACS:
            return f"the naive backend takes seconds per call at {case}"
        gpu_reason = getattr(fp.backends, "unavailable_reason", None)  # (GPU backends)
        return gpu_reason(name) if gpu_reason is not None else None
    if peers is None or name not in peers.PEERS:
        return f"this fastprop has no peer {name!r}"
    if hasattr(peers, "unavailable_reason"):  # (GPU peers)
        return peers.unavailable_reason(name)
    module = peers.PEERS[name][1]
    if module is not None and importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    return None


class Contender(NamedTuple):
    """A warmed-up gradient call and how long its last warm-up call took.

    Attributes
    ----------
    call : callable
        ``call()`` computes one gradient (or, for ``gemm``, the floor's products).
    seconds : float
        Seconds of the last warm-up call: sizes the measurements of :func:`median_seconds`.
    """

    call: Callable[[], Any]
    seconds: float


@functools.cache
def contender(name: str, case: str, dtype: str) -> Contender:
    """Contender ``name`` at ``case`` in ``dtype``, warmed up: what the benchmarks time.

    Built once per process and argument triple, so that asv re-running a benchmark's ``setup``
    before each sample costs nothing. fastprop's backends write into a preallocated gradient
    (``out=``), the GPU backends with every array on the GPU; each peer is called as its module
    defines it.

    Parameters
    ----------
    name : str
        A fastprop backend or a peer, from :data:`CONTENDERS`.
    case : str
        A grid point, ``"BxHxM"``.
    dtype : {"float32", "float64"}
        Everything's dtype.

    Returns
    -------
    Contender
        Already called :data:`WARMUP_CALLS` times.

    Raises
    ------
    NotImplementedError
        When the contender is skipped (see :func:`skip_reason` and :func:`problem`): asv's way
        to skip a benchmark from its ``setup``.
    """
    reason = skip_reason(name, case)
    if reason is not None:
        raise NotImplementedError(reason)
    net, params, X, Y = problem(case, dtype)
    if name in BACKENDS:
        arrays = (params, X, Y, np.empty_like(params))
        if getattr(fp.BACKENDS[name], "device", False):  # a GPU backend: GPU arrays
            from fastprop.cuda import runtime

            arrays = tuple(runtime.to_device(a) for a in arrays)
        call = functools.partial(net.value_and_grad, *arrays[:3], backend=name, out=arrays[3])
    else:
        peer = peers.PEERS[name][0](net.sizes, np.dtype(dtype))
        call = functools.partial(peer, params, X, Y)
    for _ in range(WARMUP_CALLS):
        start = time.perf_counter()
        call()
        seconds = time.perf_counter() - start
    return Contender(call, seconds)


def measured(*names: str, case: str, dtype: str) -> tuple[Contender, ...]:
    """:func:`contender` for each name, for a metric measured by :func:`median_seconds`.

    Parameters
    ----------
    *names : str
        One contender, or several to be timed together.
    case : str
        A grid point, ``"BxHxM"``.
    dtype : {"float32", "float64"}
        Everything's dtype.

    Returns
    -------
    tuple of Contender
        In the order given.

    Raises
    ------
    NotImplementedError
        As :func:`contender` does; also where the timing module is missing, and, for several
        contenders, where asv was started without :data:`SPIN_VARIABLE` in its environment.
    """
    if timing is None:
        raise NotImplementedError("this fastprop has no fastprop.benchmarking.timing")
    if len(names) > 1 and SPIN_VARIABLE not in os.environ:
        raise NotImplementedError(f"interleaved timings need {SPIN_VARIABLE}=18 in asv's "
                                  f"environment (see bench/README.md)")
    return tuple(contender(name, case, dtype) for name in names)


def median_seconds(*contenders: Contender) -> list[float]:
    """Median seconds per call of each contender, timed together in interleaved rounds.

    ``timing.interleaved``, as in ``fastprop compare``: each round calls every contender (``k``
    calls in a row for fast ones) in a new random order, after a few untimed calls of its own,
    for about :data:`MEASURE_BUDGET_S` seconds.

    Parameters
    ----------
    *contenders : Contender
        From :func:`measured`.

    Returns
    -------
    list of float
        In the order given.
    """
    names = [str(i) for i in range(len(contenders))]
    results = timing.interleaved(dict(zip(names, (c.call for c in contenders), strict=True)),
                                 dict(zip(names, (c.seconds for c in contenders), strict=True)),
                                 MEASURE_BUDGET_S)
    return [results[name].median for name in names]


def gflops(case: str, dtype: str, seconds: float) -> float:
    """GFLOP/s of one gradient at ``case`` that took ``seconds``.

    The count is that of the matrix products (``Case.gemm_flops``), the same for every
    contender; element-wise work is not counted.
    """
    return cases.Case.of(case, dtype).gemm_flops / seconds / 1e9
