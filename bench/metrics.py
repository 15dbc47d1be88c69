"""Tracked metrics of fastprop's backends, each measured inside its benchmark.

A ratio is the median time per call of two contenders timed together, in interleaved rounds in
the same process (:func:`bench.common.median_seconds`), so that both see the same machine.
Building and warming up happen in ``setup``, never in a measurement.
"""

from __future__ import annotations

from .common import BACKENDS, CASES, DTYPES, gflops, measured, median_seconds


class _Speedup:
    """A backend's speedup over a reference contender: the reference's time over the backend's.

    Subclasses set ``reference`` and define one ``track_`` method that returns :meth:`speedup`.
    """

    reference: str
    params = (BACKENDS, CASES, DTYPES)
    param_names = ("backend", "case", "dtype")
    timeout = 300.0

    def setup(self, backend: str, case: str, dtype: str) -> None:
        """Build and warm up the backend and the reference."""
        self.pair = measured(backend, self.reference, case=case, dtype=dtype)

    def speedup(self) -> float:
        """Measure both and return the reference's time over the backend's (above 1: faster)."""
        backend, reference = median_seconds(*self.pair)
        return reference / backend


class SpeedupOverNumpy(_Speedup):
    """Speedup over the hand-written NumPy backprop (``fastprop.benchmarking.peers.make_numpy``)."""

    reference = "numpy"

    def track_speedup_over_numpy(self, backend: str, case: str, dtype: str) -> float:
        """The NumPy backprop's time over the backend's (higher is better)."""
        return self.speedup()

    track_speedup_over_numpy.unit = "x"


class SpeedupOverNaive(_Speedup):
    """Speedup over the naive backend (the loop form of backprop); skipped where naive is."""

    reference = "naive"
    params = (tuple(b for b in BACKENDS if b != "naive"), CASES, DTYPES)

    def track_speedup_over_naive(self, backend: str, case: str, dtype: str) -> float:
        """The naive backend's time over this backend's (higher is better)."""
        return self.speedup()

    track_speedup_over_naive.unit = "x"


class FractionOfGemmFloor(_Speedup):
    """How close a backend comes to the GEMM floor (``fastprop.benchmarking.peers.make_gemm``).

    The floor is the same matrix products done back to back by NumPy into preallocated
    buffers, and nothing else.
    """

    reference = "gemm"

    def track_fraction_of_gemm_floor(self, backend: str, case: str, dtype: str) -> float:
        """The floor's time over the backend's: 1 means the backend costs only its GEMMs."""
        return self.speedup()

    track_fraction_of_gemm_floor.unit = "fraction"


class Throughput:
    """Achieved GFLOP/s of a backend."""

    params = (BACKENDS, CASES, DTYPES)
    param_names = ("backend", "case", "dtype")
    timeout = 300.0

    def setup(self, backend: str, case: str, dtype: str) -> None:
        """Build and warm up the backend."""
        (self.backend,) = measured(backend, case=case, dtype=dtype)

    def track_gflops(self, backend: str, case: str, dtype: str) -> float:
        """The gradient's matrix-product flops per second (:func:`bench.common.gflops`)."""
        (seconds,) = median_seconds(self.backend)
        return gflops(case, dtype, seconds)

    track_gflops.unit = "GFLOP/s"
