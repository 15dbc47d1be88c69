"""Every check of user input, in Python, before any compiled code runs.

Policy (docs/usage.md describes it for users):

- Arrays are taken as they are, never copied or converted silently: ``params``, ``X``, float
  targets ``Y`` and ``out`` must be NumPy arrays of the network's dtype (``TypeError`` otherwise;
  convert once with ``.astype(net.dtype)``), C-contiguous (``ValueError``; use
  ``np.ascontiguousarray``), with the documented shapes (``ValueError``). The exceptions:
  integer labels, which may have any integer dtype and are converted to ``int64`` when they are not
  already; sample weights, which may be any real array-like (or one number for every sample), as
  in scikit-learn, and are copied to the network's dtype; and misaligned inputs (from a raw buffer
  at an odd offset), copied to aligned memory (see :func:`for_kernels`).
- Inputs may be read-only (nothing writes to them: the kernels take them as writable aliases,
  which run the code compiled for writable arrays); ``out`` must be writable and must not overlap
  ``params``, ``X`` or ``Y`` (an address-range test, done by the compiled entry point's first step
  with the value checks below: ``np.may_share_memory`` from Python cost more than the gradient of a
  small network).
- Values that need a pass over the data are checked by the compiled entry point's first step,
  before it writes anything (:func:`fastprop.cpu.common.check_values`), and reported here as
  ``ValueError`` by :func:`raise_for_status`: labels out of ``[0, n_outputs)`` always (they index
  memory), NaN or infinity in ``X``, ``Y`` or ``params`` unless ``check_finite=False``. The shapes
  checked here are what makes every read of that step in bounds.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from ._kernel_ids import (
    ACTIVATIONS,
    COMPATIBLE_OUTPUTS,
    LABEL_OUT_OF_RANGE,
    LOSSES,
    OUT_OVERLAPS_INPUT,
    OUTPUTS,
    PARAMS_NOT_FINITE,
    TARGET_KINDS,
    X_NOT_FINITE,
    Y_NOT_FINITE,
)
from ._layout import parameter_count

#: A dummy label array passed to the kernels when the targets are float rows. Writable, as
#: labels passed to the kernels are (see :func:`for_kernels`): with the same numba type, float rows
#: and labels run one compiled variant. (It has no element to write.)
NO_LABELS = np.empty(0, dtype=np.int64)

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """One of the strings ``choices``; ``ValueError`` naming them otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_integer(name: str, value: object, low: int | None = None,
                  high: int | None = None, *, high_name: str | None = None) -> int:
    """An integer (Python's or NumPy's, never a bool) from ``low`` to ``high``, as Python's
    ``int``: ``TypeError`` for a value of another type, ``ValueError`` for one out of range.
    ``high_name`` says what ``high`` is in the message (``"the number of samples"``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            bound = f">= {low}"
        else:
            upper = f"{high_name} ({high})" if high_name else str(high)
            bound = f"from {low} to {upper}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_real(name: str, value: object, low: float, high: float = math.inf, *,
               low_open: bool = False, high_open: bool = True) -> float:
    """A finite real number (never a bool) in the interval from ``low`` to ``high``, open or
    closed at each end, as Python's ``float``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (math.isfinite(value) and above and below):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return float(value)


def check_seed(seed: object) -> np.random.Generator:
    """A generator from ``seed``: None, a non-negative integer, a ``SeedSequence``, a bit
    generator or a ``Generator`` (passed through), as ``numpy.random.default_rng`` takes."""
    if not isinstance(seed, (np.random.Generator, np.random.BitGenerator,
                             np.random.SeedSequence)) and seed is not None:
        check_integer("seed", seed, 0)
    return np.random.default_rng(seed)


#: The largest network: its parameters must be addressable by the kernels' int64 offsets.
MAX_PARAMS = 2**62


def check_sizes(sizes: object) -> tuple[int, ...]:
    """Layer widths: a sequence (or 1-D integer array) of at least two positive integers whose
    parameter count the kernels can address."""
    if isinstance(sizes, np.ndarray):
        if sizes.ndim != 1:
            raise ValueError(f"sizes must be one-dimensional, got shape {sizes.shape}")
        sizes = sizes.tolist()
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise TypeError(f"sizes must be a sequence of integers, got {type(sizes).__name__}")
    if len(sizes) < 2:
        raise ValueError(f"sizes must hold the input width and at least one layer width, got "
                         f"{list(sizes)}")
    for width in sizes:
        if isinstance(width, (bool, np.bool_)) or not isinstance(width, numbers.Integral):
            raise TypeError(f"sizes must hold integers, got {width!r} in {list(sizes)}")
        if width < 1:
            raise ValueError(f"sizes must all be >= 1, got {list(sizes)}")
    sizes = tuple(int(width) for width in sizes)
    n_params = parameter_count(sizes)
    if n_params > MAX_PARAMS:
        raise ValueError(f"sizes {list(sizes)} make a network of {n_params:.3g} parameters "
                         f"({8 * n_params / 2**30:.3g} GiB in float64), more than fastprop can "
                         f"address ({MAX_PARAMS:.3g})")
    return sizes


