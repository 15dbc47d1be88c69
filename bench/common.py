"""What the asv benchmarks share: the size grid, the contenders, and how they are measured.

Every case is the network of :mod:`fastprop.peers` and ``fastprop compare``: ``depth`` tanh
layers of width ``width`` (input and output ``width`` too), identity output and mean squared
loss, on a batch of ``batch`` samples, so fastprop's backends and the peers compute the same
gradient.

asv installs each commit it benchmarks and runs this suite, as it is in the working tree, against
it. So the suite copes with commits older than the modules it uses: ``fastprop.peers``,
``fastprop.timing`` and ``fastprop.compare`` came together; before them only fastprop's own
backends are timed, and the peers and the tracked metrics are skipped.

The parameter lists are the same in every process that asv starts, whatever commit is installed
there: asv discovers the benchmarks once and then refers to a parameter combination by its
index. So the contender lists start with the names known today, a backend or peer added later is
appended (the contender is the first parameter, which keeps the index of every older combination
the same), and a contender that the installed fastprop lacks is skipped.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

import fastprop as fp

try:
    from fastprop import peers, timing
    from fastprop.compare import Case
except ImportError:  # an older commit: see the module docstring
    peers = timing = Case = None

__all__ = [
    "BACKENDS",
    "CASES",
    "CONTENDERS",
    "DTYPES",
    "NETWORK",
    "Contender",
    "contender",
    "gflops",
    "measured",
    "median_seconds",
    "parse_case",
    "problem",
    "skip_reason",
]

#: The size grid, ``"BxHxM"``: batch x width x depth. One parameter rather than a cross product
#: of three, so that every point is a size someone uses, from a single sample through a small
#: network up to the GEMM-bound ones.
CASES = (
    "1x32x2",
    "1x32x4",
    "1x32x8",
    "16x32x4",
    "64x64x4",
    "64x128x4",
    "1x256x4",
    "256x256x4",
    "256x256x8",
    "64x512x4",
    "1024x1024x4",
    "512x2048x3",
)
DTYPES = ("float32", "float64")
#: The network's options besides its sizes and dtype: those of :mod:`fastprop.peers`.
NETWORK = {"activation": "tanh", "output": "identity", "loss": "squared"}

# Names known when this suite was written, first and in this order (see the module docstring).
_KNOWN_BACKENDS = ("matrix", "naive")
_KNOWN_PEERS = ("numpy", "torch", "jax", "gemm")
#: fastprop's backends: today's, then any that ``fastprop.BACKENDS`` adds (GPU backends).
BACKENDS = tuple(dict.fromkeys([*_KNOWN_BACKENDS, *fp.BACKENDS]))
#: Every contender: fastprop's backends, then the peers of :mod:`fastprop.peers`.
CONTENDERS = tuple(dict.fromkeys([
    *_KNOWN_BACKENDS, *_KNOWN_PEERS, *fp.BACKENDS, *(peers.PEERS if peers else ()),
]))

#: The naive backend is skipped from this many multiply-adds per layer and gradient (``batch *
#: width**2``) up, i.e. at 1024x1024 and 512x2048: one call takes 1.5 s at 1024x1024x4 and more
#: at 512x2048x3, which would add minutes to a quick run for a number nobody needs every run.
NAIVE_MAX_MACS = 2**28
#: Warm-up calls before anything is timed: the first loads (or compiles) the kernels, or traces
#: and compiles with jax, or allocates the GEMM floor's buffers; the last one, warm, is timed
#: to size the measurements.
WARMUP_CALLS = 2
#: Seconds that :func:`median_seconds` spends measuring, roughly (at least three rounds).
MEASURE_BUDGET_S = 0.5
#: OpenBLAS's threads spin for about 0.1 s after each call unless this variable says otherwise
#: (``fastprop compare`` sets it to 18: 2**18 cycles, about 0.1 ms). On a small machine the
#: spinning threads of one contender's BLAS slow down the next contender of an interleaved
#: measurement, up to halving the ratios. OpenBLAS reads it only when it is loaded, and asv's
#: runner has loaded numpy's before this suite is imported, so it must be in asv's environment:
#: ``asv.conf.json`` sets it for the environments asv builds, and a run on an existing
#: environment (``--python=same``) needs it set by hand, or its ratios are skipped.
SPIN_VARIABLE = "OPENBLAS_THREAD_TIMEOUT"


def parse_case(text: str) -> tuple[int, int, int]:
    """``(batch, width, depth)`` from a grid point ``"BxHxM"``, e.g. ``"64x128x4"``."""
    batch, width, depth = (int(part) for part in text.split("x"))
    return batch, width, depth


class Problem(NamedTuple):
    """A network and the arrays of one gradient call.

    Attributes
    ----------
    net : fastprop.MLP
        Layer widths ``[width] * (depth + 1)`` and :data:`NETWORK`'s options.
    params : ndarray
        Flat parameters (``net.init(seed=0)``), shared by every contender.
    X, Y : ndarray
        Inputs and targets, shape ``(batch, width)``, standard normal.
    """

    net: fp.MLP
    params: NDArray
    X: NDArray
    Y: NDArray


@functools.cache
def problem(case: str, dtype: str) -> Problem:
    """The network and arrays for ``case`` in ``dtype``, built once per process.

    Parameters
    ----------
    case : str
        A grid point, ``"BxHxM"``.
    dtype : {"float32", "float64"}
        Everything's dtype.

    Returns
    -------
    Problem
    """
    batch, width, depth = parse_case(case)
    net = fp.MLP([width] * (depth + 1), dtype=np.dtype(dtype), **NETWORK)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((batch, width)).astype(dtype)
    Y = rng.standard_normal((batch, width)).astype(dtype)
    return Problem(net, net.init(seed=0), X, Y)


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
        batch, width, _ = parse_case(case)
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
    (``out=``), the GPU backends with every array on the GPU; each peer is called as
    :mod:`fastprop.peers` defines it.

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
        When the contender is skipped (see :func:`skip_reason`): asv's way to skip a benchmark
        from its ``setup``.
    """
    reason = skip_reason(name, case)
    if reason is not None:
        raise NotImplementedError(reason)
    p = problem(case, dtype)
    if name in BACKENDS:
        arrays = (p.params, p.X, p.Y, np.empty_like(p.params))
        if getattr(fp.BACKENDS[name], "device", False):  # a GPU backend: GPU arrays
            from fastprop.cuda import runtime

            arrays = tuple(runtime.to_device(a) for a in arrays)
        call = functools.partial(p.net.value_and_grad, *arrays[:3], backend=name,
                                 out=arrays[3])
    else:
        peer = peers.PEERS[name][0](p.net.sizes, np.dtype(dtype))
        call = functools.partial(peer, p.params, p.X, p.Y)
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
        As :func:`contender` does; also where ``fastprop.timing`` is missing, and, for several
        contenders, where asv was started without :data:`SPIN_VARIABLE` in its environment.
    """
    if timing is None:
        raise NotImplementedError("this fastprop has no fastprop.timing")
    if len(names) > 1 and SPIN_VARIABLE not in os.environ:
        raise NotImplementedError(f"interleaved timings need {SPIN_VARIABLE}=18 in asv's "
                                  f"environment (see bench/README.md)")
    return tuple(contender(name, case, dtype) for name in names)


def median_seconds(*contenders: Contender) -> list[float]:
    """Median seconds per call of each contender, timed together in interleaved rounds.

    ``fastprop.timing.interleaved``, as in ``fastprop compare``: each round calls every
    contender (``k`` calls in a row for fast ones) in a new random order, after a few untimed
    calls of its own, for about :data:`MEASURE_BUDGET_S` seconds.

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

    The count is that of the matrix products (``fastprop.compare.Case.gemm_flops``), the same
    for every contender; element-wise work is not counted.
    """
    return Case(*parse_case(case), dtype).gemm_flops / seconds / 1e9
