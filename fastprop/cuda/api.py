"""The entry points behind ``MLP.value_and_grad``, ``loss`` and ``forward`` with
``backend="cuda"`` (form ``"matrix"``) or ``"cuda-naive"`` (form ``"naive"``).

Arrays may live on the host (NumPy: copied to the device for the call) or on the GPU (anything
that exports ``__cuda_array_interface__``: numba device arrays, CuPy arrays, PyTorch CUDA
tensors; used where they are, without a copy). The results come back as NumPy arrays when every
array argument is a NumPy array, and as numba device arrays otherwise (``out=`` may be either).

Every argument is checked in Python before a kernel runs, by the rules of
:mod:`fastprop._validate`, applied to a GPU array's dtype, shape and strides; value checks
(labels in range always, finiteness unless ``check_finite=False``) run on the GPU before the
gradient is written (:mod:`fastprop.cuda.checks`) and are raised here as the same
``ValueError``\\s. The host waits for the GPU once per call, to read the loss and the checks'
verdict (and for host results, to copy them back).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _validate as v
from .._kernel_ids import OUT_OVERLAPS_INPUT
from ..spec import NetworkSpec
from . import config, launch, matrix, naive, runtime, samples
from .checks import FLAG_STATUS
from .workspace import Workspace, workspace

#: The module that launches each form's kernels.
FORMS = {"matrix": matrix, "naive": naive}


def _shadow(array: Any) -> np.ndarray:
    """A NumPy array with ``array``'s dtype, shape and strides and no memory of its own, for
    :mod:`fastprop._validate`'s checks (which read those, never the elements)."""
    return np.lib.stride_tricks.as_strided(np.empty(1, array.dtype), shape=array.shape,
                                           strides=array.strides)


def _array(name: str, array: Any, dtype: np.dtype, rows_: int | None,
           cols: int | None = None) -> tuple[Any, bool]:
    """``(device array, whether it was on the device)`` after the checks of
    :func:`fastprop._validate.check_array`; a host array is copied to the device."""
    if runtime.is_device_array(array):
        device = runtime.as_device(array)
        v.check_array(name, _shadow(device), dtype, rows_, cols)
        return device, True
    return runtime.to_device(v.check_array(name, array, dtype, rows_, cols)), False


def _targets(spec: NetworkSpec, Y: Any, batch: int, ws: Any) -> tuple[Any, Any, bool]:
    """``(rows, labels, on device)``: the checked targets, one of them empty."""
    if not runtime.is_device_array(Y):
        Y_rows, labels = v.check_targets(Y, spec.loss_name, spec.dtype, batch, spec.n_outputs)
        return (runtime.to_device(Y_rows) if Y_rows.size else ws.no_rows,
                runtime.to_device(labels) if labels.size else ws.no_labels, False)
    device = runtime.as_device(Y)
    if device.dtype.kind in "iu" and (device.dtype != np.int64
                                      or not _shadow(device).flags.c_contiguous):
        raise TypeError(f"integer labels on the GPU must be a C-contiguous int64 array, got "
                        f"dtype {device.dtype} with strides {device.strides}")
    Y_rows, labels = v.check_targets(_shadow(device), spec.loss_name, spec.dtype, batch,
                                     spec.n_outputs)
    if labels.size:
        return ws.no_rows, device, True
    return device.reshape(Y_rows.shape), ws.no_labels, True


def _overlaps(out: Any, *inputs: Any) -> bool:
    first, stop = runtime.address_range(out)
    return any(start < stop and first < end
               for start, end in (runtime.address_range(a) for a in inputs if a.size))


def _weights(spec: NetworkSpec, sample_weight: Any, batch: int,
             ws: Workspace) -> tuple[Any, np.floating]:
    """``(device weights, 1 / their sum)``: the workspace's ones for None, else the weights
    checked on the host (a GPU array is copied there for the checks) and copied to the GPU."""
    dtype = spec.dtype.type
    if sample_weight is None:
        return ws.unit_weights, dtype(1) / batch
    if runtime.is_device_array(sample_weight):
        sample_weight = runtime.to_host(sample_weight)
    weights = v.check_sample_weight(sample_weight, spec.dtype, batch)
    return runtime.to_device(weights), dtype(1 / weights.sum(dtype=np.float64))


def _prepare(spec: NetworkSpec, form: str, params: Any, X: Any, Y: Any | None,
             check_finite: bool, sample_weight: Any = None) -> tuple[launch.Call, bool]:
    """The call's device arrays and settings, and whether any input was on the device."""
    runtime.cuda()  # the clear error first, where CUDA is missing
    d_params, params_on = _array("params", params, spec.dtype, spec.n_params)
    d_X, X_on = _array("X", X, spec.dtype, None, spec.n_inputs)
    batch = d_X.shape[0]
    ws = workspace(spec, form, batch)
    if Y is None:
        d_Y, labels, Y_on = ws.no_rows, ws.no_labels, False
    else:
        d_Y, labels, Y_on = _targets(spec, Y, batch, ws)
    weights, scale = _weights(spec, sample_weight, batch, ws)
    ws.calls += 1
    call = launch.Call(ws, spec.dtype.name, spec.n_layers, spec.loss_id, d_params,
                       d_X.reshape(d_X.size), d_Y, labels, weights, scale, batch,
                       spec.n_outputs, spec.l2, bool(check_finite), ws.calls)
    return call, params_on or X_on or Y_on


