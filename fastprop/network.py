"""The :class:`MLP`: architecture, flat parameter layout, and the public entry points."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from . import _validate as v
from ._direct import TYPE_FLAGS, compiled_entry
from ._layout import build_layout
from .activations import ACTIVATIONS
from .backends import DEFAULT_BACKEND, Backend, get_backend
from .cpu.common import thread_count
from .cuda import runtime as cuda_runtime
from .losses import LOSSES, OUTPUTS, TARGET_KINDS

_CLASSIFIER_LOSSES = ("cross_entropy", "binary_cross_entropy", "hinge")
_HE_INIT = ("relu", "leaky_relu", "softplus")
_INT64 = np.dtype(np.int64)


class MLP:
    """A multilayer perceptron: its architecture, loss, and exact gradient.

    The network holds no parameters: they live in one flat, contiguous vector (see
    :meth:`init` and :meth:`unpack`), layer by layer, ``W_1`` (``n_1 x n_0``, row-major), ``b_1``,
    ``W_2``, ``b_2``, ...; every gradient has the same layout. For a batch ``X`` of shape
    ``(batch, n_0)``, layer ``l`` computes ``A_l = f_l(A_{l-1} W_l^T + b_l)``.

    Parameters
    ----------
    sizes : sequence of int
        Input width, then each layer's width (at least one layer).
    activation : str or sequence of str, default "relu"
        The hidden layers' activation, one name for all or one per hidden layer: ``"sigmoid"``,
        ``"tanh"``, ``"relu"``, ``"identity"``, ``"leaky_relu"`` (slope 0.01) or
        ``"softplus"``.
    output : str, default "identity"
        Activation after the last layer: ``"identity"``, ``"sigmoid"`` or ``"softmax"``.
    loss : str, default "squared"
        Per-sample loss; the batch loss is their mean plus ``l2 / 2 * sum ||W||^2``.
        ``"squared"`` (``1/2 ||p - y||^2``, any output), ``"cross_entropy"`` (``softmax``
        output; targets as rows or integer labels), ``"binary_cross_entropy"`` (``sigmoid``
        output), ``"hinge"`` (multiclass SVM on raw scores, ``identity`` output, integer labels).
        See :mod:`fastprop.losses`.
    l2 : float, default 0
        L2 penalty on the weights (not the biases).
    dtype : float32 or float64, default float64
        The dtype of parameters, inputs, gradients and every buffer.

    Examples
    --------
    >>> import numpy as np, fastprop as fp
    >>> net = fp.MLP([4, 8, 3], activation="tanh", output="softmax", loss="cross_entropy")
    >>> params = net.init(seed=0)
    >>> X = np.random.default_rng(0).normal(size=(5, 4))
    >>> loss, grad = net.value_and_grad(params, X, np.array([0, 1, 2, 1, 0]))
    >>> grad.shape == (net.n_params,)
    True
    """

    n_params: int
    """Length of the flat parameter vector."""

    def __init__(self, sizes: Sequence[int], activation: str | Sequence[str] = "relu",
                 output: str = "identity", loss: str = "squared", l2: float = 0.0,
                 dtype: Any = np.float64) -> None:
        self.sizes = v.check_sizes(sizes)
        self.activations = v.check_activations(activation, len(self.sizes) - 2)
        self.output, self.loss_name = v.check_output_and_loss(output, loss)
        self.l2 = v.check_l2(l2)
        self.dtype = v.check_dtype(dtype)
        ids = [ACTIVATIONS[name] for name in self.activations] + [OUTPUTS[self.output]]
        self._layout = build_layout(self.sizes, ids)
        self._loss_id = LOSSES[self.loss_name]
        self._l2 = self.dtype.type(self.l2)
        self.n_params = sum(n_out * n_in + n_out for n_in, n_out in pairwise(self.sizes))
        self._workspaces: dict[str, np.ndarray] = {}
        self._workspace_for: dict[tuple[str, int, int], tuple[np.ndarray, int]] = {}
        self._direct_calls: dict[tuple, tuple] = {}
        self._takes_rows = TARGET_KINDS[self.loss_name] != "labels"
        self._takes_labels = TARGET_KINDS[self.loss_name] != "rows"
        self._no_rows = np.empty((0, self.n_outputs), dtype=self.dtype)
        self._params_shape = (self.n_params,)

    # -- architecture -------------------------------------------------------------------------

    @property
    def n_layers(self) -> int:
        """Number of layers (weight matrices)."""
        return len(self.sizes) - 1

    @property
    def n_inputs(self) -> int:
        """Input width."""
        return self.sizes[0]

    @property
    def n_outputs(self) -> int:
        """Output width."""
        return self.sizes[-1]

    @property
    def layer_shapes(self) -> list[tuple[tuple[int, int], tuple[int]]]:
        """``[((n_1, n_0), (n_1,)), ...]``: each layer's weight and bias shapes."""
        return [((n_out, n_in), (n_out,)) for n_in, n_out in pairwise(self.sizes)]

    @property
    def is_classifier(self) -> bool:
        """Whether the loss is a classification loss (then :meth:`predict` returns labels)."""
        return self.loss_name in _CLASSIFIER_LOSSES

    def _config(self) -> tuple:
        return (self.sizes, self.activations, self.output, self.loss_name, self.l2, self.dtype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MLP) and self._config() == other._config()

    def __hash__(self) -> int:
        return hash(self._config())

    def __repr__(self) -> str:
        activation = (repr(self.activations[0]) if len(set(self.activations)) == 1
                      else repr(list(self.activations)))
        return (f"MLP({list(self.sizes)}, activation={activation}, output={self.output!r}, "
                f"loss={self.loss_name!r}, l2={self.l2!r}, dtype=np.{self.dtype})")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_workspaces"] = {}
        state["_workspace_for"] = {}
        state["_direct_calls"] = {}
        return state

    def with_dtype(self, dtype: Any) -> MLP:
        """The same network in another dtype."""
        return MLP(self.sizes, self.activations, self.output, self.loss_name, self.l2, dtype)

    # -- parameters ---------------------------------------------------------------------------

    def init(self, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """A new parameter vector: random weights scaled to each layer, zero biases.

        Weights are drawn uniformly in ``+-sqrt(k / (n_in + n_out))``, Glorot's range, with
        ``k = 6`` after tanh, identity and softmax, ``k = 2`` after sigmoid (as scikit-learn
        does), and He's ``+-sqrt(6 / n_in)`` after relu, leaky_relu and softplus.

        Parameters
        ----------
        seed : int, numpy.random.Generator or None
            Seed for ``numpy.random.default_rng``.

        Returns
        -------
        numpy.ndarray
            Shape ``(n_params,)``, the network's dtype.
        """
        rng = np.random.default_rng(seed)
        params = np.zeros(self.n_params, dtype=self.dtype)
        applied_after = (*self.activations, self.output)
        for (W, _), after in zip(self.unpack(params), applied_after, strict=True):
            n_out, n_in = W.shape
            if after in _HE_INIT:
                bound = np.sqrt(6.0 / n_in)
            else:
                bound = np.sqrt((2.0 if after == "sigmoid" else 6.0) / (n_in + n_out))
            W[:] = rng.uniform(-bound, bound, size=W.shape)
        return params

    def unpack(self, params: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(W_1, b_1), (W_2, b_2), ...]``: views into ``params`` (writable if it is).

        ``W_l`` has shape ``(n_l, n_{l-1})``. Works on gradients too (same layout).
        """
        v.check_array("params", params, self.dtype, self.n_params)
        layers = []
        for n_in, n_out, w_off, b_off, *_ in self._layout:
            layers.append((params[w_off:b_off].reshape(n_out, n_in),
                           params[b_off:b_off + n_out]))
        return layers

    def pack(self, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """The flat parameter vector holding ``layers`` (the inverse of :meth:`unpack`)."""
        if len(layers) != self.n_layers:
            raise ValueError(f"layers must hold {self.n_layers} (W, b) pairs, got {len(layers)}")
        params = np.empty(self.n_params, dtype=self.dtype)
        for k, ((W, b), (W_shape, b_shape), (W_out, b_out)) in enumerate(
                zip(layers, self.layer_shapes, self.unpack(params), strict=True)):
            if np.shape(W) != W_shape or np.shape(b) != b_shape:
                raise ValueError(f"layer {k + 1} must be W {W_shape}, b {b_shape}, got "
                                 f"W {np.shape(W)}, b {np.shape(b)}")
            W_out[:] = W
            b_out[:] = b
        return params

    # -- computation --------------------------------------------------------------------------

    def _workspace(self, backend: Backend, batch: int) -> tuple[np.ndarray, int]:
        """``(work, n_threads)``: the backend's work buffer, grown (never shrunk) to fit
        ``batch`` samples on the current number of numba threads; one dictionary lookup for a
        batch size seen before."""
        n_threads = thread_count() if backend.uses_threads(batch) else 1
        key = (backend.name, batch, n_threads)
        found = self._workspace_for.get(key)
        if found is None:
            needed = backend.workspace_size(self._layout, batch, n_threads)
            work = self._workspaces.get(backend.name)
            if work is None or work.shape[0] < needed:
                work = self._workspaces[backend.name] = np.empty(needed, dtype=self.dtype)
                # Forget the smaller buffer: the batch sizes seen before find the new one.
                self._workspace_for = {k: entry for k, entry in self._workspace_for.items()
                                       if k[0] != backend.name}
                self._direct_calls.clear()
            found = self._workspace_for[key] = (work, n_threads)
        return found

    def _inputs(self, params: np.ndarray, X: np.ndarray) -> None:
        v.check_array("params", params, self.dtype, self.n_params)
        v.check_array("X", X, self.dtype, None, self.sizes[0])

    def _kernel_inputs(self, params: np.ndarray, X: np.ndarray,
                       Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Y_rows, labels)`` for the kernels, after checking ``params``, ``X`` and ``Y``.

        The common case (the network's dtype, the documented shapes, C-contiguous, float rows or
        ``int64`` labels) is recognised in one expression, a few hundred nanoseconds cheaper than
        the checks of :mod:`fastprop._validate`, which handle everything else: they raise on bad
        input and convert integer labels of other dtypes.
        """
        dtype = self.dtype
        ndarray = np.ndarray
        if (type(params) is ndarray and type(X) is ndarray and type(Y) is ndarray
                and params.dtype is dtype and X.dtype is dtype):
            x_shape = X.shape
            if (params.shape == self._params_shape and len(x_shape) == 2
                    and x_shape[1] == self.sizes[0] and x_shape[0] > 0
                    and params.flags.c_contiguous and X.flags.c_contiguous
                    and Y.flags.c_contiguous):
                y_dtype = Y.dtype
                if y_dtype is dtype:
                    if self._takes_rows and Y.shape == (x_shape[0], self.sizes[-1]):
                        return Y, v.NO_LABELS
                elif y_dtype is _INT64 and self._takes_labels and Y.shape == x_shape[:1]:
                    return self._no_rows, Y
        self._inputs(params, X)
        return v.check_targets(Y, self.loss_name, self.dtype, X.shape[0], self.n_outputs)

    def value_and_grad(self, params: np.ndarray, X: np.ndarray, Y: np.ndarray, *,
                       backend: str = DEFAULT_BACKEND, out: np.ndarray | None = None,
                       check_finite: bool = True) -> tuple[float, np.ndarray]:
        """The batch loss and its exact gradient with respect to every parameter.

        Parameters
        ----------
        params : numpy.ndarray
            Flat parameters, shape ``(n_params,)``, the network's dtype.
        X : numpy.ndarray
            Inputs, shape ``(batch, n_inputs)``, C-contiguous, the network's dtype.
        Y : numpy.ndarray
            Targets: rows of shape ``(batch, n_outputs)`` in the network's dtype (``(batch,)``
            also accepted when ``n_outputs == 1``), or integer class labels of shape ``(batch,)``
            for ``cross_entropy`` and ``hinge``.
        backend : str, default "matrix"
            ``"matrix"`` (BLAS products over the batch) or ``"naive"`` (per-element loops);
            on a GPU ``"cuda"`` or ``"cuda-naive"``, which also take GPU arrays (see
            :mod:`fastprop.cuda.api`).
        out : numpy.ndarray, optional
            Where to write the gradient (shape ``(n_params,)``); a new array when omitted. Calls
            with ``out`` that repeat an earlier call's backend, shapes, dtypes and array flags
            skip the argument checks and numba's dispatch (about 1 µs less per call).
        check_finite : bool, default True
            Raise ``ValueError`` on NaN or infinity in ``params``, ``X`` or ``Y``. With
            ``False`` they propagate by IEEE rules instead (never a crash).

        Returns
        -------
        loss : float
        grad : numpy.ndarray
            ``out`` when given.

        Raises
        ------
        TypeError, ValueError
            Bad input, named in the message (see :mod:`fastprop._validate`); nothing is
            written to ``out`` then.
        """
        # A call with out= like one that ran before (same backend, shapes, dtypes and memory
        # flags) goes straight to the compiled overload that ran it, skipping the checks below
        # and numba's type dispatch (see fastprop._direct): about 1 µs less per call.
        dtype = self.dtype
        ndarray = np.ndarray
        key = None
        if (type(params) is ndarray and type(X) is ndarray and type(Y) is ndarray
                and type(out) is ndarray and params.dtype is dtype and X.dtype is dtype
                and out.dtype is dtype and (Y.dtype is dtype or Y.dtype is _INT64)
                and type(backend) is str and (check_finite is True or check_finite is False)):
            takes_labels = Y.dtype is _INT64
            key = (backend, X.shape, Y.shape, takes_labels, params.shape, out.shape,
                   params.flags.num & TYPE_FLAGS, X.flags.num & TYPE_FLAGS,
                   Y.flags.num & TYPE_FLAGS, out.flags.num & TYPE_FLAGS)
            direct = self._direct_calls.get(key)
            if direct is not None:
                entry, work, n_threads, uses_threads = direct
                if not uses_threads or n_threads == thread_count():
                    Y_rows, labels = (self._no_rows, Y) if takes_labels else (Y, v.NO_LABELS)
                    status, loss = entry(self._layout, self._loss_id, params, X, Y_rows, labels,
                                         self._l2, check_finite, out, work, n_threads)
                    if status:
                        v.raise_for_status(status, self.n_outputs)
                    return loss, out
        chosen = get_backend(backend)
        check_finite = v.check_flag("check_finite", check_finite)
        if chosen.device:  # GPU backends take the whole call (fastprop.cuda)
            return chosen.value_and_grad(self, params, X, Y, out=out, check_finite=check_finite)
        Y_rows, labels = self._kernel_inputs(params, X, Y)
        if out is None:
            out = np.empty(self.n_params, dtype=self.dtype)
        else:
            v.check_out(out, self.dtype, self.n_params)
        work, n_threads = self._workspace(chosen, X.shape[0])
        args = (self._layout, self._loss_id, params, X, Y_rows, labels, self._l2, check_finite,
                out, work, n_threads)
        status, loss = chosen.value_and_grad(*args)
        if status:
            v.raise_for_status(status, self.n_outputs)
        if key is not None and (Y_rows is Y or labels is Y):  # Y as it is, not converted
            entry = compiled_entry(chosen.value_and_grad, args)
            if entry is not None:
                self._direct_calls[key] = (entry, work, n_threads,
                                           chosen.uses_threads(X.shape[0]))
        return loss, out

    def loss(self, params: np.ndarray, X: np.ndarray, Y: np.ndarray, *,
             backend: str = DEFAULT_BACKEND, check_finite: bool = True) -> float:
        """The batch loss alone (a forward pass); arguments as in :meth:`value_and_grad`."""
        chosen = get_backend(backend)
        check_finite = v.check_flag("check_finite", check_finite)
        if chosen.device:  # GPU backends take the whole call (fastprop.cuda)
            return chosen.loss(self, params, X, Y, check_finite=check_finite)
        Y_rows, labels = self._kernel_inputs(params, X, Y)
        status, loss = chosen.loss(self._layout, self._loss_id, params, X, Y_rows, labels,
                                   self._l2, check_finite, *self._workspace(chosen, X.shape[0]))
        v.raise_for_status(status, self.n_outputs)
        return loss

    def forward(self, params: np.ndarray, X: np.ndarray, *, backend: str = DEFAULT_BACKEND,
                check_finite: bool = True) -> np.ndarray:
        """Network outputs after the output activation, shape ``(batch, n_outputs)``."""
        chosen = get_backend(backend)
        check_finite = v.check_flag("check_finite", check_finite)
        if chosen.device:  # GPU backends take the whole call (fastprop.cuda)
            return chosen.forward(self, params, X, check_finite=check_finite)
        self._inputs(params, X)
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        status = chosen.forward(self._layout, params, X, check_finite, out,
                                *self._workspace(chosen, X.shape[0]))
        v.raise_for_status(status, self.n_outputs)
        return out

    def predict(self, params: np.ndarray, X: np.ndarray, *,
                backend: str = DEFAULT_BACKEND) -> np.ndarray:
        """Predicted labels for classifiers, outputs otherwise.

        With ``cross_entropy`` and ``hinge``: the index of the largest output, shape
        ``(batch,)``. With ``binary_cross_entropy``: ``p >= 0.5`` as 0/1 integers, shape
        ``(batch,)`` for one output, ``(batch, n_outputs)`` (multi-label) otherwise. With
        ``squared``: the outputs, as :meth:`forward`. Always a NumPy array: outputs of a GPU
        backend on GPU arrays are copied to the host first.
        """
        outputs = self.forward(params, X, backend=backend)
        if not isinstance(outputs, np.ndarray):
            outputs = cuda_runtime.to_host(outputs)
        if self.loss_name == "binary_cross_entropy":
            labels = (outputs >= 0.5).astype(np.int64)
            return labels[:, 0] if self.n_outputs == 1 else labels
        if self.is_classifier:
            return outputs.argmax(axis=1)
        return outputs

    # -- saving -------------------------------------------------------------------------------

    def save(self, path: Any, params: np.ndarray) -> None:
        """Write the network and ``params`` to the ``.npz`` file ``path`` (str or path-like),
        without pickle; :func:`fastprop.load` reads it back exactly. See :func:`fastprop.save`.
        """
        from .io import save

        save(path, self, params)
