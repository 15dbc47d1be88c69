"""Compiled pieces that both CPU backends share: input value checks, views, the L2 term.

Every backend's entry point has the same signature::

    value_and_grad(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite, grad,
                   work, n_threads) -> (status, loss)
    loss(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite, work, n_threads)
        -> (status, loss)
    forward(layout, params, X, check_finite, out, work, n_threads) -> status

Both backends also have ``serial_value_and_grad``, with ``value_and_grad``'s signature, which
never splits a batch among threads, and ``splits(layout, batch, n_threads)``, which says whether
``value_and_grad`` would: :class:`fastprop.cpu.backend.CpuBackend` calls the serial entry point
for a batch that does not split, so that numba compiles the parallel code only for one that does.

``weights`` holds one weight per sample (ones for an unweighted batch): the loss is the weighted
mean ``sum w_i l_i / sum w_i`` plus the L2 term. ``n_threads`` is the number of threads the call
may use (``numba.get_num_threads()`` in the caller; compiled code that asks numba itself cannot be
cached), ``work`` a buffer of at least ``workspace_size(layout, batch, n_threads)`` elements.

Each entry point starts with :func:`check_values`, which reads the inputs (already checked for
shape, dtype and layout in Python, so every read is in bounds) and returns a nonzero status before
anything is written when a value is bad. ``fastprop._validate.raise_for_status`` turns the status
into a ``ValueError`` that names the argument.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit
from .._kernel_ids import (
    LABEL_OUT_OF_RANGE,
    OK,
    OUT_OVERLAPS_INPUT,
    PARAMS_NOT_FINITE,
    X_NOT_FINITE,
    Y_NOT_FINITE,
)
from .._layout import A_OFF, ACT, B_OFF, N_IN, N_OUT, W_OFF
from .views import borrowed, matrix_view


@jit(fastmath={"reassoc"})
def all_finite(values):
    """True when no element of the contiguous array ``values`` is NaN or +-inf.

    Sums ``v - v`` (0 for finite ``v``, NaN otherwise); ``reassoc`` lets the sums vectorise and
    does not allow ``v - v`` to be folded to 0 (that would need ``nnan``/``ninf``). The two halves
    are summed side by side: two independent chains of SIMD additions, where a single chain waits
    for each addition to finish before the next.
    """
    flat = values.reshape(values.size)
    half = flat.shape[0] // 2
    first = second = flat.dtype.type(0)
    for k in range(half):
        first += flat[k] - flat[k]
        second += flat[half + k] - flat[half + k]
    if flat.shape[0] % 2:
        first += flat[2 * half] - flat[2 * half]
    return first + second == 0


@jit
def check_values(layout, params, X, Y, labels, check_finite):
    """Status of the input values: labels always (they index memory), finiteness on request."""
    if labels.shape[0] > 0:
        n_classes = layout[layout.shape[0] - 1, N_OUT]
        out_of_range = False
        for k in range(labels.shape[0]):
            out_of_range |= (labels[k] < 0) | (labels[k] >= n_classes)
        if out_of_range:
            return LABEL_OUT_OF_RANGE
    if check_finite:
        if not all_finite(X):
            return X_NOT_FINITE
        if not all_finite(Y):
            return Y_NOT_FINITE
        if not all_finite(params):
            return PARAMS_NOT_FINITE
    return OK


@jit
def check_forward_values(layout, params, X, out, check_finite):
    """:func:`check_values` for a forward pass, which has no targets."""
    no_targets = np.empty((0, out.shape[1]), dtype=out.dtype)
    return check_values(layout, params, X, no_targets, np.empty(0, np.int64), check_finite)


@jit(inline="always")
def _overlap(a, b):
    """Whether the memory of arrays ``a`` and ``b`` overlaps (address ranges intersect)."""
    a_start = a.ctypes.data
    b_start = b.ctypes.data
    return a_start < b_start + b.size * b.itemsize and b_start < a_start + a.size * a.itemsize


@jit
def check_gradient_inputs(layout, params, X, Y, labels, check_finite, grad):
    """:func:`check_values`, and that ``grad`` overlaps none of the inputs it is computed from."""
    if (_overlap(grad, params) or _overlap(grad, X) or _overlap(grad, Y)
            or _overlap(grad, labels)):
        return OUT_OVERLAPS_INPUT
    return check_values(layout, params, X, Y, labels, check_finite)


@jit(inline="always")
def weights(flat, layout, layer):
    """Views ``(W, b)`` of layer ``layer`` in the flat vector ``flat`` (parameters or gradient)."""
    n_in = layout[layer, N_IN]
    n_out = layout[layer, N_OUT]
    w_off = layout[layer, W_OFF]
    b_off = layout[layer, B_OFF]
    return matrix_view(flat, w_off, n_out, n_in), borrowed(flat)[b_off:b_off + n_out]


@jit(inline="always")
def activations(work, layout, layer, batch):
    """View ``(batch, n_out)`` of layer ``layer``'s activations in the workspace ``work``."""
    return matrix_view(work, batch * layout[layer, A_OFF], batch, layout[layer, N_OUT])


