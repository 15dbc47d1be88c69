"""What one call hands to the kernels (:class:`Call`), and the launches every form shares:
the value check, the per-sample losses, and the last kernel with the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._layout import A_OFF
from . import checks, config, report, samples
from .workspace import Workspace


@dataclass
class Call:
    """The device arrays and settings of one call.

    ``X`` is flat (``batch * n_inputs``); ``Y`` is ``(batch, n_outputs)`` or empty, ``labels``
    ``(batch,)`` or empty (one of them holds the targets; both empty in a forward pass).
    ``weights`` holds the ``batch`` sample weights and ``scale`` is ``1 / sum(weights)`` in the
    network's dtype.
    ``epoch`` numbers the call for the check flags (:mod:`fastprop.cuda.checks`).
    """

    ws: Workspace
    dtype: str
    n_layers: int
    loss_id: int
    params: Any
    X: Any
    Y: Any
    labels: Any
    weights: Any
    scale: np.floating
    batch: int
    n_classes: int
    l2: np.floating
    check_finite: bool
    epoch: int


def blocks(n: int) -> int:
    """Blocks of :data:`config.THREADS_PER_BLOCK` threads for ``n`` elements, one each, up to
    :data:`config.MAX_BLOCKS` (the element-wise kernels loop over the rest)."""
    return max(1, min(config.MAX_BLOCKS, -(-n // config.THREADS_PER_BLOCK)))


def layer_input(call: Call, layer: int) -> tuple[Any, int]:
    """``(array, start)`` of layer ``layer``'s input: ``X``, or the previous activations."""
    if layer == 0:
        return call.X, 0
    return call.ws.work, call.batch * int(call.ws.layout_host[layer - 1, A_OFF])


def check(call: Call) -> None:
    """The value check, when there is something to check."""
    if call.labels.shape[0] == 0 and not call.check_finite:
        return
    size = max(call.labels.shape[0], call.X.shape[0], call.Y.size, call.params.shape[0])
    checks.kernels().check_values[blocks(size),
                                  config.THREADS_PER_BLOCK](
        call.labels, call.n_classes, call.X, call.Y.reshape(call.Y.size), call.params,
        call.check_finite, call.epoch, call.ws.flags)


def loss_rows(call: Call) -> None:
    """Per-sample losses and the output deltas, from the last layer's scores."""
    samples.kernels().loss_rows[blocks(call.batch), config.THREADS_PER_BLOCK](
        call.ws.layout, call.loss_id, call.ws.work, call.Y, call.labels, call.weights,
        call.batch, call.scale, call.epoch, call.ws.flags)


def reduce_and_report(call: Call, grad: Any = None) -> None:
    """The last kernel: the report, and with ``grad``, the weight-gradient splits summed into it
    (the matrix form; the naive form writes ``grad`` itself)."""
    splits = call.ws.splits if grad is not None else 0
    n_params = call.params.shape[0]
    kernel = report.kernels(call.dtype).reduce_and_report
    kernel[1 + (blocks(n_params) if splits else 0), config.THREADS_PER_BLOCK](
        call.ws.partials, splits, call.ws.layout, call.params, call.l2, call.ws.work,
        call.batch if call.Y.size or call.labels.size else 0, call.scale, call.epoch,
        call.ws.flags, call.params if grad is None else grad,  # (never written without splits)
        call.ws.report)
