"""Peers: other libraries' ways to compute one MLP gradient, for ``fastprop compare`` and the
asv suite.

They are written independently of fastprop's own code (their own parameter layout functions
included), so that a comparison checks fastprop as well as timing it.

Every peer computes the same thing as ``fastprop.MLP(sizes, activation="tanh",
output="identity", loss="squared", l2=0.0).value_and_grad``: layers ``z = a @ W.T + b``, tanh on
hidden layers, identity on the output, batch loss ``mean_i 0.5 * ||a_i - y_i||^2``, and the
gradient in fastprop's flat layout (``W1`` of shape ``(n1, n0)`` row-major, ``b1``, ``W2``,
``b2``, ...).

Each peer is a factory ``make_<peer>(sizes, dtype)`` that allocates what it needs once and returns
a callable ``f(params, X, Y) -> (loss, grad)``. The ``gemm`` peer is not a gradient: it performs
exactly the matrix products of the matrix form and nothing else (the floor), and returns ``None``.
"""

from __future__ import annotations

import functools
import importlib
import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = [
    "GPU_PEERS",
    "PEERS",
    "Layer",
    "Peer",
    "available_peers",
    "layout",
    "make_gemm",
    "make_jax",
    "make_numpy",
    "make_torch",
    "make_torch_cuda",
    "make_torch_cuda_graph",
    "unavailable_reason",
    "unpack",
]

#: A peer callable: ``(params, X, Y) -> (loss, grad)``, or ``None`` for the ``gemm`` floor.
Peer = Callable[[NDArray, NDArray, NDArray], "tuple[float, NDArray] | None"]


class Layer(NamedTuple):
    """Where one dense layer lives in the flat parameter vector.

    Attributes
    ----------
    w : int
        Offset of the weight matrix ``W`` (row-major, shape ``(n_out, n_in)``).
    b : int
        Offset of the bias vector (length ``n_out``).
    n_out, n_in : int
        Output and input widths of the layer.
    """

    w: int
    b: int
    n_out: int
    n_in: int


def layout(sizes: Sequence[int]) -> list[Layer]:
    """Offsets of every layer's weights and biases in the flat parameter vector.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n0, n1, ..., nM]``, input first.

    Returns
    -------
    list of Layer
        One entry per dense layer, in order.
    """
    layers = []
    offset = 0
    for n_in, n_out in itertools.pairwise(sizes):
        layers.append(Layer(offset, offset + n_out * n_in, n_out, n_in))
        offset += n_out * n_in + n_out
    return layers


def unpack(flat: NDArray, layers: Sequence[Layer]) -> list[tuple[NDArray, NDArray]]:
    """Views ``(W, b)`` per layer into a flat parameter (or gradient) vector.

    Parameters
    ----------
    flat : ndarray, shape (n_params,)
        Contiguous flat vector.
    layers : sequence of Layer
        The layout, from :func:`layout`.

    Returns
    -------
    list of (ndarray, ndarray)
        Writable views ``W`` of shape ``(n_out, n_in)`` (C order) and ``b`` of shape ``(n_out,)``.
    """
    return [
        (
            flat[L.w : L.w + L.n_out * L.n_in].reshape(L.n_out, L.n_in),
            flat[L.b : L.b + L.n_out],
        )
        for L in layers
    ]


def make_numpy(sizes: Sequence[int], dtype: DTypeLike = np.float64) -> Peer:
    """Hand-written NumPy matrix-form backprop.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n0, ..., nM]``.
    dtype : dtype-like
        Floating dtype of params, X and Y; all arithmetic stays in it.

    Returns
    -------
    callable
        ``f(params, X, Y) -> (loss, grad)`` with a freshly allocated ``grad``.
    """
    layers = layout(sizes)
    last = len(layers) - 1

    def value_and_grad(params: NDArray, X: NDArray, Y: NDArray) -> tuple[float, NDArray]:
        grad = np.empty_like(params)
        weights = unpack(params, layers)
        acts = [X]
        for i, (W, b) in enumerate(weights):
            z = acts[-1] @ W.T
            z += b
            if i < last:
                np.tanh(z, out=z)
            acts.append(z)
        delta = acts[-1] - Y
        loss = 0.5 * float(np.vdot(delta, delta)) / X.shape[0]
        delta *= delta.dtype.type(1.0 / X.shape[0])
        for i, (gW, gb) in reversed(list(enumerate(unpack(grad, layers)))):
            np.dot(delta.T, acts[i], out=gW)
            np.sum(delta, axis=0, out=gb)
            if i > 0:
                delta = delta @ weights[i][0]
                da = acts[i] * acts[i]
                np.subtract(1, da, out=da)
                delta *= da
        return loss, grad

    return value_and_grad