def check_activations(activation: object, n_hidden: int) -> tuple[str, ...]:
    """One activation name per hidden layer, from one name or a list of names."""
    if isinstance(activation, str):
        return (check_choice("activation", activation, list(ACTIVATIONS)),) * n_hidden
    if not isinstance(activation, Sequence):
        raise TypeError(f"activation must be a name or a list of names, got {activation!r}")
    if len(activation) != n_hidden:
        raise ValueError(f"activation must name one activation per hidden layer ({n_hidden}), "
                         f"got {len(activation)}: {list(activation)}")
    return tuple(check_choice("activation", name, list(ACTIVATIONS)) for name in activation)


def check_output_and_loss(output: object, loss: object) -> tuple[str, str]:
    """A known output activation and a known loss that accepts it."""
    output = check_choice("output", output, list(OUTPUTS))
    loss = check_choice("loss", loss, list(LOSSES))
    if output not in COMPATIBLE_OUTPUTS[loss]:
        raise ValueError(f"loss {loss!r} needs output in {list(COMPATIBLE_OUTPUTS[loss])}, "
                         f"got output={output!r}")
    return output, loss


def check_l2(l2: object) -> float:
    """A finite, non-negative real number."""
    return check_real("l2", l2, 0.0)


def check_dtype(dtype: object) -> np.dtype:
    """``float32`` or ``float64``."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    # (np.dtype("float64") == None is True in NumPy, hence the explicit test)
    if dtype is None or resolved is None or resolved not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return resolved


def _check_ndarray(name: str, array: object) -> None:
    """A NumPy array, and not a masked one (the kernels would read the masked values)."""
    if isinstance(array, np.ma.MaskedArray):
        raise TypeError(f"{name} is a numpy masked array, whose mask fastprop cannot honour: "
                        f"pass {name}.filled(value), or drop the masked samples")
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")


def check_array(name: str, array: object, dtype: np.dtype, rows: int | None,
                cols: int | None = None) -> np.ndarray:
    """A C-contiguous ndarray of ``dtype``: shape ``(rows,)``, or ``(rows, cols)`` when ``cols``
    is given; ``rows=None`` accepts any number of rows from 1 up."""
    _check_ndarray(name, array)
    if array.dtype is not dtype and array.dtype != dtype:  # (`is`: NumPy's dtypes are singletons)
        raise TypeError(f"{name} has dtype {array.dtype}, but the network's dtype is {dtype}: "
                        f"convert it once with {name}.astype(np.{dtype})")
    shape = array.shape
    if (len(shape) != (1 if cols is None else 2) or (rows is not None and shape[0] != rows)
            or (cols is not None and shape[1] != cols)):
        expected = ("n" if rows is None else str(rows)) + ("," if cols is None else f", {cols}")
        raise ValueError(f"{name} must have shape ({expected}), got {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: a batch needs at least one sample")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous: pass np.ascontiguousarray({name})")
    return array


class _WritableInterface:
    """An array's memory described to NumPy as writable (see :func:`for_kernels`)."""

    __slots__ = ("__array_interface__", "array")

    def __init__(self, array: np.ndarray) -> None:
        interface = dict(array.__array_interface__)
        interface["data"] = (interface["data"][0], False)  # (address, read-only)
        self.__array_interface__ = interface
        self.array = array  # the alias's base keeps the memory alive


def for_kernels(array: np.ndarray) -> np.ndarray:
    """A checked input array as the compiled kernels take it: one numba type whatever its flags.

    numba compiles a function again for every type of its arguments, and an array's type
    includes whether it is writable and aligned. The kernels never write their inputs, so a
    read-only array (a memory map, a Dask chunk) is passed as a writable alias of its memory,
    made in a couple of microseconds, rather than compiling every entry point and epoch for it
    again. A misaligned array (only a raw buffer at an odd offset makes one) is copied.
    """
    if not array.flags.aligned:
        return array.copy()
    if array.flags.writeable:
        return array
    return np.asarray(_WritableInterface(array))


