"""Loop-form backpropagation (seed 000, step 2), compiled with Numba: no BLAS, explicit loops.

Per sample and per layer, from the top down, for each neuron ``j`` of layer ``m``::

    delta_j^(m) = f'(z_j^(m)) * sum_h w_hj^(m+1) delta_h^(m+1)
    dL/dw_ji^(m) += delta_j^(m) * a_i^(m-1),      dL/db_j^(m) += delta_j^(m)

which is O(M H^2) per sample. The loops are nested ``h`` outside, ``j`` inside, so that ``W`` is
read row by row, four rows ``h`` at a time: the sum over ``h`` runs in increasing ``h`` for every
``j``, in groups of four (``((w_0 d_0 + w_1 d_1) + (w_2 d_2 + w_3 d_3))`` added to the running
sum), which keeps four independent chains of additions in flight instead of one
(:func:`fastprop.cpu.common.add_combination`, shared with the matrix backend's single-sample
product).

Parallelism and determinism: the batch is cut into ``n_chunks = min(batch, numba threads)``
contiguous chunks, each run by one thread with its own gradient accumulator and per-sample
buffers; after the parallel loop the accumulators are added up in chunk order. The result depends
only on the inputs and the thread count, and is bitwise the same on every call. A batch in one
chunk (one sample, or one thread) accumulates straight into the gradient.

A chunk runs its samples two at a time: each sample's forward pass and deltas, then one pass
over the accumulator adds both samples' ``delta_j a_i`` (:func:`_add_gradients`), reading and
writing each of its elements once per pair. The first pair of a chunk writes its gradient
instead of adding it, so no accumulator is ever zeroed.

Workspace per chunk (see :func:`workspace_size`): a gradient accumulator (``n_params``), then for
each of two samples its input and every layer's activations side by side and every layer's
delta; then one loss slot per chunk.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from .._layout import A_OFF, N_IN, N_OUT
from ..activations import activate, derivative
from ..losses import loss_and_delta, output_activation
from .common import (
    OK,
    activation_id,
    add_combination,
    add_l2,
    check_forward_values,
    check_gradient_inputs,
    check_values,
    l2_penalty,
    parameter_count,
    total_width,
    weights,
)
from .views import borrowed


def workspace_size(layout: np.ndarray, batch: int, n_threads: int) -> int:
    """Length of the workspace for ``batch`` samples split among ``n_threads`` threads."""
    return min(batch, n_threads) * (_chunk_size(layout) + 1)


def uses_threads(batch: int) -> bool:
    """Whether a batch of ``batch`` samples may split among threads (any batch of two or more)."""
    return batch > 1


@jit
def _chunk_size(layout):
    """A chunk's gradient accumulator, then two samples' buffers (:func:`_sample_size`)."""
    return parameter_count(layout) + 2 * _sample_size(layout)


@jit(inline="always")
def _sample_size(layout):
    """One sample's input and activations side by side, then every layer's delta."""
    return layout[0, N_IN] + 2 * total_width(layout)


@jit(inline="always")
def _sample_parts(layout, buffer):
    """``(acts, deltas)``: a sample's input and activations side by side, and every layer's
    delta, at the start of ``buffer`` (at least :func:`_sample_size` long)."""
    n_acts = layout[0, N_IN] + total_width(layout)
    return buffer[:n_acts], buffer[n_acts:n_acts + total_width(layout)]


@jit(inline="always")
def _layer_delta(layout, deltas, layer):
    """View of layer ``layer``'s delta in a sample's ``deltas`` row."""
    start = layout[layer, A_OFF]
    return deltas[start:start + layout[layer, N_OUT]]


@jit(inline="always")
def _layer_input(layout, acts, layer):
    """View of layer ``layer``'s input in the per-sample buffer ``acts``."""
    n_in = layout[layer, N_IN]
    start = layout[0, N_IN] + layout[layer, A_OFF] - n_in
    return acts[start:start + n_in]