def _torch_loss(layers: Sequence[Layer], p: Any, X: Any, Y: Any) -> Any:
    """The batch loss as a PyTorch tensor, from the flat parameter tensor ``p``."""
    import torch

    a = X
    for i, L in enumerate(layers):
        W = p[L.w : L.w + L.n_out * L.n_in].view(L.n_out, L.n_in)
        a = torch.addmm(p[L.b : L.b + L.n_out], a, W.t())
        if i < len(layers) - 1:
            a = torch.tanh(a)
    return 0.5 * (a - Y).square().sum() / X.shape[0]


def make_torch(sizes: Sequence[int], dtype: DTypeLike = np.float64) -> Peer:
    """PyTorch eager autograd on ``torch.from_numpy`` views of the flat parameters.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n0, ..., nM]``.
    dtype : dtype-like
        Floating dtype (implied by the arrays passed in; kept for a uniform signature).

    Returns
    -------
    callable
        ``f(params, X, Y) -> (loss, grad)``; ``grad`` is a NumPy view of the autograd result.
    """
    import torch

    layers = layout(sizes)

    def value_and_grad(params: NDArray, X: NDArray, Y: NDArray) -> tuple[float, NDArray]:
        p = torch.from_numpy(params).requires_grad_(True)
        loss = _torch_loss(layers, p, torch.from_numpy(X), torch.from_numpy(Y))
        loss.backward()
        return loss.item(), p.grad.numpy()

    return value_and_grad


def make_jax(sizes: Sequence[int], dtype: DTypeLike = np.float64) -> Peer:
    """``jax.jit(jax.value_and_grad(loss))`` on the flat parameter vector.

    Enables ``jax_enable_x64`` when ``dtype`` is float64 (float32 inputs stay float32 either
    way, since every array passed in is explicitly typed).

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n0, ..., nM]``.
    dtype : dtype-like
        Floating dtype of params, X and Y.

    Returns
    -------
    callable
        ``f(params, X, Y) -> (loss, grad)``; waits for the result and copies it back to NumPy.
    """
    import jax
    import jax.numpy as jnp

    if np.dtype(dtype) == np.float64:
        jax.config.update("jax_enable_x64", True)
    layers = layout(sizes)
    last = len(layers) - 1

    def loss_fn(p: Any, x: Any, y: Any) -> Any:
        a = x
        for i, L in enumerate(layers):
            W = p[L.w : L.w + L.n_out * L.n_in].reshape(L.n_out, L.n_in)
            a = a @ W.T + p[L.b : L.b + L.n_out]
            if i < last:
                a = jnp.tanh(a)
        return 0.5 * jnp.sum(jnp.square(a - y)) / x.shape[0]

    jitted = jax.jit(jax.value_and_grad(loss_fn))

    def value_and_grad(params: NDArray, X: NDArray, Y: NDArray) -> tuple[float, NDArray]:
        loss, grad = jitted(params, X, Y)
        grad.block_until_ready()
        return float(loss), np.asarray(grad)

    return value_and_grad


def make_gemm(sizes: Sequence[int], dtype: DTypeLike = np.float64) -> Peer:
    """The GEMM floor: only the matrix products of the matrix form, back to back.

    Forward: ``A[l] = A[l-1] @ W[l].T`` for every layer. Backward: ``dW[l] = D[l].T @ A[l-1]``
    for every layer and ``D[l-1] = D[l] @ W[l]`` for every layer but the first. All products go
    through ``np.dot(..., out=...)`` into preallocated buffers; no bias, activation or loss work.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n0, ..., nM]``.
    dtype : dtype-like
        Floating dtype of the buffers (must match params and X).

    Returns
    -------
    callable
        ``f(params, X, Y) -> None``. The buffers are allocated on the first call (or when the
        batch size changes) and the weight views are reused while the same ``params`` array is
        passed, so after one warm-up call a call does nothing but the GEMMs.
    """
    layers = layout(sizes)
    state: dict[str, Any] = {"batch": None, "params": None}

    def allocate(batch: int) -> None:
        rng = np.random.default_rng(0)
        state["batch"] = batch
        state["acts"] = [np.zeros((batch, n), dtype=dtype) for n in sizes[1:]]
        state["deltas"] = [np.zeros((batch, n), dtype=dtype) for n in sizes[1:]]
        # A fixed random output delta: nothing drifts between calls, no denormals.
        state["deltas"][-1][...] = rng.standard_normal((batch, sizes[-1]))
        state["dW"] = [np.zeros((L.n_out, L.n_in), dtype=dtype) for L in layers]

    def gemms(params: NDArray, X: NDArray, Y: NDArray) -> None:
        if state["batch"] != X.shape[0]:
            allocate(X.shape[0])
        if state["params"] is not params:
            state["params"] = params
            state["weights"] = [W for W, _ in unpack(params, layers)]
        weights, acts, deltas, dW = state["weights"], state["acts"], state["deltas"], state["dW"]
        inputs = [X, *acts[:-1]]
        for W, a_in, a_out in zip(weights, inputs, acts, strict=True):
            np.dot(a_in, W.T, out=a_out)
        for i in range(len(layers) - 1, -1, -1):
            np.dot(deltas[i].T, inputs[i], out=dW[i])
            if i > 0:
                np.dot(deltas[i], weights[i], out=deltas[i - 1])

    return gemms


