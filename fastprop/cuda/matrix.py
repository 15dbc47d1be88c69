"""Matrix-form backpropagation on the GPU: the launch order of the ``"cuda"`` backend.

Networks whose widths are all at most :data:`config.FUSED_MAX_WIDTH` take the fused path
(:mod:`fastprop.cuda.fused`): the value check, one launch for the forward pass, the losses and
the deltas, one for every layer's weight gradients, then one that sums the splits and reports
the loss, whatever the depth. Wider networks go layer by layer through the tiled products of
:mod:`fastprop.cuda.gemm`: a forward product per layer (bias and activation fused), the losses,
a delta product per layer but the first (derivative fused), then the same weight-gradient
launch and the last kernel. Nothing waits for the GPU until the host reads the report.
"""

from __future__ import annotations

from typing import Any

from .._kernel_ids import IDENTITY
from .._layout import ACT, N_IN, N_OUT
from . import config, fused, gemm, launch


def _grid(rows: int, cols: int, dtype: str) -> tuple[int, int]:
    BM, BN, *_ = gemm.tiles(dtype)
    return -(-cols // BN), -(-rows // BM)


def forward_pass(call: launch.Call) -> None:
    """Every layer's activations (the last layer's raw scores), a product per layer."""
    shape = gemm.tiles(call.dtype)
    k = gemm.kernels(call.dtype, shape)
    layout = call.ws.layout_host
    for layer in range(call.n_layers):
        act = int(layout[layer, ACT]) if layer < call.n_layers - 1 else IDENTITY
        a_in, start = launch.layer_input(call, layer)
        k.forward[_grid(call.batch, int(layout[layer, N_OUT]), call.dtype),
                  gemm.threads(shape)](
            call.ws.layout, layer, act, call.params, a_in, start, call.ws.work, call.batch)


def _sizes(call: launch.Call) -> tuple[int, ...]:
    layout = call.ws.layout_host
    return (int(layout[0, N_IN]), *(int(n) for n in layout[:, N_OUT]))


def _fused(call: launch.Call, with_deltas: bool) -> None:
    sizes = _sizes(call)
    rows = fused.rows_per_block(sizes, call.dtype)
    fused.kernels(call.dtype).forward_backward[fused.grid(call.batch, rows),
                                               config.FUSED_THREADS](
        call.ws.layout, call.loss_id, call.params, call.X, call.Y, call.labels, call.weights,
        call.ws.work, call.batch, call.scale, max(sizes), rows, with_deltas, call.epoch,
        call.ws.flags)


def _losses_and_deltas(call: launch.Call, with_deltas: bool) -> None:
    """The value check, the forward pass, the per-sample losses and (``with_deltas``) every
    layer's deltas."""
    launch.check(call)
    if fused.applies(_sizes(call), call.dtype):
        _fused(call, with_deltas)
        return
    forward_pass(call)
    launch.loss_rows(call)
    if with_deltas:
        shape = gemm.tiles(call.dtype)
        k = gemm.kernels(call.dtype, shape)
        for layer in range(call.n_layers - 1, 0, -1):
            k.delta[_grid(call.batch, int(call.ws.layout_host[layer, N_IN]), call.dtype),
                    gemm.threads(shape)](
                call.ws.layout, layer, call.params, call.ws.work, call.batch)


def gradient(call: launch.Call, grad: Any) -> None:
    """Loss and gradient (into ``grad``)."""
    _losses_and_deltas(call, with_deltas=True)
    shape, tiles = gemm.weight_tiles(call.ws.layout_host, call.dtype)
    gemm.kernels(call.dtype, shape).weights[(max(tiles), call.n_layers, call.ws.splits),
                                            gemm.threads(shape)](
        call.ws.layout, call.X, call.ws.work, call.batch, call.ws.split_rows,
        call.ws.partials)
    launch.reduce_and_report(call, grad)


def loss(call: launch.Call) -> None:
    """The loss alone."""
    _losses_and_deltas(call, with_deltas=False)
    launch.reduce_and_report(call)
