"""Per-sample work on the GPU: the device functions that every kernel family shares (a dot
product, the workspace's offsets), and the kernels that apply the loss or the output activation
row by row (one thread per sample).

The workspace (see :mod:`fastprop.cuda.workspace`) is one flat device array: every layer's
activations for the batch (layer ``l``'s, ``batch x n_l`` row-major, at ``batch * A_OFF[l]``),
then every layer's deltas in the same arrangement, then one loss per sample.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, NamedTuple

from .._layout import A_OFF, ACT, N_OUT
from . import checks, retarget, runtime

#: ``numba.cuda``, bound by the kernel builders: the kernels name it as a module global, which
#: is how the CUDA simulator finds it to put its own in its place.
cuda: Any = None


class DeviceFunctions(NamedTuple):
    """The shared device functions (unpacked by the kernel builders: kernels cannot read an
    attribute of a Python object)."""

    dot: Callable
    act_offset: Callable
    delta_offset: Callable
    loss_offset: Callable


@functools.cache
def device_functions() -> DeviceFunctions:
    """The shared device functions, built on first use."""
    runtime.bind(globals())
    jit = cuda.jit(device=True, inline="always")
    total_width = retarget.total_width()

    @jit
    def dot(w, w_start, w_stride, a, a_start, n):
        """``sum_k w[w_start + k * w_stride] * a[a_start + k]``, ``k`` increasing (``n >= 1``;
        starting from the first product keeps float32 in float32)."""
        acc = w[w_start] * a[a_start]
        for k in range(1, n):
            acc += w[w_start + k * w_stride] * a[a_start + k]
        return acc

    @jit
    def act_offset(layout, layer, batch):
        """Offset of layer ``layer``'s activations in the workspace."""
        return batch * layout[layer, A_OFF]

    @jit
    def delta_offset(layout, layer, batch):
        """Offset of layer ``layer``'s deltas in the workspace."""
        return batch * (total_width(layout) + layout[layer, A_OFF])

    @jit
    def loss_offset(layout, batch):
        """Offset of the per-sample losses in the workspace."""
        return 2 * batch * total_width(layout)

    return DeviceFunctions(dot, act_offset, delta_offset, loss_offset)


@functools.cache
def kernels() -> SimpleNamespace:
    """``loss_rows`` and ``output_rows``, the per-sample kernels (any dtype)."""
    runtime.bind(globals())
    shared = device_functions()
    act_offset, delta_offset = shared.act_offset, shared.delta_offset
    loss_offset = shared.loss_offset
    failed = checks.kernels().failed
    loss_and_delta = retarget.loss_and_delta()
    output_activation = retarget.output_activation()

    @cuda.jit
    def loss_rows(layout, loss_id, work, Y, labels, weights, batch, scale, epoch, flags):
        """Each sample's weighted loss into the workspace, and the output delta (``weight *
        scale * dloss/dz``) into the last layer's deltas. Nothing when a check failed (a label
        out of range must not be read)."""
        if failed(flags, epoch):
            return
        last = layout.shape[0] - 1
        n_out = layout[last, N_OUT]
        for i in range(cuda.grid(1), batch, cuda.gridsize(1)):
            z_start = act_offset(layout, last, batch) + i * n_out
            d_start = delta_offset(layout, last, batch) + i * n_out
            w = weights[i]
            work[loss_offset(layout, batch) + i] = w * loss_and_delta(
                loss_id, layout[last, ACT], work[z_start:z_start + n_out], Y, labels, i,
                w * scale, work[d_start:d_start + n_out])

    @cuda.jit
    def output_rows(layout, work, batch, out):
        """``out[i] =`` the output activation of sample ``i``'s scores."""
        last = layout.shape[0] - 1
        n_out = layout[last, N_OUT]
        for i in range(cuda.grid(1), batch, cuda.gridsize(1)):
            z_start = act_offset(layout, last, batch) + i * n_out
            output_activation(layout[last, ACT], work[z_start:z_start + n_out], out[i])

    return SimpleNamespace(loss_rows=loss_rows, output_rows=output_rows)