def _torch_cuda_step(sizes: Sequence[int], dtype: DTypeLike) -> tuple[Callable, Callable]:
    """``(load, step)`` for the PyTorch CUDA peers: ``load(params, X, Y)`` copies a problem to
    the GPU once (the same arrays again cost nothing), ``step()`` computes the loss and the
    gradient there, into fixed tensors, and returns them. TF32 is off: float32 stays float32."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    layers = layout(sizes)
    state: dict[str, Any] = {"key": None}

    def load(params: NDArray, X: NDArray, Y: NDArray) -> None:
        key = (id(params), id(X), id(Y))
        if state["key"] != key:
            state["key"] = key
            state["p"] = torch.from_numpy(params).cuda().requires_grad_(True)
            state["X"], state["Y"] = torch.from_numpy(X).cuda(), torch.from_numpy(Y).cuda()

    def step() -> tuple[Any, Any]:
        p = state["p"]
        p.grad = None
        loss = _torch_loss(layers, p, state["X"], state["Y"])
        loss.backward()
        return loss, p.grad

    return load, step


def make_torch_cuda(sizes: Sequence[int], dtype: DTypeLike = np.float64) -> Peer:
    """PyTorch eager autograd on the GPU, the problem copied there once (TF32 off).

    Returns
    -------
    callable
        ``f(params, X, Y) -> (loss, grad)``: ``grad`` a CUDA tensor; waits for the GPU (it reads
        the loss).
    """
    load, step = _torch_cuda_step(sizes, dtype)

    def value_and_grad(params: NDArray, X: NDArray, Y: NDArray) -> tuple[float, Any]:
        load(params, X, Y)
        loss, grad = step()
        return loss.item(), grad

    return value_and_grad


def make_torch_cuda_graph(sizes: Sequence[int], dtype: DTypeLike = np.float64) -> Peer:
    """PyTorch on the GPU replaying a CUDA graph of one whole gradient step (TF32 off): the
    launch cost of eager mode gone, the floor of what PyTorch can do per call.

    Returns
    -------
    callable
        ``f(params, X, Y) -> (loss, grad)``: ``grad`` a CUDA tensor; waits for the GPU.
    """
    import torch

    load, step = _torch_cuda_step(sizes, dtype)
    state: dict[str, Any] = {"key": None}

    def value_and_grad(params: NDArray, X: NDArray, Y: NDArray) -> tuple[float, Any]:
        load(params, X, Y)
        key = (id(params), id(X), id(Y))
        if state["key"] != key:  # capture, after warm-up steps on a side stream
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                state["out"] = step()
            state["key"], state["graph"] = key, graph
        state["graph"].replay()
        loss, grad = state["out"]
        return loss.item(), grad

    return value_and_grad


#: Peer name -> (factory, module it needs, or None).
PEERS: dict[str, tuple[Callable[..., Peer], str | None]] = {
    "numpy": (make_numpy, None),
    "torch": (make_torch, "torch"),
    "jax": (make_jax, "jax"),
    "gemm": (make_gemm, None),
    "torch-cuda": (make_torch_cuda, "torch"),
    "torch-cuda-graph": (make_torch_cuda_graph, "torch"),
}
#: The peers that also need a CUDA GPU that PyTorch can use.
GPU_PEERS = ("torch-cuda", "torch-cuda-graph")


@functools.cache
def _importable(module: str | None) -> bool:
    if module is None:
        return True
    try:
        importlib.import_module(module)
    except Exception:  # any import failure means "not available"
        return False
    return True


@functools.cache
def _torch_sees_a_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def unavailable_reason(name: str) -> str | None:
    """Why peer ``name`` cannot run here (its library is missing, or it needs a GPU), or
    ``None``."""
    module = PEERS[name][1]
    if not _importable(module):
        return f"{module} is not installed"
    if name in GPU_PEERS and not _torch_sees_a_gpu():
        return "PyTorch sees no CUDA GPU"
    return None


def available_peers() -> list[str]:
    """Names of the peers that can run here, in :data:`PEERS` order."""
    return [name for name in PEERS if unavailable_reason(name) is None]
