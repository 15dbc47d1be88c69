"""The last kernels of a call: the weight gradient summed over the batch splits, and the loss.

Both sum in a fixed order (splits in order; the per-sample losses by a fixed tree in one block),
so the results are the same on every run. The loss kernel also writes the report that the host
reads, ``[loss, flag_0, ..., flag_3]`` in float64, and clears the flags (see
:mod:`fastprop.cuda.checks`).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np

from .._layout import B_OFF, W_OFF
from . import checks, config, rows, runtime

#: ``numba.cuda``, bound by the kernel builders: the kernels name it as a module global, which
#: is how the CUDA simulator finds it to put its own in its place.
cuda: Any = None

#: Length of the report: the loss, then the check flags.
REPORT_SIZE = 1 + checks.N_FLAGS


@functools.cache
def kernels(dtype: str) -> SimpleNamespace:
    """``sum_splits`` and ``loss_report`` for ``dtype``."""
    runtime.bind(globals())
    ty = numba.from_dtype(np.dtype(dtype))
    threads = config.THREADS_PER_BLOCK
    failed = checks.kernels().failed
    loss_offset = rows.device_functions().loss_offset

    @cuda.jit(device=True, inline="always")
    def is_weight(layout, p):
        weight = False
        for layer in range(layout.shape[0]):
            weight |= (p >= layout[layer, W_OFF]) & (p < layout[layer, B_OFF])
        return weight

    @cuda.jit
    def sum_splits(partials, n_splits, layout, params, l2, flags, grad):
        """``grad[p] = sum_s partials[s, p]`` (+ ``l2 * params[p]`` on weights)."""
        n_params = grad.shape[0]
        if failed(flags):
            return
        for p in range(cuda.grid(1), n_params, cuda.gridsize(1)):
            total = partials[p]
            for s in range(1, n_splits):
                total += partials[s * n_params + p]
            if l2 != 0 and is_weight(layout, p):
                total += l2 * params[p]
            grad[p] = total

    @cuda.jit(device=True, inline="always")
    def block_sum(values, start, stop, squared, buffer):
        """Sum of ``values[start:stop]`` (squared or not) over the block, in a fixed order;
        every thread of the block calls it and gets the sum."""
        t = cuda.threadIdx.x
        acc = ty(0)
        for k in range(start + t, stop, threads):
            acc += values[k] * values[k] if squared else values[k]
        buffer[t] = acc
        cuda.syncthreads()
        half = threads // 2
        while half > 0:
            if t < half:
                buffer[t] += buffer[t + half]
            cuda.syncthreads()
            half //= 2
        total = buffer[0]
        cuda.syncthreads()
        return total

    @cuda.jit
    def loss_report(layout, work, n_rows, scale, params, l2, flags, report):
        """One block: ``report = [mean loss + l2 penalty, flags...]``; clears the flags."""
        buffer = cuda.shared.array(threads, ty)
        start = loss_offset(layout, n_rows)
        loss = block_sum(work, start, start + n_rows, False, buffer) * scale
        if l2 != 0:
            squares = ty(0)
            for layer in range(layout.shape[0]):
                squares += block_sum(params, layout[layer, W_OFF], layout[layer, B_OFF], True,
                                     buffer)
            loss += squares * l2 * ty(0.5)
        if cuda.threadIdx.x == 0:
            report[0] = loss
            for k in range(checks.N_FLAGS):
                report[1 + k] = flags[k]
                flags[k] = 0

    return SimpleNamespace(sum_splits=sum_splits, loss_report=loss_report)