@jit(fastmath={"reassoc"})
def _forward_sample(layout, params, x, acts):
    """One sample: ``acts = [x, a_1, ..., a_{L-1}, z_L]`` (the last layer's raw scores).

    ``reassoc`` lets each neuron's dot product run in SIMD lanes (a serial chain of
    dependent additions otherwise); NaN and infinity keep their IEEE meaning.
    """
    acts[:x.shape[0]] = x
    last = layout.shape[0] - 1
    for layer in range(layout.shape[0]):
        W, b = weights(params, layout, layer)
        a_in = _layer_input(layout, acts, layer)
        start = layout[0, N_IN] + layout[layer, A_OFF]
        a_out = acts[start:start + layout[layer, N_OUT]]
        act = activation_id(layout, layer)
        for j in range(a_out.shape[0]):
            z = b[j]
            for i in range(a_in.shape[0]):
                z += W[j, i] * a_in[i]
            a_out[j] = z if layer == last else activate(act, z)


@jit
def _sample(layout, loss_id, params, X, Y, labels, s, scale, buffer, with_grad):
    """Sample ``s``: its loss; its activations and, ``with_grad``, every layer's delta in
    ``buffer`` (see :func:`_sample_size`)."""
    acts, deltas = _sample_parts(layout, buffer)
    last = layout.shape[0] - 1
    n_out = layout[last, N_OUT]
    _forward_sample(layout, params, X[s], acts)
    loss = loss_and_delta(loss_id, activation_id(layout, last), acts[acts.shape[0] - n_out:], Y,
                          labels, s, scale, _layer_delta(layout, deltas, last))
    if with_grad:
        # delta_i^(prev) = f'(a_i) * sum_h w_hi delta_h, over h in increasing order, by fours.
        for layer in range(last, 0, -1):
            below = _layer_delta(layout, deltas, layer - 1)
            below[:] = 0
            W, _ = weights(params, layout, layer)
            add_combination(_layer_delta(layout, deltas, layer), W, below)
            a_in = _layer_input(layout, acts, layer)
            act = activation_id(layout, layer - 1)
            for i in range(below.shape[0]):
                below[i] *= derivative(act, a_in[i])
    return loss


@jit
def _add_gradients(layout, first, second, pair, acc, write):
    """Add the gradient of the sample in ``first``, and of the one in ``second`` when ``pair``,
    to ``acc`` (write it there when ``write``): ``dW_ji += d_j a_i + d'_j a'_i``. Two samples per
    pass read and write each accumulator element once for both: at width 512 the accumulator
    is megabytes, beyond the core's cache, and this traffic bounded the backend on two
    threads."""
    acts, deltas = _sample_parts(layout, first)
    acts2, deltas2 = _sample_parts(layout, second)
    for layer in range(layout.shape[0]):
        a = _layer_input(layout, acts, layer)
        d = _layer_delta(layout, deltas, layer)
        a2 = _layer_input(layout, acts2, layer)
        d2 = _layer_delta(layout, deltas2, layer)
        dW, db = weights(acc, layout, layer)
        for j in range(d.shape[0]):
            row = dW[j]
            if pair:
                p, q = d[j], d2[j]
                if write:
                    db[j] = p + q
                    for i in range(row.shape[0]):
                        row[i] = p * a[i] + q * a2[i]
                else:
                    db[j] += p + q
                    for i in range(row.shape[0]):
                        row[i] += p * a[i] + q * a2[i]
            elif write:
                db[j] = d[j]
                for i in range(row.shape[0]):
                    row[i] = d[j] * a[i]
            else:
                db[j] += d[j]
                for i in range(row.shape[0]):
                    row[i] += d[j] * a[i]


@jit
def _chunk(layout, loss_id, params, X, Y, labels, start, stop, scale, buffer, acc, with_grad):
    """Samples ``start:stop``, two at a time: their summed loss; the sum of their gradients
    written into ``acc`` (the chunk's accumulator in ``buffer``, or the gradient itself)."""
    size = _sample_size(layout)
    samples = buffer[parameter_count(layout):]
    first, second = samples[:size], samples[size:2 * size]
    total = scale * 0
    for s in range(start, stop, 2):
        pair = s + 1 < stop
        total += _sample(layout, loss_id, params, X, Y, labels, s, scale, first, with_grad)
        if pair:
            total += _sample(layout, loss_id, params, X, Y, labels, s + 1, scale, second,
                             with_grad)
        if with_grad:
            _add_gradients(layout, first, second, pair, acc, s == start)
    return total