def _loss(spec: NetworkSpec, call: launch.Call) -> float:
    """Wait for the GPU and read the report: the loss, or the ``ValueError`` of a failed
    check."""
    report = call.ws.report.copy_to_host(call.ws.host_report)
    for flag, status in zip(report[1:], FLAG_STATUS, strict=True):
        if flag:
            v.raise_for_status(status, spec.n_outputs)
    return float(report[0])


def value_and_grad(spec: NetworkSpec, params: Any, X: Any, Y: Any, *, form: str,
                   sample_weight: Any = None, out: Any = None,
                   check_finite: bool = True) -> tuple[float, Any]:
    """:meth:`fastprop.MLP.value_and_grad` on the GPU.

    Parameters
    ----------
    spec : fastprop.spec.NetworkSpec
        The network (:attr:`fastprop.MLP.spec`).
    params, X, Y : numpy.ndarray or GPU array
        As for :meth:`fastprop.MLP.value_and_grad`; GPU arrays are any that export
        ``__cuda_array_interface__`` (integer labels on the GPU must be ``int64``).
    form : {"matrix", "naive"}
        The form of backpropagation: backend ``"cuda"`` or ``"cuda-naive"``.
    sample_weight : array-like or GPU array, optional
        One weight per sample, as for :meth:`fastprop.MLP.value_and_grad` (checked on the host).
    out : numpy.ndarray or GPU array, optional
        Where to write the gradient.
    check_finite : bool, default True
        Raise ``ValueError`` on NaN or infinity in ``params``, ``X`` or ``Y``.

    Returns
    -------
    loss : float
    grad : numpy.ndarray or numba device array
        ``out`` when given; else a NumPy array when ``params``, ``X`` and ``Y`` all are, a
        device array otherwise.

    Raises
    ------
    TypeError, ValueError
        Bad input, as on the CPU; nothing is written to ``out`` then.
    fastprop.cuda.runtime.CudaUnavailableError
        Where numba-cuda or a GPU is missing.
    """
    call, on_device = _prepare(spec, form, params, X, Y, check_finite, sample_weight)
    host_out = None
    if out is None:
        grad = runtime.cuda().device_array(spec.n_params, spec.dtype)
    elif runtime.is_device_array(out):
        grad, on_device = _array("out", out, spec.dtype, spec.n_params)
        if _overlaps(grad, call.params, call.X, call.Y, call.labels):
            v.raise_for_status(OUT_OVERLAPS_INPUT, spec.n_outputs)
    else:
        host_out = v.check_out(out, spec.dtype, spec.n_params)
        grad = runtime.cuda().device_array(spec.n_params, spec.dtype)
    FORMS[form].gradient(call, grad)
    loss = _loss(spec, call)
    if host_out is not None:
        return loss, grad.copy_to_host(host_out)
    if out is not None:
        return loss, out
    return loss, grad if on_device else runtime.to_host(grad)


def loss(spec: NetworkSpec, params: Any, X: Any, Y: Any, *, form: str,
         sample_weight: Any = None, check_finite: bool = True) -> float:
    """:meth:`fastprop.MLP.loss` on the GPU.

    Parameters and errors as :func:`value_and_grad` (without ``out``).

    Returns
    -------
    float
        The batch loss.
    """
    call, _ = _prepare(spec, form, params, X, Y, check_finite, sample_weight)
    FORMS[form].loss(call)
    return _loss(spec, call)


def forward(spec: NetworkSpec, params: Any, X: Any, *, form: str, check_finite: bool = True) -> Any:
    """:meth:`fastprop.MLP.forward` on the GPU.

    Parameters and errors as :func:`value_and_grad` (without ``Y`` and ``out``).

    Returns
    -------
    numpy.ndarray or numba device array
        The outputs, shape ``(batch, n_outputs)``: a device array when ``params`` or ``X`` is
        one. Without ``check_finite`` and with GPU inputs, it returns without waiting for the
        GPU.
    """
    call, on_device = _prepare(spec, form, params, X, None, check_finite)
    out = runtime.cuda().device_array((call.batch, spec.n_outputs), spec.dtype)

    launch.check(call)
    FORMS[form].forward_pass(call)
    samples.kernels().output_rows[launch.blocks(call.batch), config.THREADS_PER_BLOCK](
        call.ws.layout, call.ws.work, call.batch, out)
    if check_finite:
        launch.reduce_and_report(call)
        _loss(spec, call)
    return out if on_device else runtime.to_host(out)
