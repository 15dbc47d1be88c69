"""A CPU backend: one kernels module behind the protocol of :mod:`fastprop.backends`.

Every thread keeps its own work buffers and compiled entry points for each network (in
:attr:`fastprop.spec.NetworkSpec.per_thread`), so calls from several threads on one network never
share memory. numba's ``omp`` and ``tbb`` threading layers run parallel regions launched from
several threads at once; its ``workqueue`` layer cannot, and there every compiled call holds one
process-wide lock.

The kernels module, and numba with it, is imported at the first call, not with fastprop.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from types import ModuleType

import numpy as np

from .. import _validate as v
from ..spec import NetworkSpec
from ..threads import numba_threads
from .direct_calls import TYPE_FLAGS, compiled_entry

_INT64 = np.dtype(np.int64)
_NDARRAY = np.ndarray
_SERIAL_LAYERS = ("workqueue",)
_LOCK = threading.Lock()
_LOADING = threading.Lock()


def _unchanged(function: Callable) -> Callable:
    return function


def _serialized(function: Callable) -> Callable:
    """``function`` behind the process-wide lock of the ``workqueue`` threading layer."""
    def call(*args):
        with _LOCK:
            return function(*args)
    return call


class _ThreadState:
    """What one thread reuses between calls on one network with one backend."""

    __slots__ = ("direct_calls", "no_rows", "unit_weights", "work", "workspaces")

    def __init__(self, spec: NetworkSpec) -> None:
        self.work: np.ndarray | None = None
        self.workspaces: dict[tuple[int, int], tuple[np.ndarray, int]] = {}
        self.direct_calls: dict[tuple, tuple] = {}
        self.no_rows = np.empty((0, spec.n_outputs), dtype=spec.dtype)
        self.unit_weights: dict[int, np.ndarray] = {}


class CpuBackend:
    """A CPU backend: the compiled kernels of ``kernels`` with their argument checks and
    buffers.

    Parameters
    ----------
    name : str
        The name users pass as ``backend=``.
    kernels : str or module
        The kernels module, or its name to import at the first call. It provides
        ``value_and_grad``, ``loss`` and ``forward`` (the compiled kernels, whose signature
        :mod:`fastprop.cpu.common` describes), ``workspace_size(layout, batch, n_threads)`` and
        ``uses_threads(batch)`` (whether a batch may split among threads). It may also provide
        ``serial_value_and_grad`` (``value_and_grad`` that never splits a batch, with the same
        signature) and ``splits(layout, batch, n_threads)`` (whether ``value_and_grad`` would):
        then a gradient that does not split calls ``serial_value_and_grad``, and the parallel
        code is compiled only for a batch that splits.
    """

    device = False

    def __init__(self, name: str, kernels: str | ModuleType) -> None:
        self.name = name
        self._kernels = kernels
        self._serial: bool | None = None

    def __repr__(self) -> str:
        return f"CpuBackend({self.name!r})"

    def _start(self) -> None:
        """Import the kernels, start numba's parallel runtime before the first compiled call,
        and put the kernels behind the lock where the threading layer needs it."""
        if self._serial is not None:
            return
        with _LOADING:
            if self._serial is not None:
                return
            import numba

            from .._jit import start_parallel_runtime

            if isinstance(self._kernels, str):
                self._kernels = importlib.import_module(self._kernels)
            start_parallel_runtime()
            serial = numba.threading_layer() in _SERIAL_LAYERS
            self._guard = _serialized if serial else _unchanged
            self._serial_kernel = getattr(self._kernels, "serial_value_and_grad",
                                          self._kernels.value_and_grad)
            self._loss = self._guard(self._kernels.loss)
            self._forward = self._guard(self._kernels.forward)
            self._serial = serial  # last: a thread that sees it set finds everything above

    @property
    def kernels(self) -> ModuleType:
        """The kernels module (imported on first use)."""
        self._start()
        return self._kernels

    @property
    def serialized(self) -> bool:
        """Whether compiled calls take the process-wide lock (numba's ``workqueue`` layer)."""
        self._start()
        return bool(self._serial)

    def guard(self, function: Callable) -> Callable:
        """``function`` (compiled code that calls this backend's kernels) made safe to call from
        several threads at once under the process's threading layer."""
        self._start()
        return self._guard(function)

    def _state(self, spec: NetworkSpec) -> _ThreadState:
        state = getattr(spec.per_thread, self.name, None)
        if state is None:
            state = _ThreadState(spec)
            setattr(spec.per_thread, self.name, state)
        return state

    def workspace(self, spec: NetworkSpec, batch: int) -> tuple[np.ndarray, int]:
        """``(work, n_threads)`` for ``batch`` samples in the calling thread: its own work buffer,
        grown (never shrunk) to fit, and the thread count the kernels may split the batch
        among."""
        work, n_threads, _ = self._workspace(spec, batch)
        return work, n_threads

    def gradient_kernel(self, spec: NetworkSpec,
                        batch: int) -> tuple[Callable, np.ndarray, int]:
        """``(kernel, work, n_threads)`` for compiled code that computes gradients of ``batch``
        samples (or fewer) itself, as :func:`fastprop.train`'s epochs do: the kernels'
        ``value_and_grad`` where a batch of that size splits among threads, else their
        ``serial_value_and_grad`` (then the parallel code is never compiled), with
        :meth:`workspace`'s buffer and thread count."""
        work, n_threads, split = self._workspace(spec, batch)
        return (self._kernels.value_and_grad if split else self._serial_kernel, work, n_threads)

    def _workspace(self, spec: NetworkSpec, batch: int) -> tuple[np.ndarray, int, bool]:
        """:meth:`workspace`, and whether ``value_and_grad`` splits the batch (decided with the
        workspace's size, and kept with it)."""
        self._start()
        n_threads = numba_threads() if self._kernels.uses_threads(batch) else 1
        state = self._state(spec)
        key = (batch, n_threads)
        found = state.workspaces.get(key)
        if found is None:
            needed = self._kernels.workspace_size(spec.layout, batch, n_threads)
            if state.work is None or state.work.shape[0] < needed:
                state.work = np.empty(needed, dtype=spec.dtype)
                # The batch sizes seen before move to the new buffer, and so do direct calls.
                state.workspaces.clear()
                state.direct_calls.clear()
            splits = getattr(self._kernels, "splits", None)
            split = splits is None or splits(spec.layout, batch, n_threads)
            found = state.workspaces[key] = (state.work, n_threads, split)
        return found

    def sample_weights(self, spec: NetworkSpec, sample_weight: object,
                       batch: int) -> np.ndarray:
        """The kernels' per-sample weights: ``sample_weight`` checked and copied, or for None
        the calling thread's array of ``batch`` ones."""
        if sample_weight is not None:
            return v.check_sample_weight(sample_weight, spec.dtype, batch)
        state = self._state(spec)
        ones = state.unit_weights.get(batch)
        if ones is None:
            ones = state.unit_weights[batch] = np.ones(batch, dtype=spec.dtype)
        return ones

    def _kernel_inputs(self, spec: NetworkSpec, params: object, X: object, Y: object
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(params, X, Y_rows, labels)`` for the kernels, after checking ``params``, ``X`` and
        ``Y``.

        The common case (the network's dtype, the documented shapes, C-contiguous, aligned and
        writable, float rows or ``int64`` labels) is recognised in one expression; the checks of
        :mod:`fastprop._validate` handle everything else: they raise on bad input, convert
        integer labels of other dtypes and alias read-only arrays as writable
        (:func:`fastprop._validate.for_kernels`).
        """
        dtype = spec.dtype
        ndarray = np.ndarray
        if (type(params) is ndarray and type(X) is ndarray and type(Y) is ndarray
                and params.dtype is dtype and X.dtype is dtype):
            x_shape = X.shape
            if (params.shape == (spec.n_params,) and len(x_shape) == 2
                    and x_shape[1] == spec.n_inputs and x_shape[0] > 0
                    and params.flags.num & X.flags.num & Y.flags.num & TYPE_FLAGS == TYPE_FLAGS):
                y_dtype = Y.dtype
                if y_dtype is dtype:
                    if spec.takes_rows and Y.shape == (x_shape[0], spec.n_outputs):
                        return params, X, Y, v.NO_LABELS
                elif y_dtype is _INT64 and spec.takes_labels and Y.shape == x_shape[:1]:
                    return params, X, self._state(spec).no_rows, Y
        params, X = kernel_inputs(spec, params, X)
        return (params, X,
                *v.check_targets(Y, spec.loss_name, dtype, X.shape[0], spec.n_outputs))

    def value_and_grad(self, spec: NetworkSpec, params: np.ndarray, X: np.ndarray,
                       Y: np.ndarray, *, sample_weight: object = None,
                       out: np.ndarray | None = None,
                       check_finite: bool = True) -> tuple[float, np.ndarray]:
        """:meth:`fastprop.MLP.value_and_grad`.

        A call without sample weights and with ``out`` like one this thread made before (same
        shapes, dtypes and memory flags) goes straight to the compiled overload that ran it,
        skipping the checks and numba's type dispatch (see :mod:`fastprop.cpu.direct_calls`).
        """
        dtype = spec.dtype
        key = None
        if (sample_weight is None and type(out) is _NDARRAY and type(params) is _NDARRAY
                and type(X) is _NDARRAY and type(Y) is _NDARRAY and params.dtype is dtype
                and X.dtype is dtype and out.dtype is dtype
                and (check_finite is True or check_finite is False)
                and params.flags.num & X.flags.num & Y.flags.num & out.flags.num & TYPE_FLAGS
                == TYPE_FLAGS):
            labelled = Y.dtype is _INT64
            if labelled or Y.dtype is dtype:
                key = (X.shape, Y.shape, labelled, params.shape, out.shape)
                state = getattr(spec.per_thread, self.name, None)
                direct_call = None if state is None else state.direct_calls.get(key)
                if direct_call is not None:
                    entry, ones, work, n_threads, uses_threads = direct_call
                    if not uses_threads or n_threads == numba_threads():
                        if labelled:
                            status, loss = entry(spec.layout, spec.loss_id, params, X,
                                                 state.no_rows, Y, ones, spec.l2, check_finite,
                                                 out, work, n_threads)
                        else:
                            status, loss = entry(spec.layout, spec.loss_id, params, X, Y,
                                                 v.NO_LABELS, ones, spec.l2, check_finite, out,
                                                 work, n_threads)
                        if status:
                            v.raise_for_status(status, spec.n_outputs)
                        return loss, out
        check_finite = v.check_flag("check_finite", check_finite)
        params, X, Y_rows, labels = self._kernel_inputs(spec, params, X, Y)
        weights = self.sample_weights(spec, sample_weight, X.shape[0])
        if out is None:
            out = np.empty(spec.n_params, dtype=dtype)
        else:
            v.check_out(out, dtype, spec.n_params)
        kernel, work, n_threads = self.gradient_kernel(spec, X.shape[0])
        args = (spec.layout, spec.loss_id, params, X, Y_rows, labels, weights, spec.l2,
                check_finite, out, work, n_threads)
        status, loss = self._guard(kernel)(*args)
        if status:
            v.raise_for_status(status, spec.n_outputs)
        if key is not None and (Y_rows is Y or labels is Y):  # Y as it is, not converted
            entry = compiled_entry(kernel, args)  # the overload that ran
            if entry is not None:
                self._state(spec).direct_calls[key] = (self.guard(entry), weights, work, n_threads,
                                                 self._kernels.uses_threads(X.shape[0]))
        return loss, out

    def loss(self, spec: NetworkSpec, params: np.ndarray, X: np.ndarray, Y: np.ndarray, *,
             sample_weight: object = None, check_finite: bool = True) -> float:
        """:meth:`fastprop.MLP.loss`."""
        check_finite = v.check_flag("check_finite", check_finite)
        params, X, Y_rows, labels = self._kernel_inputs(spec, params, X, Y)
        weights = self.sample_weights(spec, sample_weight, X.shape[0])
        work, n_threads = self.workspace(spec, X.shape[0])  # (loads the kernels first)
        status, loss = self._loss(spec.layout, spec.loss_id, params, X, Y_rows, labels, weights,
                                  spec.l2, check_finite, work, n_threads)
        v.raise_for_status(status, spec.n_outputs)
        return loss

    def forward(self, spec: NetworkSpec, params: np.ndarray, X: np.ndarray, *,
                check_finite: bool = True) -> np.ndarray:
        """:meth:`fastprop.MLP.forward`."""
        check_finite = v.check_flag("check_finite", check_finite)
        params, X = kernel_inputs(spec, params, X)
        out = np.empty((X.shape[0], spec.n_outputs), dtype=spec.dtype)
        work, n_threads = self.workspace(spec, X.shape[0])  # (loads the kernels first)
        status = self._forward(spec.layout, params, X, check_finite, out, work, n_threads)
        v.raise_for_status(status, spec.n_outputs)
        return out


def kernel_inputs(spec: NetworkSpec, params: object, X: object) -> tuple[np.ndarray, np.ndarray]:
    """``(params, X)`` checked for ``spec``'s network and as the kernels take them
    (:mod:`fastprop._validate`)."""
    v.check_array("params", params, spec.dtype, spec.n_params)
    v.check_array("X", X, spec.dtype, None, spec.n_inputs)
    return v.for_kernels(params), v.for_kernels(X)
