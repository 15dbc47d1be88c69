"""Loop-form backpropagation, compiled with Numba: no BLAS, explicit loops.

Per sample and per layer, from the top down, for each neuron ``j`` of layer ``m``::

    delta_j^(m) = f'(z_j^(m)) * sum_h w_hj^(m+1) delta_h^(m+1)
    dL/dw_ji^(m) += delta_j^(m) * a_i^(m-1),      dL/db_j^(m) += delta_j^(m)

which is O(M H^2) per sample. The sum over ``h`` runs row by row of ``W``, four rows at a time
(``((w_0 d_0 + w_1 d_1) + (w_2 d_2 + w_3 d_3))`` added to the running sum), which keeps four
independent chains of additions in flight instead of one
(:func:`fastprop.cpu.common.add_combination`, shared with the matrix backend's single-sample
product); the sum over samples of ``delta_j a_i`` is grouped the same way, four samples at a time.

The batch runs in groups of at most :data:`GROUP` samples, each in two phases:

1. **Samples.** Every sample's forward pass, loss and deltas, layer by layer. The samples are
   split among numba's threads in contiguous blocks. A thread takes each layer's weight matrix a
   band of rows at a time (:data:`BAND_ELEMENTS`) and runs all its samples over that band while
   the core's cache holds it, so the weights come from memory once per layer and thread, not once
   per sample.
2. **Gradient.** ``dL/dw_ji = sum_s delta_sj a_si`` for every weight. The rows ``j`` of every
   layer are split among the threads; each row of the gradient is summed over all the group's
   samples in increasing order, four at a time, and written once per group.

No thread has a gradient of its own, so there is nothing to add up after the parallel loops, and
every number is summed in the same order whatever the thread count: the result depends only on
the inputs, and is bitwise the same on any number of threads. (A gradient accumulator per
thread would add its memory traffic and a final sum to every call.)

Workspace (see :func:`workspace_size`): for a group of ``g`` samples, a copy of its inputs and
every layer's activations, each as a ``(g, width)`` matrix, then every layer's deltas the same
way, then one loss per sample (:func:`_group_parts`).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from .._kernel_ids import OK
from .._layout import A_OFF, N_IN, N_OUT
from ..activations import activate, derivative
from ..losses import loss_and_delta, output_activation
from .common import (
    activation_id,
    activations,
    add_combination,
    add_l2,
    check_forward_values,
    check_gradient_inputs,
    check_values,
    l2_penalty,
    total_width,
    weight_scale,
    weights,
)
from .views import borrowed, borrowed_input, matrix_view


def workspace_size(layout: np.ndarray, batch: int, n_threads: int) -> int:
    """Length of the workspace for ``batch`` samples (the same on any number of threads)."""
    return min(batch, GROUP) * (_group_width(layout) + 1)


def uses_threads(batch: int) -> bool:
    """Whether a batch of ``batch`` samples may split among threads (any batch of two or more)."""
    return batch > 1


def splits(layout: np.ndarray, batch: int, n_threads: int) -> bool:
    """Whether :func:`value_and_grad` splits a batch of ``batch`` samples among ``n_threads``
    threads. Where it does not, :func:`serial_value_and_grad` computes the same gradient, and a
    caller that takes it leaves the parallel code uncompiled."""
    return batch > 1 and n_threads > 1


#: Most samples run at once: their activations and deltas are kept, and the gradient is read and
#: written once per group. Bounds the workspace (at width 512 and depth 4, 64 samples take 2 MB
#: in float64); against a group's arithmetic, the gradient's traffic is a few percent.
GROUP = 64
#: Elements of a weight matrix (or of the gradient) per band of rows: 16 KiB of float64, which
#: the core's first-level cache holds, with four samples' rows, while samples go over it.
BAND_ELEMENTS = 2048


@jit(inline="always")
def _band_rows(n_in):
    """Rows per band of a matrix with ``n_in`` columns: :data:`BAND_ELEMENTS` elements in a
    multiple of four rows, at least four (:func:`add_combination` then groups a band's sum as it
    would the whole matrix's)."""
    return max(4, BAND_ELEMENTS // n_in // 4 * 4)


@jit(inline="always")
def _part_bounds(part, n_parts, n):
    """``(lo, hi)``: the bounds of part ``part`` of ``range(n)`` cut into ``n_parts`` contiguous
    parts (a thread's share of the samples or of the rows).

    The phases take ``part`` as an ``int64`` from every caller (``np.int64(0)``, not ``0``; not
    prange's ``uint64``): numba compiles a function again for each argument type, and for each
    constant argument (a literal type), with everything it calls, so constant or ``uint64``
    parts, and ``True``/``False`` flags, would compile this module's phases more than once."""
    part = np.int64(part)
    return part * n // n_parts, (part + 1) * n // n_parts


@jit(inline="always")
def _group_width(layout):
    """Workspace elements per sample of a group: its input and every layer's activations, then
    every layer's delta."""
    return layout[0, N_IN] + 2 * total_width(layout)


@jit(inline="always")
def _group_parts(layout, work, g):
    """``(acts, deltas, losses)`` of a group of ``g`` samples in ``work``: ``acts`` holds the
    group's inputs (a copy of its rows of ``X``), then every layer's activations, each a
    ``(g, width)`` matrix (:func:`_inputs`, :func:`_outputs`); ``deltas`` every layer's delta
    (:func:`fastprop.cpu.common.activations`); ``losses`` one loss per sample. Every view of
    them is built by :func:`~fastprop.cpu.views.matrix_view`, which raises ``IndexError`` where
    ``work`` is too short, so no write lands outside it."""
    n_acts = g * (layout[0, N_IN] + total_width(layout))
    n_deltas = g * total_width(layout)
    return (work[:n_acts], work[n_acts:n_acts + n_deltas],
            matrix_view(work, n_acts + n_deltas, 1, g)[0])


@jit(inline="always")
def _inputs(layout, acts, layer, g):
    """Layer ``layer``'s input rows in a group's ``acts``: the group's inputs for the first
    layer, the activations of the layer below for the others. One type for both, so that the
    layer loops compile once per dtype (reading ``X`` itself, they would compile again for each
    type ``X`` comes in: read-only, for one)."""
    n_in = layout[layer, N_IN]
    return matrix_view(acts, g * (layout[0, N_IN] + layout[layer, A_OFF] - n_in), g, n_in)


@jit(inline="always")
def _outputs(layout, acts, layer, g):
    """Layer ``layer``'s activations (the last layer's raw scores) in a group's ``acts``."""
    return matrix_view(acts, g * (layout[0, N_IN] + layout[layer, A_OFF]), g,
                       layout[layer, N_OUT])


@jit(fastmath={"reassoc"})
def _layer_forward(W, b, act, is_last, inputs, outputs, lo, hi):
    """``outputs[s] = act(W inputs[s] + b)`` (no activation when ``is_last``) for the samples
    ``lo:hi``, a band of ``W``'s rows at a time.

    ``reassoc`` lets each neuron's dot product run in SIMD lanes (a serial chain of dependent
    additions otherwise); NaN and infinity keep their IEEE meaning.
    """
    band = _band_rows(W.shape[1])
    for top in range(0, W.shape[0], band):
        rows = W[top:top + band]
        for s in range(lo, hi):
            a_in = inputs[s]
            a_out = outputs[s]
            for j in range(rows.shape[0]):
                z = b[top + j]
                for i in range(a_in.shape[0]):
                    z += rows[j, i] * a_in[i]
                a_out[top + j] = z if is_last else activate(act, z)


@jit
def _layer_deltas(W, act, deltas, below, acts_below, lo, hi):
    """``below[s] = act'(acts_below[s]) * (W^T deltas[s])`` for the samples ``lo:hi``: the sum
    over ``W``'s rows ``h`` in increasing order, by fours, a band of rows at a time."""
    for s in range(lo, hi):
        below[s] = 0
    band = _band_rows(W.shape[1])
    for top in range(0, W.shape[0], band):
        for s in range(lo, hi):
            add_combination(deltas[s, top:top + band], W[top:top + band], below[s])
    for s in range(lo, hi):
        d = below[s]
        a = acts_below[s]
        for i in range(d.shape[0]):
            d[i] *= derivative(act, a[i])


@jit
def _forward_part(layout, params, X, first, g, lo, hi, acts):
    """Samples ``lo:hi`` of the group of ``g`` samples from ``X[first]``: their inputs and
    every layer's activations (the last layer's raw scores) in ``acts``."""
    inputs = _inputs(layout, acts, 0, g)
    for s in range(lo, hi):  # element by element: a row assignment compiles a shape check
        row, x = inputs[s], X[first + s]  # whose error message costs seconds of compile time
        for k in range(x.shape[0]):
            row[k] = x[k]
    last = layout.shape[0] - 1
    for layer in range(layout.shape[0]):
        W, b = weights(params, layout, layer)
        _layer_forward(W, b, activation_id(layout, layer), layer == last,
                       _inputs(layout, acts, layer, g), _outputs(layout, acts, layer, g), lo, hi)


@jit
def _samples(layout, loss_id, params, X, Y, labels, sample_weights, first, g, part, n_parts, scale,
             work, with_grad):
    """Phase 1, share ``part`` of ``n_parts`` of the group of ``g`` samples from ``X[first]``:
    their activations, weighted losses and (``with_grad``) every layer's delta, in ``work``."""
    lo, hi = _part_bounds(part, n_parts, g)
    acts, deltas, losses = _group_parts(layout, work, g)
    _forward_part(layout, params, X, first, g, lo, hi, acts)
    last = layout.shape[0] - 1
    Z = _outputs(layout, acts, last, g)
    D = activations(deltas, layout, last, g)
    for s in range(lo, hi):
        w = sample_weights[first + s]
        losses[s] = w * loss_and_delta(loss_id, activation_id(layout, last), Z[s], Y, labels,
                                       first + s, w * scale, D[s])
    if with_grad:
        for layer in range(last, 0, -1):
            W, _ = weights(params, layout, layer)
            _layer_deltas(W, activation_id(layout, layer - 1),
                          activations(deltas, layout, layer, g),
                          activations(deltas, layout, layer - 1, g),
                          _outputs(layout, acts, layer - 1, g), lo, hi)


@jit
def _layer_gradient(inputs, deltas, dW, db, lo, hi, write):
    """Rows ``lo:hi`` of a layer's gradient: ``dW[j] = sum_s deltas[s, j] inputs[s]`` and
    ``db[j] = sum_s deltas[s, j]``, added to the rows there unless ``write``.

    A band of rows at a time, which stays in the core's cache while the samples go over it four
    at a time: each gradient element is read and written once, and each sample's input row read
    once per band. With ``write``, the first sample's term is written, not added to zeros (a
    pass over the rows less: at batch 1 the gradient is all the traffic there is).
    """
    band = _band_rows(dW.shape[1])
    start = 1 if write else 0
    for top in range(lo, hi, band):
        stop = min(top + band, hi)
        if write:
            a = inputs[0]
            for j in range(top, stop):
                row = dW[j]
                d = deltas[0, j]
                for i in range(row.shape[0]):
                    row[i] = d * a[i]
                db[j] = d
        for s in range(start, inputs.shape[0], 4):
            group = inputs[s:s + 4]
            for j in range(top, stop):
                add_combination(deltas[s:s + 4, j], group, dW[j])
        for j in range(top, stop):
            total = db[j]
            for s in range(start, deltas.shape[0]):
                total += deltas[s, j]
            db[j] = total


@jit
def _gradient_rows(layout, g, work, part, n_parts, grad, write):
    """Phase 2, share ``part`` of ``n_parts`` of every layer's rows: the group's gradient,
    written into ``grad`` (added to it unless ``write``)."""
    acts, deltas, _ = _group_parts(layout, work, g)
    for layer in range(layout.shape[0]):
        lo, hi = _part_bounds(part, n_parts, layout[layer, N_OUT])
        dW, db = weights(grad, layout, layer)
        _layer_gradient(_inputs(layout, acts, layer, g), activations(deltas, layout, layer, g),
                        dW, db, lo, hi, write)


@jit(parallel=True)
def _parallel_samples(layout, loss_id, params, X, Y, labels, sample_weights, first, g, scale,
                      work, n_parts, with_grad):
    """Phase 1 (:func:`_samples`) of a group, its samples split into ``n_parts`` contiguous
    blocks run in parallel."""
    for part in prange(n_parts):
        _samples(layout, loss_id, params, X, Y, labels, sample_weights, first, g, np.int64(part),
                 n_parts, scale, work, with_grad)


@jit(parallel=True)
def _parallel_gradient_rows(layout, g, work, n_parts, grad, write):
    """Phase 2 (:func:`_gradient_rows`) of a group, every layer's rows split into ``n_parts``
    blocks run in parallel."""
    for part in prange(n_parts):
        _gradient_rows(layout, g, work, np.int64(part), n_parts, grad, write)


@jit(inline="always")
def _group_loss(layout, work, g):
    """The summed weighted loss of a group of ``g`` samples, in sample order."""
    _, _, losses = _group_parts(layout, work, g)
    total = losses[0]
    for s in range(1, g):
        total += losses[s]
    return total


@jit
def _all_groups(layout, loss_id, params, X, Y, labels, sample_weights, work, n_threads, with_grad,
                grad):
    """Every group of the batch in turn, both phases of each (in parallel when ``n_threads`` is
    above one), the second (the gradient, into ``grad``) only with ``with_grad``; returns the
    weighted mean loss. Without ``with_grad``, ``grad`` is left alone (the loss alone). With
    ``n_threads`` None, all on the calling thread: None is a type of its own, and numba drops the
    parallel branch while it compiles, so the parallel phases are not compiled."""
    batch = X.shape[0]
    scale = weight_scale(sample_weights)
    total = scale * 0
    for first in range(0, batch, GROUP):
        g = min(GROUP, batch - first)
        if n_threads is None or min(g, n_threads) == 1:  # no parallel region (it buys nothing)
            _samples(layout, loss_id, params, X, Y, labels, sample_weights, first, g,
                     np.int64(0), np.int64(1), scale, work, with_grad)
            if with_grad:
                _gradient_rows(layout, g, work, np.int64(0), np.int64(1), grad, first == 0)
        else:
            n_parts = min(g, n_threads)
            _parallel_samples(layout, loss_id, params, X, Y, labels, sample_weights, first, g,
                              scale, work, n_parts, with_grad)
            if with_grad:
                _parallel_gradient_rows(layout, g, work, n_parts, grad, first == 0)
        total += _group_loss(layout, work, g)
    return total * scale


@jit(inline="always")
def _value_and_grad(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite, grad,
                    work, n_threads):
    """The body of :func:`value_and_grad` and :func:`serial_value_and_grad` (``n_threads``
    None)."""
    layout, grad, work = borrowed(layout), borrowed(grad), borrowed(work)
    params, X, Y = borrowed_input(params), borrowed_input(X), borrowed_input(Y)
    labels, sample_weights = borrowed_input(labels), borrowed_input(sample_weights)
    status = check_gradient_inputs(layout, params, X, Y, labels, check_finite, grad)
    if status != OK:
        return status, l2 * 0
    loss = _all_groups(layout, loss_id, params, X, Y, labels, sample_weights, work, n_threads,
                       np.bool_(True), grad)
    add_l2(layout, params, l2, grad)
    return OK, loss + l2_penalty(layout, params, l2)


@jit
def value_and_grad(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite, grad,
                   work, n_threads):
    """Loss and its gradient (written into ``grad``); returns ``(status, loss)``."""
    return _value_and_grad(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite,
                           grad, work, n_threads)


@jit
def serial_value_and_grad(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite,
                          grad, work, n_threads):
    """:func:`value_and_grad` on the calling thread (``n_threads`` is not read): the same result
    (the naive backend's is the same on any number of threads), and none of the parallel code to
    compile."""
    return _value_and_grad(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite,
                           grad, work, None)


@jit
def loss(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite, work, n_threads):
    """The loss alone (forward pass only); returns ``(status, loss)``."""
    layout, work = borrowed(layout), borrowed(work)
    params, X, Y = borrowed_input(params), borrowed_input(X), borrowed_input(Y)
    labels, sample_weights = borrowed_input(labels), borrowed_input(sample_weights)
    status = check_values(layout, params, X, Y, labels, check_finite)
    if status != OK:
        return status, l2 * 0
    # (``work[:0]`` stands in for the gradient: an array of its type, so that ``_all_groups``
    # compiles once for both entry points; it is never read or written)
    total = _all_groups(layout, loss_id, params, X, Y, labels, sample_weights, work, n_threads,
                        np.bool_(False), work[:0])
    return OK, total + l2_penalty(layout, params, l2)


@jit
def forward(layout, params, X, check_finite, out, work, n_threads):
    """Network outputs (after the output activation) written into ``out``; returns the status."""
    layout, out, work = borrowed(layout), borrowed(out), borrowed(work)
    params, X = borrowed_input(params), borrowed_input(X)
    status = check_forward_values(layout, params, X, out, check_finite)
    if status != OK:
        return status
    last = layout.shape[0] - 1
    for first in range(0, X.shape[0], GROUP):
        g = min(GROUP, X.shape[0] - first)
        acts, _, _ = _group_parts(layout, work, g)
        _forward_part(layout, params, X, first, g, np.int64(0), g, acts)
        scores = _outputs(layout, acts, last, g)
        for s in range(g):
            output_activation(activation_id(layout, last), scores[s], out[first + s])
    return OK
