"""asv benchmarks of the GPU backends at the sizes a GPU is for, beside PyTorch on the same GPU.

The GPU backends also run over the main grid (``gradient.py``, ``metrics.py``: they are in
``fastprop.BACKENDS``); this module adds issue 4's target sizes, float32 only (TF32 off in the
PyTorch peers; fastprop's kernels never use it), and PyTorch's speed there as a ratio. Every
benchmark here is skipped where there is no CUDA GPU (also on numba's CUDA simulator).
"""

from __future__ import annotations

from .common import measured, median_seconds

#: ``"BxHxM"`` cases: issue 4's two targets, then ANCHORS.md's other GPU sizes.
GPU_CASES = ("4096x1024x4", "65536x64x4", "1x32x4", "4096x64x4", "4096x256x4", "65536x128x4",
             "262144x64x4")
#: fastprop's GPU backends, then PyTorch's CUDA peers.
GPU_CONTENDERS = ("cuda", "cuda-naive", "torch-cuda", "torch-cuda-graph")
#: The PyTorch peers that the speedups are measured against.
TORCH_PEERS = ("torch-cuda", "torch-cuda-graph")


class GpuGradient:
    """Seconds per gradient of each GPU contender (GPU arrays in and out; the call waits for
    the GPU)."""

    params = (GPU_CONTENDERS, GPU_CASES, ("float32",))
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

    params = (("cuda", "cuda-naive"), TORCH_PEERS, GPU_CASES, ("float32",))
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
