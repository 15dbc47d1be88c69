"""Checks of input values on the GPU, before anything is written to the gradient.

A check failure sets one of :data:`N_FLAGS` integer flags in device memory to the call's number
(its *epoch*, counted per workspace by the host; several threads may write the same number: a
benign race with one outcome). A flag counts as set only when it holds the current epoch, so the
flags never need clearing, and a call that failed half-way leaves nothing behind for the next.
Every kernel that reads labels or writes the gradient returns at once when a flag is set, so
bad labels are never used as indices and the caller's ``out`` is left untouched;
:mod:`fastprop.cuda.report` reports the flags to the host with the loss. The flags' order is the
CPU core's status order: labels, ``X``, ``Y``, ``params``.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace
from typing import Any

from .._kernel_ids import LABEL_OUT_OF_RANGE, PARAMS_NOT_FINITE, X_NOT_FINITE, Y_NOT_FINITE
from . import runtime

#: ``numba.cuda``, bound by the kernel builders: the kernels name it as a module global, which
#: is how the CUDA simulator finds it to put its own in its place.
cuda: Any = None

#: The CPU core's status code of each flag, in flag order.
FLAG_STATUS = (LABEL_OUT_OF_RANGE, X_NOT_FINITE, Y_NOT_FINITE, PARAMS_NOT_FINITE)
N_FLAGS = len(FLAG_STATUS)


@functools.cache
def kernels() -> SimpleNamespace:
    """``failed`` (device function) and ``check_values`` (kernel)."""
    runtime.bind(globals())

    @cuda.jit(device=True, inline="always")
    def failed(flags, epoch):
        """Whether any check of call ``epoch`` failed."""
        return ((flags[0] == epoch) | (flags[1] == epoch) | (flags[2] == epoch)
                | (flags[3] == epoch))

    @cuda.jit(device=True, inline="always")
    def any_not_finite(values, start, stride):
        bad = False
        for k in range(start, values.shape[0], stride):
            bad |= not math.isfinite(values[k])
        return bad

    @cuda.jit
    def check_values(labels, n_classes, X, Y, params, check_finite, epoch, flags):
        """Set the flag of each check that fails (``X``, ``Y``, ``params`` flat)."""
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        bad_label = False
        for k in range(start, labels.shape[0], stride):
            bad_label |= (labels[k] < 0) | (labels[k] >= n_classes)
        bad_x = bad_y = bad_params = False
        if check_finite:
            bad_x = any_not_finite(X, start, stride)
            bad_y = any_not_finite(Y, start, stride)
            bad_params = any_not_finite(params, start, stride)
        # (syncthreads_or: one write per block and flag, from thread 0)
        found_label = cuda.syncthreads_or(1 if bad_label else 0)
        found_x = cuda.syncthreads_or(1 if bad_x else 0)
        found_y = cuda.syncthreads_or(1 if bad_y else 0)
        found_params = cuda.syncthreads_or(1 if bad_params else 0)
        if cuda.threadIdx.x == 0:
            if found_label:
                flags[0] = epoch
            if found_x:
                flags[1] = epoch
            if found_y:
                flags[2] = epoch
            if found_params:
                flags[3] = epoch

    return SimpleNamespace(failed=failed, check_values=check_values)
