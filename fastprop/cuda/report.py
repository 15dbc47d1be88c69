"""The last kernel of a call: the weight gradient summed over the batch splits, the loss, and
the report that the host reads.

Every block but the first sums its share of the parameters' splits in order (plus the L2 term
on the weights) into the gradient, unless a check failed; the first block also sums the
per-sample losses and the weights' squares, each by a fixed tree, and writes the report,
``[loss, flag_0, ..., flag_3]`` in float64 (a flag is 1 when its check failed in this call, see
:mod:`fastprop.cuda.checks`). Every sum is in a fixed order: the results are the same on every
run. Without splits (the naive form writes the gradient itself; a loss or a forward pass has
none) the kernel is one block, the report alone.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np

from .._layout import B_OFF, W_OFF
from . import checks, config, runtime, samples

#: ``numba.cuda``, bound by the kernel builders: the kernels name it as a module global, which
#: is how the CUDA simulator finds it to put its own in its place.
cuda: Any = None

#: Length of the report: the loss, then the check flags.
REPORT_SIZE = 1 + checks.N_FLAGS


@functools.cache
def kernels(dtype: str) -> SimpleNamespace:
    """``reduce_and_report`` for ``dtype``."""
    runtime.bind(globals())
    ty = numba.from_dtype(np.dtype(dtype))
    threads = config.THREADS_PER_BLOCK
    failed = checks.kernels().failed
    loss_offset = samples.device_functions().loss_offset

    @cuda.jit(device=True, inline="always")
    def is_weight(layout, p):
        weight = False
        for layer in range(layout.shape[0]):
            weight |= (p >= layout[layer, W_OFF]) & (p < layout[layer, B_OFF])
        return weight

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
    def reduce_and_report(partials, n_splits, layout, params, l2, work, n_rows, scale, epoch, flags,
               grad, report):
        """Block 0: ``report = [mean loss of n_rows samples + l2 penalty, flags...]``; the
        other blocks: ``grad[p] = sum_s partials[s, p]`` (+ ``l2 * params[p]`` on weights)."""
        if cuda.blockIdx.x == 0:
            buffer = cuda.shared.array(threads, ty)
            start = loss_offset(layout, n_rows)
            loss = block_sum(work, start, start + n_rows, False, buffer) * scale
            if l2 != 0:
                squares = ty(0)
                for layer in range(layout.shape[0]):
                    squares += block_sum(params, layout[layer, W_OFF], layout[layer, B_OFF],
                                         True, buffer)
                loss += squares * l2 * ty(0.5)
            if cuda.threadIdx.x == 0:
                report[0] = loss
                for k in range(checks.N_FLAGS):
                    report[1 + k] = 1 if flags[k] == epoch else 0
            return
        n_params = grad.shape[0]
        if n_splits == 0 or failed(flags, epoch):
            return
        first = (cuda.blockIdx.x - 1) * cuda.blockDim.x + cuda.threadIdx.x
        for p in range(first, n_params, (cuda.gridDim.x - 1) * cuda.blockDim.x):
            total = partials[p]
            for s in range(1, n_splits):
                total += partials[s * n_params + p]
            if l2 != 0 and is_weight(layout, p):
                total += l2 * params[p]
            grad[p] = total

    return SimpleNamespace(reduce_and_report=reduce_and_report)