@jit(parallel=True)
def _all_chunks(layout, loss_id, params, X, Y, labels, work, n_threads, grad, with_grad):
    """Run every chunk (in parallel when there are several); return the chunk count and loss.
    One chunk accumulates into ``grad``; several into their accumulators in ``work``."""
    batch = X.shape[0]
    size = _chunk_size(layout)
    n_params = params.shape[0]
    n_chunks = min(batch, n_threads, work.shape[0] // (size + 1))
    losses = work[n_chunks * size:n_chunks * size + n_chunks]
    scale = work.dtype.type(1) / batch
    if n_chunks == 1:
        losses[0] = _chunk(layout, loss_id, params, X, Y, labels, 0, batch, scale, work[:size],
                           grad, with_grad)
    else:
        for c in prange(n_chunks):
            losses[c] = _chunk(layout, loss_id, params, X, Y, labels, c * batch // n_chunks,
                               (c + 1) * batch // n_chunks, scale,
                               work[c * size:(c + 1) * size],
                               work[c * size:c * size + n_params], with_grad)
    total = losses[0]
    for c in range(1, n_chunks):  # in chunk order (not losses.sum(), which parallel=True would
        total += losses[c]        # turn into a parallel reduction with an allocation)
    return n_chunks, total * scale


@jit(parallel=True)
def _sum_accumulators(work, n_chunks, size, grad):
    """``grad = sum of the chunks' accumulators``, added in chunk order."""
    for k in prange(grad.shape[0]):
        total = work[k]
        for c in range(1, n_chunks):
            total += work[c * size + k]
        grad[k] = total


@jit
def value_and_grad(layout, loss_id, params, X, Y, labels, l2, check_finite, grad, work,
                   n_threads):
    """Loss and its gradient (written into ``grad``); returns ``(status, loss)``."""
    layout, params, X, Y = borrowed(layout), borrowed(params), borrowed(X), borrowed(Y)
    labels, grad, work = borrowed(labels), borrowed(grad), borrowed(work)
    status = check_gradient_inputs(layout, params, X, Y, labels, check_finite, grad)
    if status != OK:
        return status, l2 * 0
    n_chunks, loss = _all_chunks(layout, loss_id, params, X, Y, labels, work, n_threads, grad,
                                 True)
    if n_chunks > 1:
        _sum_accumulators(work, n_chunks, _chunk_size(layout), grad)
    add_l2(layout, params, l2, grad)
    return OK, loss + l2_penalty(layout, params, l2)


@jit
def loss(layout, loss_id, params, X, Y, labels, l2, check_finite, work, n_threads):
    """The loss alone (forward pass only); returns ``(status, loss)``."""
    layout, params, X, Y = borrowed(layout), borrowed(params), borrowed(X), borrowed(Y)
    labels, work = borrowed(labels), borrowed(work)
    status = check_values(layout, params, X, Y, labels, check_finite)
    if status != OK:
        return status, l2 * 0
    no_grad = work[:0]
    _, total = _all_chunks(layout, loss_id, params, X, Y, labels, work, n_threads, no_grad,
                           False)
    return OK, total + l2_penalty(layout, params, l2)


@jit
def forward(layout, params, X, check_finite, out, work, n_threads):
    """Network outputs (after the output activation) written into ``out``; returns the status."""
    layout, params, X = borrowed(layout), borrowed(params), borrowed(X)
    out, work = borrowed(out), borrowed(work)
    status = check_forward_values(layout, params, X, out, check_finite)
    if status != OK:
        return status
    acts, _ = _sample_parts(layout, work)
    last = layout.shape[0] - 1
    scores = acts[acts.shape[0] - layout[last, N_OUT]:]
    for s in range(X.shape[0]):
        _forward_sample(layout, params, X[s], acts)
        output_activation(activation_id(layout, last), scores, out[s])
    return OK
