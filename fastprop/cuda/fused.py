"""The fused path for narrow networks (every width at most :data:`WIDTH_LIMIT`): the forward
pass, the loss and the backward pass of the deltas in one launch.

Each block holds a group of samples in shared memory, as many as one of two buffers of
:data:`config.FUSED_ROW_BYTES` holds rows of the widest layer, and loops over the batch (a
persistent grid of about :data:`config.FUSED_BLOCKS` blocks). For each layer it copies the
layer's weights into shared memory (when they fit in :data:`config.FUSED_WEIGHT_BYTES`; otherwise
they are read through the L1 cache), transposed for the forward pass; then each thread computes
an ``RS x RN`` block of (sample, neuron) outputs (:data:`config.FUSED_BLOCKING`), reading each
weight once for its ``RS`` samples and each sample value once for its ``RN`` neurons. Neighbouring
threads take neighbouring neurons of the same samples, so a warp reads neighbouring weight words
and one broadcast sample word: no bank conflicts. Each output is the same dot product, in the same
order, as in the naive kernels. The activations go to the next layer through shared memory and
are also stored in the workspace with the deltas, where one launch of :mod:`fastprop.cuda.gemm`'s
``weights`` product turns them into the weight gradients and :mod:`fastprop.cuda.report` sums
them: four launches per gradient (with the value check) whatever the depth, where the
layer-by-layer matrix form needs ``2M + 3``.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np

from .._kernel_ids import IDENTITY
from .._layout import ACT, B_OFF, N_IN, N_OUT, W_OFF
from . import checks, config, retarget, runtime, samples

#: ``numba.cuda``, bound by the kernel builders: the kernels name it as a module global, which
#: is how the CUDA simulator finds it to put its own in its place.
cuda: Any = None

#: The widest layer the fused kernel's shared buffers hold.
WIDTH_LIMIT = 128


def applies(sizes: tuple[int, ...], dtype: str) -> bool:
    """Whether the fused path runs for layer widths ``sizes`` in ``dtype``."""
    return (max(sizes) <= min(config.FUSED_MAX_WIDTH, WIDTH_LIMIT)
            and max(sizes) * np.dtype(dtype).itemsize <= config.FUSED_ROW_BYTES[dtype])


def rows_per_block(sizes: tuple[int, ...], dtype: str) -> int:
    """Samples a block of the fused kernel holds at a time, for layer widths ``sizes``."""
    return max(1, config.FUSED_ROW_BYTES[dtype] // (np.dtype(dtype).itemsize * max(sizes)))


def grid(batch: int, rows: int) -> int:
    """Blocks of the fused kernel for ``batch`` samples, ``rows`` per block at a time."""
    return max(1, min(config.FUSED_BLOCKS, -(-batch // rows)))


@functools.cache
def kernels(dtype: str) -> SimpleNamespace:
    """``forward_backward`` for ``dtype``, with the current settings."""
    runtime.bind(globals())
    ty = numba.from_dtype(np.dtype(dtype))
    itemsize = np.dtype(dtype).itemsize
    NT = config.FUSED_THREADS
    ROWS_SIZE = config.FUSED_ROW_BYTES[dtype] // itemsize  # (shared sizes must be constants)
    CAPACITY = config.FUSED_WEIGHT_BYTES[dtype] // itemsize
    RS, RN = config.FUSED_BLOCKING[dtype]
    common = samples.device_functions()
    act_offset, delta_offset = common.act_offset, common.delta_offset
    loss_offset = common.loss_offset
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

    @cuda.jit(device=True, inline="always")
    def products(w, w_start, out_stride, k_stride, cur, stride, n_rows, n_outs, n_k, unit,
                 acc):
        """``acc[a, b] = sum_k w[w_start + o_b * out_stride + k * k_stride] cur[s_a, k]`` for
        the ``RS x RN`` block ``unit``: samples ``s_a = sb + a * ceil(n_rows / RS)`` and
        outputs ``o_b = ob + b * ceil(n_outs / RN)`` (``ob`` varies fastest between threads,
        so that a warp reads neighbouring weights and one broadcast sample word); indices past
        the ends are clamped (the caller does not store those). Returns ``(sb, ob)``."""
        n_ob = (n_outs + RN - 1) // RN
        sb = unit // n_ob
        ob = unit - sb * n_ob
        n_sb = (n_rows + RS - 1) // RS
        w_frag = cuda.local.array(RN, ty)
        for a in range(RS):
            for b in range(RN):
                acc[a, b] = 0
        for k in range(n_k):
            for b in range(RN):
                o = min(ob + b * n_ob, n_outs - 1)
                w_frag[b] = w[w_start + o * out_stride + k * k_stride]
            for a in range(RS):
                x = cur[min(sb + a * n_sb, n_rows - 1) * stride + k]
                for b in range(RN):
                    acc[a, b] += x * w_frag[b]
        return sb, ob

    @cuda.jit
    def forward_backward(layout, loss_id, params, X, Y, labels, sample_weights, work, batch,
                         scale, stride, block_rows, with_deltas, epoch, flags):
        """Activations, weighted per-sample losses and (``with_deltas``) deltas into the
        workspace; ``block_rows`` samples at a time, each a row of ``stride`` (the widest
        layer) in the shared sample buffers."""
        cur = cuda.shared.array(ROWS_SIZE, ty)
        nxt = cuda.shared.array(ROWS_SIZE, ty)
        weights = cuda.shared.array(CAPACITY, ty)
        acc = cuda.local.array((RS, RN), ty)
        t = cuda.threadIdx.x
        last = layout.shape[0] - 1
        bad = failed(flags, epoch)
        for r0 in range(cuda.blockIdx.x * block_rows, batch, cuda.gridDim.x * block_rows):
            n_rows = min(block_rows, batch - r0)
            n_sb = (n_rows + RS - 1) // RS
            n0 = layout[0, N_IN]
            for e in range(t, n_rows * n0, NT):
                s = e // n0
                cur[s * stride + e - s * n0] = X[r0 * n0 + e]
            for layer in range(last + 1):
                n_in = layout[layer, N_IN]
                n_out = layout[layer, N_OUT]
                # (transposed: neighbouring threads, at neighbouring neurons, read neighbouring
                # words)
                w, w_start, row, col = stage(params, layout, layer, weights, True)
                cuda.syncthreads()
                act = layout[layer, ACT] if layer < last else IDENTITY
                b_off = layout[layer, B_OFF]
                out = act_offset(layout, layer, batch) + r0 * n_out
                n_ob = (n_out + RN - 1) // RN
                for unit in range(t, n_sb * n_ob, NT):
                    sb, ob = products(w, w_start, row, col, cur, stride, n_rows, n_out, n_in,
                                      unit, acc)
                    for a in range(RS):
                        s = sb + a * n_sb
                        for b in range(RN):
                            j = ob + b * n_ob
                            if s < n_rows and j < n_out:
                                value = activate(act, acc[a, b] + params[b_off + j])
                                nxt[s * stride + j] = value
                                work[out + s * n_out + j] = value
                cuda.syncthreads()
                cur, nxt = nxt, cur
            n_out = layout[last, N_OUT]
            out = delta_offset(layout, last, batch) + r0 * n_out
            for s in range(t, n_rows, NT):
                if not bad:
                    start = s * stride
                    w = sample_weights[r0 + s]
                    work[loss_offset(layout, batch) + r0 + s] = w * loss_and_delta(
                        loss_id, layout[last, ACT], cur[start:start + n_out], Y, labels,
                        r0 + s, w * scale, nxt[start:start + n_out])
                    for k in range(n_out):
                        work[out + s * n_out + k] = nxt[start + k]
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
                    n_ib = (n_in + RN - 1) // RN
                    for unit in range(t, n_sb * n_ib, NT):
                        sb, ib = products(w, w_start, col, row, cur, stride, n_rows, n_in,
                                          n_out, unit, acc)
                        for a in range(RS):
                            s = sb + a * n_sb
                            for b in range(RN):
                                i = ib + b * n_ib
                                if s < n_rows and i < n_in:
                                    e = s * n_in + i
                                    d = acc[a, b] * derivative(act, work[a_prev + e])
                                    nxt[s * stride + i] = d
                                    work[d_prev + e] = d
                    cuda.syncthreads()
                    cur, nxt = nxt, cur

    return SimpleNamespace(forward_backward=forward_backward)
