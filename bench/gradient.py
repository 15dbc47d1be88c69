"""Time and peak memory of one gradient (loss and exact gradient), for every contender."""

from __future__ import annotations

from .common import CASES, CONTENDERS, DTYPES, contender


class Gradient:
    """One ``value_and_grad`` call (or a peer's equivalent) over the size grid and both dtypes.

    Setup builds the network and arrays and warms the contender up (fastprop loads or compiles
    its kernels, jax traces and compiles), so neither compilation nor warm-up is ever timed.
    A contender that is not installed, or the naive backend at the largest sizes, is skipped.
    """

    params = (CONTENDERS, CASES, DTYPES)
    param_names = ("contender", "case", "dtype")
    timeout = 300.0
    # Several samples even for the slowest cases; up to 200 single calls for the fast ones.
    repeat = (5, 200, 2.0)

    def setup(self, name: str, case: str, dtype: str) -> None:
        """Build and warm up the contender (cached per process; asv calls this per sample)."""
        self.call = contender(name, case, dtype).call

    def time_value_and_grad(self, name: str, case: str, dtype: str) -> None:
        """Seconds per gradient."""
        self.call()

    def peakmem_value_and_grad(self, name: str, case: str, dtype: str) -> None:
        """Peak resident memory of the process (interpreter, libraries, network, buffers)."""
        self.call()
