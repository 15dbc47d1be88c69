"""The checks of :mod:`fastprop.dask`'s arguments, made on the Dask arrays' metadata alone
(shape, dtype, chunks), before anything is computed.

The rules on shapes and dtypes are fastprop's own (:mod:`fastprop._validate`), applied to a
one-sample stand-in of each array, so a Dask array gets the message a NumPy array would. The
rules on chunks are this module's: the samples may be split into chunks of any sizes, the
columns may not, and ``X``, ``Y`` and ``sample_weight`` must split the samples alike.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import dask.array as da
import numpy as np

from .. import _validate as v
from ..backends import BACKENDS
from ..network import MLP


class Samples(NamedTuple):
    """Checked data: the arrays, and where each chunk's samples start and stop."""

    X: da.Array
    Y: da.Array | None
    sample_weight: da.Array | None
    bounds: list[tuple[int, int]]


def check_network(net: object) -> MLP:
    """``net``, which must be a :class:`fastprop.MLP`."""
    if not isinstance(net, MLP):
        raise TypeError(f"net must be a fastprop.MLP, got {type(net).__name__}")
    return net


def check_params(net: MLP, params: object) -> np.ndarray:
    """``params`` as :meth:`fastprop.MLP.value_and_grad` takes it (a NumPy array)."""
    return v.check_array("params", params, net.dtype, net.n_params)


def check_backend(backend: object) -> str:
    """A backend name of :data:`fastprop.BACKENDS` (the workers load it)."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
    return backend


def _dask_array(name: str, array: object) -> da.Array:
    if not isinstance(array, da.Array):
        raise TypeError(f"{name} must be a dask array (dask.array.from_array({name}, "
                        f"chunks=(rows, -1)) makes one), got {type(array).__name__}")
    if any(math.isnan(size) for sizes in array.chunks for size in sizes):
        raise ValueError(f"{name} has chunks of unknown size: call "
                         f"{name}.compute_chunk_sizes() first")
    return array


def _stand_in(array: da.Array) -> np.ndarray:
    """A NumPy array of ``array``'s shape and dtype, for fastprop's own checks: zeros, which
    take no memory until they are read (only labels of another integer type than int64 are)."""
    return np.zeros(array.shape, dtype=array.dtype)


def _same_chunks(name: str, array: da.Array, X: da.Array) -> None:
    if array.shape[0] != X.shape[0]:
        raise ValueError(f"{name} has {array.shape[0]} samples, X has {X.shape[0]}")
    if array.chunks[0] != X.chunks[0]:
        raise ValueError(f"{name} must be chunked along the samples as X is: its chunks are "
                         f"{array.chunks[0]}, X's are {X.chunks[0]} "
                         f"({name}.rechunk({{0: X.chunks[0]}}) matches them)")
    if array.ndim == 2 and len(array.chunks[1]) != 1:
        raise ValueError(f"{name} must be chunked along the samples only: its columns are split "
                         f"into {len(array.chunks[1])} chunks ({name}.rechunk({{1: -1}}) joins "
                         f"them)")


def check_samples(net: MLP, X: object, Y: object = None, sample_weight: object = None, *,
                  targets: bool = True) -> Samples:
    """``X``, ``Y`` (when ``targets``) and ``sample_weight``, checked as the network's data.

    ``X`` must be a 2-D Dask array of the network's dtype and input width, chunked along the
    samples only; ``Y`` as :meth:`fastprop.MLP.value_and_grad` takes targets, chunked as ``X``;
    ``sample_weight`` None or a 1-D Dask array of real numbers, chunked as ``X``.
    """
    X = _dask_array("X", X)
    v.check_array("X", _stand_in(X), net.dtype, None, net.n_inputs)
    if len(X.chunks[1]) != 1:
        raise ValueError(f"X must be chunked along the samples only: its columns are split into "
                         f"{len(X.chunks[1])} chunks (X.rechunk({{1: -1}}) joins them)")
    if targets:
        Y = _dask_array("Y", Y)
        v.check_targets(_stand_in(Y), net.loss_name, net.dtype, X.shape[0], net.n_outputs)
        _same_chunks("Y", Y, X)
    if sample_weight is not None:
        sample_weight = _dask_array("sample_weight", sample_weight)
        if sample_weight.ndim != 1 or sample_weight.dtype.kind not in "iuf":
            raise TypeError(f"sample_weight must be a 1-D dask array of real numbers, got "
                            f"shape {sample_weight.shape} and dtype {sample_weight.dtype}")
        _same_chunks("sample_weight", sample_weight, X)
    stops = np.cumsum(X.chunks[0]).tolist()
    bounds = list(zip([0, *stops[:-1]], stops, strict=True))
    return Samples(X, Y if targets else None, sample_weight, bounds)


def check_split_every(split_every: Any) -> int:
    """The fan-in of the reduction tree, an integer from 2 up."""
    return v.check_integer("split_every", split_every, 2)
