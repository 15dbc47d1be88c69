"""The :class:`MLP`: architecture, flat parameter layout, and the public entry points."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _validate as v
from ._kernel_ids import ACTIVATIONS, LOSSES, OUTPUTS
from ._layout import build_layout, parameter_count
from .backends import DEFAULT_BACKEND, get_backend
from .cuda import runtime as cuda_runtime
from .spec import NetworkSpec

_CLASSIFIER_LOSSES = ("cross_entropy", "binary_cross_entropy", "hinge")
_HE_INIT = ("relu", "leaky_relu", "softplus")
_SETTINGS = ("sizes", "activation", "output", "loss", "l2", "dtype")


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

    Notes
    -----
    A network cannot change after it is made (setting an attribute raises ``AttributeError``):
    :meth:`replace` makes one with other settings. One network may be used from several threads
    at once; each thread gets its own buffers.

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

    spec: NetworkSpec
    """What the backends know of the network (:class:`fastprop.spec.NetworkSpec`)."""

    def __init__(self, sizes: Sequence[int], activation: str | Sequence[str] = "relu",
                 output: str = "identity", loss: str = "squared", l2: float = 0.0,
                 dtype: Any = np.float64) -> None:
        sizes = v.check_sizes(sizes)
        activations = v.check_activations(activation, len(sizes) - 2)
        output, loss_name = v.check_output_and_loss(output, loss)
        l2 = v.check_l2(l2)
        dtype = v.check_dtype(dtype)
        ids = [ACTIVATIONS[name] for name in activations] + [OUTPUTS[output]]
        n_params = parameter_count(sizes)
        spec = NetworkSpec(build_layout(sizes, ids), loss_name, LOSSES[loss_name],
                           dtype.type(l2), dtype, n_params, sizes[0], sizes[-1])
        settings = {"sizes": sizes, "activations": activations, "output": output,
                    "loss_name": loss_name, "l2": l2, "dtype": dtype, "n_params": n_params,
                    "spec": spec}
        self.__dict__.update(settings)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"an MLP cannot change after it is made: use net.replace(...) for "
                             f"a network with other settings (setting {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"an MLP cannot change after it is made (deleting {name!r})")

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

    def _arguments(self) -> dict[str, Any]:
        """The constructor's arguments that make this network (one activation name where the
        hidden layers share it, so that ``sizes`` can change alone)."""
        names = set(self.activations)
        activation = (names.pop() if len(names) == 1 else list(self.activations)) or "relu"
        return dict(zip(_SETTINGS, (list(self.sizes), activation, self.output, self.loss_name,
                                    self.l2, self.dtype), strict=True))

    def __reduce__(self) -> tuple:
        # Pickled as its settings: buffers and compiled entry points stay behind.
        return (MLP, tuple(self._arguments().values()))

    def replace(self, **changes: Any) -> MLP:
        """A new network with the settings of this one except ``changes``.

        Parameters
        ----------
        **changes
            Any of the constructor's arguments: ``sizes``, ``activation``, ``output``,
            ``loss``, ``l2``, ``dtype``.

        Examples
        --------
        >>> import fastprop as fp
        >>> fp.MLP([2, 4, 1]).replace(l2=0.1).l2
        0.1
        """
        unknown = sorted(set(changes) - set(_SETTINGS))
        if unknown:
            raise TypeError(f"replace takes {', '.join(_SETTINGS)}; got {', '.join(unknown)}")
        return MLP(**{**self._arguments(), **changes})

    def with_dtype(self, dtype: Any) -> MLP:
        """The same network in another dtype (``replace(dtype=dtype)``)."""
        return self.replace(dtype=dtype)

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
        rng = v.check_seed(seed)
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
        for n_in, n_out, w_off, b_off, *_ in self.spec.layout:
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

    def value_and_grad(self, params: np.ndarray, X: np.ndarray, Y: np.ndarray, *,
                       sample_weight: ArrayLike | None = None, backend: str = DEFAULT_BACKEND,
                       out: np.ndarray | None = None,
                       check_finite: bool = True) -> tuple[float, np.ndarray]:
        """The batch loss and its exact gradient with respect to every parameter.

        The loss is the mean of the samples' losses, weighted by ``sample_weight`` when given
        (``sum w_i l_i / sum w_i``), plus the L2 term ``l2 / 2 * sum ||W||^2``.

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
        sample_weight : array-like, optional
            One non-negative weight per sample, shape ``(batch,)`` (or one number for all),
            with a positive sum; any real dtype, copied to the network's dtype. Integer weights
            give the loss and gradient of the batch with each sample repeated that many times.
        backend : str, default "matrix"
            ``"matrix"`` (BLAS products over the batch) or ``"naive"`` (per-element loops);
            on a GPU ``"cuda"`` or ``"cuda-naive"``, which also take GPU arrays (see
            :mod:`fastprop.cuda.api`).
        out : numpy.ndarray, optional
            Where to write the gradient (shape ``(n_params,)``); a new array when omitted. Calls
            with ``out`` that repeat an earlier call's backend, shapes, dtypes and array flags
            in the same thread skip the argument checks and numba's dispatch.
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
        return get_backend(backend).value_and_grad(self.spec, params, X, Y,
                                                   sample_weight=sample_weight, out=out,
                                                   check_finite=check_finite)

    def loss(self, params: np.ndarray, X: np.ndarray, Y: np.ndarray, *,
             sample_weight: ArrayLike | None = None, backend: str = DEFAULT_BACKEND,
             check_finite: bool = True) -> float:
        """The batch loss alone (a forward pass); arguments as in :meth:`value_and_grad`."""
        return get_backend(backend).loss(self.spec, params, X, Y, sample_weight=sample_weight,
                                         check_finite=check_finite)

    def forward(self, params: np.ndarray, X: np.ndarray, *, backend: str = DEFAULT_BACKEND,
                check_finite: bool = True) -> np.ndarray:
        """Network outputs after the output activation, shape ``(batch, n_outputs)``."""
        return get_backend(backend).forward(self.spec, params, X, check_finite=check_finite)

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
        """Deprecated: use ``fastprop.save(path, net, params)``, the one spelling of saving
        (:func:`fastprop.load` reads the file back).

        .. deprecated:: 0.1.0
        """
        warnings.warn("MLP.save(path, params) is deprecated: use fastprop.save(path, net, "
                      "params)", DeprecationWarning, stacklevel=2)
        from .io import save

        save(path, self, params)
