"""Device buffers of one network, reused from call to call for each batch size.

A :class:`Workspace` holds what the kernels of one backend need at one batch size (see
:mod:`fastprop.cuda.samples` for the work buffer's arrangement); :func:`workspace` keeps the two
most recently used per network, backend and calling thread, so alternating between a training
batch size and a last, smaller batch allocates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._layout import N_OUT
from ..spec import NetworkSpec
from . import checks, config, gemm
from .report import REPORT_SIZE
from .runtime import cuda

_KEPT = 2


@dataclass
class Workspace:
    """Device buffers for one backend and batch size.

    Attributes
    ----------
    layout, layout_host : device array, numpy.ndarray
        The network's layout table (:mod:`fastprop._layout`), on the device and the host.
    work : device array
        Activations, deltas and per-sample losses.
    partials : device array
        ``splits`` partial weight gradients (the matrix form), empty otherwise.
    splits, split_rows : int
        How the weight-gradient product cuts the batch.
    flags : device array
        The check flags (:mod:`fastprop.cuda.checks`).
    calls : int
        Calls made with this workspace: the current call's epoch for the flags.
    report : device array
        ``[loss, flags...]``, written by the last kernel; ``host_report`` is its host copy.
    no_labels, no_rows : device array
        Empty label and target arrays, passed where the targets are of the other kind.
    unit_weights : device array
        ``batch`` ones: the sample weights of an unweighted call.
    """

    layout: Any
    layout_host: np.ndarray
    work: Any
    partials: Any
    splits: int
    split_rows: int
    flags: Any
    calls: int
    report: Any
    host_report: np.ndarray
    no_labels: Any
    no_rows: Any
    unit_weights: Any


def weight_splits(layout: np.ndarray, batch: int, dtype: str) -> tuple[int, int]:
    """``(splits, rows per split)`` of the batch for the weight-gradient product: enough
    blocks to fill the GPU (:data:`config.TARGET_BLOCKS`), at least
    :data:`config.MIN_SPLIT_ROWS` samples each; a function of the sizes only."""
    shape, tiles = gemm.weight_tiles(layout, dtype)
    BK = shape[2]
    tiles = sum(tiles)
    wanted = max(1, min(-(-config.TARGET_BLOCKS // tiles), batch // config.MIN_SPLIT_ROWS))
    split_rows = -(-batch // wanted)
    split_rows = -(-split_rows // BK) * BK
    return -(-batch // split_rows), split_rows


def _build(layout: np.ndarray, n_params: int, batch: int, dtype: np.dtype,
           with_partials: bool) -> Workspace:
    cu = cuda()
    total_width = int(layout[:, N_OUT].sum())
    splits, split_rows = weight_splits(layout, batch, dtype.name) if with_partials else (0, 0)
    return Workspace(
        layout=cu.to_device(np.ascontiguousarray(layout)), layout_host=layout,
        work=cu.device_array(batch * (2 * total_width + 1), dtype),
        partials=cu.device_array(max(splits, 1) * n_params if with_partials else 0, dtype),
        splits=splits, split_rows=split_rows,
        flags=cu.to_device(np.zeros(checks.N_FLAGS, np.int64)), calls=0,
        report=cu.device_array(REPORT_SIZE, np.float64),
        host_report=np.empty(REPORT_SIZE, np.float64),
        no_labels=cu.device_array(0, np.int64),
        no_rows=cu.device_array((0, int(layout[-1, N_OUT])), dtype),
        unit_weights=cu.to_device(np.ones(batch, dtype)))


def workspace(spec: NetworkSpec, form: str, batch: int) -> Workspace:
    """The calling thread's workspace of the network ``spec`` for backend form ``form``
    (``"matrix"`` or ``"naive"``) at ``batch`` samples, made on first use."""
    kept = getattr(spec.per_thread, "cuda_workspaces", None)
    if kept is None:
        kept = spec.per_thread.cuda_workspaces = {}
    key = (form, batch)
    found = kept.pop(key, None)
    if found is None:
        found = _build(spec.layout, spec.n_params, batch, spec.dtype, form == "matrix")
    kept[key] = found
    while len(kept) > _KEPT * 2:
        del kept[next(iter(kept))]
    return found

