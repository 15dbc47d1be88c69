"""The fused path for narrow networks (every width at most :data:`WIDTH_LIMIT`): the forward
pass, the loss and the backward pass of the deltas in one launch.

Each block holds :data:`config.FUSED_ROWS` samples at a time in shared memory and loops over the
batch (a persistent grid of about :data:`config.FUSED_BLOCKS` blocks). For each layer it copies
the layer's weights into shared memory (when they fit in :data:`config.FUSED_WEIGHT_BYTES`;
otherwise they are read through the L1 cache), then every thread computes neurons of its samples
as the naive kernels do (:func:`fastprop.cuda.rows.device_functions`' ``dot``), the activations
going to the next layer through shared memory. The activations and deltas are also stored in
the workspace, where one launch of :mod:`fastprop.cuda.gemm`'s ``weights`` product turns them
into the weight gradients and :mod:`fastprop.cuda.finish` sums them: four launches per gradient
(with the value check) whatever the depth, where the layer-by-layer matrix form needs ``2M + 3``.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np

from .._layout import ACT, B_OFF, N_IN, N_OUT, W_OFF
from ..activations import IDENTITY
from . import checks, config, retarget, rows, runtime

#: ``numba.cuda``, bound by the kernel builders: the kernels name it as a module global, which
#: is how the CUDA simulator finds it to put its own in its place.
cuda: Any = None

#: The widest layer the fused kernel's shared buffers hold.
WIDTH_LIMIT = 128


def applies(sizes: tuple[int, ...]) -> bool:
    """Whether the fused path runs for layer widths ``sizes``."""
    return max(sizes) <= min(config.FUSED_MAX_WIDTH, WIDTH_LIMIT)


def grid(batch: int) -> int:
    """Blocks of the fused kernel for ``batch`` samples."""
    return max(1, min(config.FUSED_BLOCKS, -(-batch // config.FUSED_ROWS)))


@functools.cache
def kernels(dtype: str) -> SimpleNamespace:
    """``forward_backward`` for ``dtype``, with the current settings."""
    runtime.bind(globals())
    ty = numba.from_dtype(np.dtype(dtype))
    S = config.FUSED_ROWS
    W = WIDTH_LIMIT
    NT = config.FUSED_THREADS
    ROWS_SIZE = S * W  # (a shared array's size must be one constant)
    CAPACITY = config.FUSED_WEIGHT_BYTES // np.dtype(dtype).itemsize
    dot, act_offset, delta_offset, loss_offset = rows.device_functions()
    failed = checks.kernels().failed
    activate = retarget.activate()
    derivative = retarget.derivative()
    loss_and_delta = retarget.loss_and_delta()

    @cuda.jit(device=True, inline="always")
    def stage(params, layout, layer, shared, transpose):
        """``(array, start, row_stride, col_stride)`` locating layer ``layer``'s ``W[r, c]`` at
        ``array[start + r * row_stride + c * col_stride]``: copied into ``shared`` when it fits
        (transposed if asked; the caller synchronises before reading), else in place."""
        n_out = layout[layer, N_OUT]
        n_in = layout[layer, N_IN]
        w_off = layout[layer, W_OFF]
        if n_out * n_in > CAPACITY:
            return params, w_off, n_in, 1
        for e in range(cuda.threadIdx.x, n_out * n_in, NT):
            if transpose:
                r = e // n_in
                shared[(e - r * n_in) * n_out + r] = params[w_off + e]
            else:
                shared[e] = params[w_off + e]
        if transpose:
            return shared, 0, 1, n_out
        return shared, 0, n_in, 1

    @cuda.jit
    def forward_backward(layout, loss_id, params, X, Y, labels, work, batch, scale,
                         with_deltas, epoch, flags):
        """Activations, per-sample losses and (``with_deltas``) deltas into the workspace."""
        cur = cuda.shared.array(ROWS_SIZE, ty)
        nxt = cuda.shared.array(ROWS_SIZE, ty)
        weights = cuda.shared.array(CAPACITY, ty)
        t = cuda.threadIdx.x
        last = layout.shape[0] - 1
        bad = failed(flags, epoch)
        for r0 in range(cuda.blockIdx.x * S, batch, cuda.gridDim.x * S):
            n_rows = min(S, batch - r0)
            n0 = layout[0, N_IN]
            for e in range(t, n_rows * n0, NT):
                s = e // n0
                cur[s * W + e - s * n0] = X[r0 * n0 + e]
            for layer in range(last + 1):
                n_in = layout[layer, N_IN]
                n_out = layout[layer, N_OUT]
                # (transposed: the threads of a warp, at neighbouring j, read neighbouring words)
                w, w_start, row, col = stage(params, layout, layer, weights, True)
                cuda.syncthreads()
                act = layout[layer, ACT] if layer < last else IDENTITY
                out = act_offset(layout, layer, batch) + r0 * n_out
                for e in range(t, n_rows * n_out, NT):
                    s = e // n_out
                    j = e - s * n_out
                    a = activate(act, params[layout[layer, B_OFF] + j]
                                 + dot(w, w_start + j * row, col, cur, s * W, n_in))
                    nxt[s * W + j] = a
                    work[out + e] = a
                cuda.syncthreads()
                cur, nxt = nxt, cur
            n_out = layout[last, N_OUT]
            out = delta_offset(layout, last, batch) + r0 * n_out
            for s in range(t, n_rows, NT):
                if not bad:
                    work[loss_offset(layout, batch) + r0 + s] = loss_and_delta(
                        loss_id, layout[last, ACT], cur[s * W:s * W + n_out], Y, labels,
                        r0 + s, scale, nxt[s * W:s * W + n_out])
                    for k in range(n_out):
                        work[out + s * n_out + k] = nxt[s * W + k]
            cuda.syncthreads()
            if with_deltas:
                cur, nxt = nxt, cur
                for layer in range(last, 0, -1):
                    n_in = layout[layer, N_IN]
                    n_out = layout[layer, N_OUT]
                    w, w_start, row, col = stage(params, layout, layer, weights, False)
                    cuda.syncthreads()
                    act = layout[layer - 1, ACT]
                    a_prev = act_offset(layout, layer - 1, batch) + r0 * n_in
                    d_prev = delta_offset(layout, layer - 1, batch) + r0 * n_in
                    for e in range(t, n_rows * n_in, NT):
                        s = e // n_in
                        i = e - s * n_in
                        d = dot(w, w_start + i * col, row, cur, s * W, n_out) * derivative(
                            act, work[a_prev + e])
                        nxt[s * W + i] = d
                        work[d_prev + e] = d
                    cuda.syncthreads()
                    cur, nxt = nxt, cur

    return SimpleNamespace(forward_backward=forward_backward)