def check_targets(Y: object, loss: str, dtype: np.dtype, batch: int,
                  n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``(Y_rows, labels)`` for the kernels (see :func:`for_kernels`): one of them holds the
    targets, the other is empty."""
    kind = TARGET_KINDS[loss]
    _check_ndarray("Y", Y)
    if Y.dtype.kind in "iu" and kind != "rows":
        if Y.ndim != 1 or Y.shape[0] != batch:
            raise ValueError(f"Y must hold one integer label per sample, shape ({batch},), got "
                             f"{Y.shape}")
        if Y.dtype != np.int64 or not Y.flags.c_contiguous:
            Y = np.ascontiguousarray(Y, dtype=np.int64)
        return np.empty((0, n_out), dtype=dtype), for_kernels(Y)
    if kind == "labels":
        raise TypeError(f"loss {loss!r} needs Y as integer class labels of shape ({batch},), "
                        f"got dtype {Y.dtype}")
    if Y.ndim == 1 and n_out == 1 and Y.dtype.kind == "f":
        Y = Y.reshape(batch, 1) if Y.shape[0] == batch else Y
    elif Y.ndim == 1 and kind == "either":
        raise TypeError(f"Y of shape {Y.shape} must hold integer class labels, got dtype "
                        f"{Y.dtype}; or pass rows of targets of shape ({batch}, {n_out})")
    return for_kernels(check_array("Y", Y, dtype, batch, n_out)), NO_LABELS


def check_sample_weight(sample_weight: object, dtype: np.dtype, batch: int) -> np.ndarray:
    """Sample weights as the kernels take them: a new C-contiguous array of ``dtype`` and shape
    ``(batch,)``, finite, non-negative, with a positive sum.

    As in scikit-learn, any real array-like of one weight per sample is accepted, and so is one
    number for every sample. Negative weights and an all-zero vector are refused (scikit-learn's
    MLPs would return a negative or NaN loss for them).
    """
    if isinstance(sample_weight, np.ma.MaskedArray):
        _check_ndarray("sample_weight", sample_weight)
    if isinstance(sample_weight, (str, bytes)) or sample_weight is None:
        raise TypeError(f"sample_weight must be real numbers, got {sample_weight!r}")
    try:
        weights = np.asarray(sample_weight)
    except (TypeError, ValueError) as error:
        raise TypeError(f"sample_weight must be an array of real numbers: {error}") from None
    if weights.dtype.kind not in "iuf":
        raise TypeError(f"sample_weight must hold real numbers, got dtype {weights.dtype}")
    if weights.ndim == 0:
        weights = np.full(batch, weights)
    if weights.shape != (batch,):
        raise ValueError(f"sample_weight must have shape ({batch},), one weight per sample, got "
                         f"{weights.shape}")
    with np.errstate(over="ignore"):  # (a weight too large for dtype: refused below)
        weights = np.array(weights, dtype=dtype, order="C")
    if not np.isfinite(weights).all():
        raise ValueError(f"sample_weight must be finite in {dtype}, got NaN or infinity")
    if (weights < 0).any():
        first = int(np.flatnonzero(weights < 0)[0])
        raise ValueError(f"sample_weight must be non-negative, got {weights[first]} at index "
                         f"{first}")
    if not weights.sum(dtype=np.float64) > 0:
        raise ValueError("sample_weight must have a positive sum: every weight is zero")
    return weights


def check_flag(name: str, value: object) -> bool:
    """``True`` or ``False`` (Python's or NumPy's), as Python's ``bool``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_out(out: object, dtype: np.dtype, n_params: int) -> np.ndarray:
    """A writable gradient buffer of the parameters' layout (overlap: see the module notes)."""
    check_array("out", out, dtype, n_params)
    if not out.flags.writeable:
        raise ValueError("out is read-only: pass a writable array")
    return out


_STATUS_MESSAGES = {
    LABEL_OUT_OF_RANGE: "Y holds a label outside [0, {n_out}): labels are class indices",
    X_NOT_FINITE: "X holds NaN or infinity",
    Y_NOT_FINITE: "Y holds NaN or infinity",
    PARAMS_NOT_FINITE: "params holds NaN or infinity",
    OUT_OVERLAPS_INPUT: "out overlaps params, X or Y: pass a separate array",
}


def raise_for_status(status: int, n_out: int) -> None:
    """Raise the ``ValueError`` for a nonzero status from a compiled entry point."""
    if status:
        message = _STATUS_MESSAGES[status].format(n_out=n_out)
        if status in (X_NOT_FINITE, Y_NOT_FINITE, PARAMS_NOT_FINITE):
            message += " (pass check_finite=False to skip this check)"
        raise ValueError(message)
