"""asv benchmarks of the GPU backends at the sizes a GPU is for, beside PyTorch on the same GPU.

The GPU backends also run over the main grid (``gradient.py``, ``metrics.py``: they are in
``fastprop.BACKENDS``); this module adds the cases and contenders of ``fastprop compare --preset
gpu`` (float32; TF32 off in the PyTorch peers, and fastprop's kernels never use it), and
PyTorch's speed there as a ratio. Every benchmark here is skipped where there is no CUDA GPU
(also on numba's CUDA simulator).
"""

from __future__ import annotations

from .common import case_names, cases, measured, median_seconds

_GPU = cases.PRESETS["gpu"]
#: ``"BxHxM"`` cases: the preset's, its target sizes first.
GPU_CASES = case_names("gpu")
#: fastprop's GPU backends, then PyTorch's CUDA peers.
GPU_CONTENDERS = (*_GPU.backends, *_GPU.peers)


class GpuGradient:
    """Seconds per gradient of each GPU contender (GPU arrays in and out; the call waits for
    the GPU)."""

    params = (GPU_CONTENDERS, GPU_CASES, _GPU.dtypes)
    param_names = ("contender", "case", "dtype")
    timeout = 300.0

    def setup(self, name: str, case: str, dtype: str) -> None:
        """Build and warm up (compile) the contender; skip it without a GPU."""
        (self.contender,) = measured(name, case=case, dtype=dtype)

    def track_seconds(self, name: str, case: str, dtype: str) -> float:
        """Median seconds per gradient (interleaved rounds, as ``fastprop compare``)."""
        (seconds,) = median_seconds(self.contender)
        return seconds

    track_seconds.unit = "s"


class GpuSpeedupOverTorch:
    """A GPU backend's speedup over PyTorch eager and PyTorch replaying a CUDA graph."""

    params = (_GPU.backends, _GPU.peers, GPU_CASES, _GPU.dtypes)
    param_names = ("backend", "peer", "case", "dtype")
    timeout = 300.0

    def setup(self, backend: str, peer: str, case: str, dtype: str) -> None:
        """Build and warm up both; skip without a GPU."""
        self.pair = measured(backend, peer, case=case, dtype=dtype)

    def track_speedup(self, backend: str, peer: str, case: str, dtype: str) -> float:
        """PyTorch's time over the backend's (above 1: fastprop is faster)."""
        ours, theirs = median_seconds(*self.pair)
        return theirs / ours

    track_speedup.unit = "x"