@jit(inline="always")
def weight_scale(sample_weights):
    """``1 / sum(sample_weights)``, summed in float64: exactly ``1 / batch`` for unit weights."""
    total = 0.0
    for w in sample_weights:
        total += w
    return 1.0 / total


@jit(inline="always")
def parameter_count(layout):
    """Length of the flat parameter vector."""
    last = layout.shape[0] - 1
    return layout[last, B_OFF] + layout[last, N_OUT]


@jit(inline="always")
def total_width(layout):
    """Sum of the output widths of all layers."""
    last = layout.shape[0] - 1
    return layout[last, A_OFF] + layout[last, N_OUT]


@jit(inline="always")
def activation_id(layout, layer):
    """Activation id of layer ``layer``."""
    return layout[layer, ACT]


@jit(inline="always")
def layer_weights(flat, layout, layer):
    """Layer ``layer``'s weights in ``flat`` as one borrowed 1-D slice (loops over it start at 0,
    so numba's negative-index wraparound is provably dead and they vectorise; a loop from
    ``layout[layer, W_OFF]`` does not vectorise)."""
    return borrowed(flat)[layout[layer, W_OFF]:layout[layer, B_OFF]]


@jit(fastmath={"reassoc"})
def l2_penalty(layout, params, l2):
    """``l2 / 2 * sum ||W||^2`` over every layer's weights (not the biases); ``reassoc`` lets the
    sum of squares run in SIMD lanes (as one serial chain of additions it would cost a good part
    of a small network's gradient)."""
    squares = l2 * 0
    if l2 != 0:
        for layer in range(layout.shape[0]):
            W = layer_weights(params, layout, layer)
            for k in range(W.shape[0]):
                squares += W[k] * W[k]
    return squares * l2 * type(l2)(0.5)


@jit
def add_l2(layout, params, l2, grad):
    """Add ``l2 * W``, the gradient of :func:`l2_penalty`, to every weight gradient."""
    if l2 != 0:
        for layer in range(layout.shape[0]):
            W = layer_weights(params, layout, layer)
            dW = layer_weights(grad, layout, layer)
            for k in range(W.shape[0]):
                dW[k] += l2 * W[k]


@jit(inline="always")
def add_combination(coefficients, rows, out):
    """``out += sum_r coefficients[r] * rows[r]`` over every row of the 2-D ``rows``.

    Four rows per pass over ``out``: the four products share each load and store of ``out`` and
    run as independent chains, where one row at a time makes every addition wait for the previous
    one through memory. The sum is grouped ``((c0 v0 + c1 v1) + (c2 v2 + c3 v3))``.

    Inlined: the naive backend calls it for every row of the gradient, and at batch 1 a call
    costs more than the arithmetic of a row.
    """
    n = rows.shape[0]
    r = 0
    while r + 4 <= n:
        c0, c1 = coefficients[r], coefficients[r + 1]
        c2, c3 = coefficients[r + 2], coefficients[r + 3]
        v0, v1, v2, v3 = rows[r], rows[r + 1], rows[r + 2], rows[r + 3]
        for k in range(out.shape[0]):
            out[k] += (c0 * v0[k] + c1 * v1[k]) + (c2 * v2[k] + c3 * v3[k])
        r += 4
    for rest in range(r, n):
        c = coefficients[rest]
        v = rows[rest]
        for k in range(out.shape[0]):
            out[k] += c * v[k]
