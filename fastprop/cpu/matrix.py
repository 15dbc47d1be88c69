"""Matrix-form backpropagation over a whole batch, compiled with Numba.

For a batch ``A_0 = X`` of shape ``(batch, n_0)``::

    forward    A_l = f_l(A_{l-1} W_l^T + b_l)                         one GEMM, one fused pass
    output     D_L = diag(w / sum w) dloss/dZ_L, weighted losses      one fused pass
    backward   dW_l = D_l^T A_{l-1},  db_l = column sums of D_l       one GEMM, one pass
               D_{l-1} = (D_l W_l) * f'_{l-1}(A_{l-1})                one GEMM, one fused pass

This module holds the entry points (:func:`value_and_grad`, :func:`loss`, :func:`forward`), the
passes over the layers, the split of a batch among threads and the workspace's layout. Which
routine computes each product (the compiled GEMM, the packed GEMM or BLAS), and the thresholds
that decide, are in :mod:`fastprop.cpu.products`; the products write straight into the gradient
vector's views and the workspace. Each element-wise step is one compiled pass: bias plus
activation, loss plus output delta, activation derivative. Only activations are kept: each
derivative is computed from the activation (see :mod:`fastprop.activations`), and ``D_l``
overwrites ``A_l`` once ``A_l`` has been used.

Workspace (one flat array of the network's dtype, see :func:`workspace_size`): every layer's
activations for the batch, one scratch block for ``D_l W_l``, the packed product's column block, one
block for a transposed weight matrix or delta (the compiled products read ``W^T`` and ``D^T`` by
rows), and at the end the per-sample losses. The kernels check its length first. A batch split among
threads has one such block per thread, for its rows, then the gradients of every thread but the
first, then one loss per thread. A long batch on the calling thread runs in blocks of rows (see
:data:`BLOCK_ELEMENTS`): the workspace holds one block, then one more gradient.

Threads: a gradient whose products of a thread's rows can all go to compiled code (to
:func:`~fastprop.cpu.gemm.gemm`, weights up to 256 x 256; or, where
:func:`fastprop.cpu.blas.packs_large_products` says so, any size to the packed product, with at
least :data:`~fastprop.cpu.products.PACKED_ROWS` rows per thread; see :func:`_chunk_count`) and
that is big enough splits its batch among numba's threads in one parallel region: each thread runs
the whole forward and backward pass on its contiguous rows, into its own gradient (the first
thread's is ``grad`` itself), and the gradients are then added in thread order (in a second
parallel region for large networks, each thread adding one part of every gradient). The result
depends on the inputs and the thread count only. Every other gradient runs on the calling thread,
its large products on the BLAS's threads, and never starts numba's thread pool: a gradient never
has both pools working. Splitting the element-wise passes of a BLAS-bound gradient among numba
threads as well would make two thread pools fight for the cores: numba's OpenMP workers keep
spinning after a ``prange`` and slow the next BLAS product many times over. With SIMD passes, the
serial element-wise work stays a small fraction of the products' time.

Compile time: numba compiles each function on its own, and each caller optimises and emits again
the code of every function it calls. The forward pass and the loss are therefore inlined into
their callers (``inline="always"``) and the calling thread's loop over blocks is written into
its entry point: each level less is one less compilation of everything below it.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from .._kernel_ids import IDENTITY, OK
from .._layout import N_IN, N_OUT
from ..activations import activate, derivative
from ..losses import batch_loss_and_delta, output_activation
from .blas import packs_large_products
from .common import (
    activation_id,
    activations,
    add_l2,
    check_forward_values,
    check_gradient_inputs,
    check_values,
    l2_penalty,
    parameter_count,
    total_width,
    weight_scale,
    weights,
)
from .gemm import PACK_COLUMNS
from .products import (
    PACKED_ROWS,
    SMALL_GEMM,
    SPLIT_GEMM,
    SPLIT_WEIGHTS,
    UNLIMITED,
    all_products_compiled,
    backpropagate_delta,
    forward_product,
    weight_gradient,
)
from .views import borrowed, borrowed_input, matrix_view

#: Fewest rows of a batch per thread, and fewest multiply-adds (``batch x n_params``) of a
#: gradient that splits among threads: starting a parallel region costs about as much as a small
#: network's whole gradient, so only gradients well above that cost split.
MIN_CHUNK_ROWS = 16
PARALLEL_WORK = 1 << 19
#: Fewest parameters for which the threads' gradients are added in parallel: below it, starting
#: a second parallel region costs more than adding them on one thread.
PARALLEL_SUM = 1 << 18
#: On the calling thread, a batch of at least :data:`BLOCKS` blocks runs block by block, each of
#: ``max(MIN_BLOCK_ROWS, BLOCK_ELEMENTS // total width)`` rows: the element-wise passes over a
#: block's activations then read the cache, not memory, and the workspace holds one block. A
#: block is large enough for its products to run at BLAS's full speed and for the addition of
#: its gradient to cost little.
BLOCK_ELEMENTS = 1 << 19
MIN_BLOCK_ROWS = 1024
BLOCKS = 4
# The product limits go to the compiled functions as ``np.int64(...)`` or values computed at run
# time, never as Python constants: numba compiles a function again for each constant argument (a
# literal type), and ``_gradient``, with everything it calls, would compile once per limit. The
# pack block is None on the calling thread (its own type: see :mod:`fastprop.cpu.products`).


def workspace_size(layout: np.ndarray, batch: int, n_threads: int) -> int:
    """Length of the workspace for a batch of ``batch`` samples on ``n_threads`` threads."""
    return int(_workspace_needed(layout, batch, _chunk_count(layout, batch, n_threads)))


@jit
def _workspace_needed(layout, batch, n_chunks):
    """Length of the workspace for a batch of ``batch`` samples in ``n_chunks`` row blocks run
    by as many threads (on one thread: in blocks of :func:`_block_rows`, with one more
    gradient where there are several)."""
    if n_chunks == 1:
        rows = _block_rows(layout, batch)
        return _chunk_workspace(layout, rows) + (parameter_count(layout) if rows < batch else 0)
    one_chunk = _chunk_workspace(layout, _chunk_rows(batch, n_chunks))
    return n_chunks * (one_chunk + 1) + (n_chunks - 1) * parameter_count(layout)


@jit(inline="always")
def _block_rows(layout, batch):
    """Rows of each block of a batch on the calling thread: the whole batch, unless it holds at
    least :data:`BLOCKS` blocks (see :data:`BLOCK_ELEMENTS`)."""
    rows = max(MIN_BLOCK_ROWS, BLOCK_ELEMENTS // total_width(layout))
    return rows if batch >= BLOCKS * rows else batch


@jit(inline="always")
def _check_workspace(layout, batch, n_chunks, work):
    """Raise ``IndexError`` for a workspace shorter than :func:`workspace_size`: the kernels'
    slices of it would be shorter than they assume (the per-thread losses written past its
    end)."""
    if work.shape[0] < _workspace_needed(layout, batch, n_chunks):
        raise IndexError("the matrix backend's workspace is shorter than workspace_size")


def uses_threads(batch: int) -> bool:
    """Whether a gradient of ``batch`` samples may split among threads (for smaller batches the
    thread count makes no difference, and callers need not ask numba for it)."""
    return batch >= 2 * MIN_CHUNK_ROWS


@jit(inline="always")
def _chunk_rows(batch, n_chunks):
    """Rows of the largest of ``n_chunks`` contiguous blocks of a batch (block ``c`` is rows
    ``c * batch // n_chunks`` up to ``(c + 1) * batch // n_chunks``)."""
    return -(-batch // n_chunks)


@jit
def _chunk_workspace(layout, batch):
    """Workspace of one thread's rows: activations, the ``D W`` scratch, the pack block, the
    transposed block, the losses."""
    scratch = 0
    for layer in range(1, layout.shape[0]):
        scratch = max(scratch, layout[layer, N_IN])
    return (batch * (total_width(layout) + scratch + 1) + _pack_size(layout, batch)
            + _transposed_size(layout, batch))


@jit
def _widest(layout):
    """The largest layer width, inputs included."""
    widest = 0
    for layer in range(layout.shape[0]):
        widest = max(widest, layout[layer, N_IN], layout[layer, N_OUT])
    return widest


@jit
def _transposed_size(layout, batch):
    """Elements of the workspace's transposed block: room for the largest ``W^T`` (the compiled
    product's forward operand) and the largest ``D^T`` (the packed weight gradient's)."""
    size = batch * _widest(layout)
    for layer in range(layout.shape[0]):
        size = max(size, layout[layer, N_IN] * layout[layer, N_OUT])
    return size


@jit(inline="always")
def _pack_size(layout, batch):
    """Elements of the pack block of :func:`~fastprop.cpu.gemm.packed_gemm`: a column block of
    the longest inner dimension (a layer's inputs or outputs, or the rows)."""
    return PACK_COLUMNS * max(batch, _widest(layout))


@jit(inline="always")
def _pack_and_transposed_blocks(layout, batch, work):
    """The pack block and the transposed block, which lie before the losses at the end of the
    workspace."""
    transposed = work.shape[0] - batch - _transposed_size(layout, batch)
    pack_start = transposed - _pack_size(layout, batch)
    return work[pack_start:transposed], work[transposed:work.shape[0] - batch]


@jit
def _chunk_count(layout, batch, n_threads):
    """Threads that a gradient of ``batch`` samples splits among: 1 unless each gets at least
    :data:`MIN_CHUNK_ROWS` rows, the gradient has at least :data:`PARALLEL_WORK` multiply-adds
    per layer pass, and every product of a thread's rows is compiled (BLAS inside the parallel
    region would start the BLAS's threads too): all fit :func:`~fastprop.cpu.gemm.gemm`, or
    :func:`~fastprop.cpu.blas.packs_large_products` lets the large ones be packed."""
    n_chunks = min(n_threads, batch // MIN_CHUNK_ROWS)
    if n_chunks < 2 or batch * parameter_count(layout) < PARALLEL_WORK:
        return 1
    rows = _chunk_rows(batch, n_chunks)
    if all_products_compiled(layout, rows, np.int64(SPLIT_WEIGHTS), np.int64(SPLIT_GEMM)) or (
            packs_large_products() and rows >= PACKED_ROWS
            and all_products_compiled(layout, rows, np.int64(UNLIMITED), np.int64(UNLIMITED))):
        return n_chunks
    return 1


@jit
def _add_bias_and_activate(A, b, act):
    """``A <- f(A + b)`` row by row, ``f`` the activation with id ``act``."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            A[i, j] = activate(act, A[i, j] + b[j])


@jit
def _delta_from_activations(G, A, act):
    """``A <- G * f'(A)``: the delta of a hidden layer, from ``G``, the delta of the layer above
    carried back (:func:`~fastprop.cpu.products.backpropagate_delta`), and its activations
    ``A``."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            A[i, j] = G[i, j] * derivative(act, A[i, j])


@jit
def _column_sums(D, out):
    """``out[j] = sum_i D[i, j]``, four rows per pass over ``out``: a quarter of its loads and
    stores, and of the loop overhead that dominates narrow layers."""
    out[:] = 0
    n = D.shape[0]
    i = 0
    while i + 4 <= n:
        d0, d1, d2, d3 = D[i], D[i + 1], D[i + 2], D[i + 3]
        for j in range(out.shape[0]):
            out[j] += (d0[j] + d1[j]) + (d2[j] + d3[j])
        i += 4
    for rest in range(i, n):
        d = D[rest]
        for j in range(out.shape[0]):
            out[j] += d[j]


@jit(inline="always")
def _forward_scores(layout, params, X, work, limit, pack):
    """Forward pass: hidden activations and the last layer's scores, in the workspace. Products
    past ``limit`` go to :func:`~fastprop.cpu.gemm.packed_gemm` with the block ``pack``, or to
    BLAS where ``pack`` is None (see :mod:`fastprop.cpu.products`)."""
    batch = X.shape[0]
    last = layout.shape[0] - 1
    _, transposed = _pack_and_transposed_blocks(layout, batch, work)
    for layer in range(layout.shape[0]):
        W, b = weights(params, layout, layer)
        A = activations(work, layout, layer, batch)
        WT = matrix_view(transposed, 0, layout[layer, N_IN], layout[layer, N_OUT])
        A_in = X if layer == 0 else activations(work, layout, layer - 1, batch)
        forward_product(A_in, W, A, WT, limit, pack)
        _add_bias_and_activate(A, b, activation_id(layout, layer) if layer < last else IDENTITY)


@jit(inline="always")
def _loss_sum(layout, loss_id, Y, labels, sample_weights, scale, batch, work):
    """After the forward pass: the sum of the samples' weighted losses; the scores become the
    output deltas, each scaled by its sample's weight times ``scale``."""
    last = layout.shape[0] - 1
    Z = activations(work, layout, last, batch)
    row_losses = work[work.shape[0] - batch:]
    batch_loss_and_delta(loss_id, activation_id(layout, last), Z, Y, labels, sample_weights, scale,
                         row_losses)
    return row_losses.sum()


@jit
def _gradient(layout, loss_id, params, X, Y, labels, sample_weights, scale, grad, work, limit,
              pack):
    """Forward and backward pass over the rows of ``X``: their summed weighted loss; ``grad``
    (written) is the gradient of ``scale`` times that sum. Products past ``limit`` go to
    :func:`~fastprop.cpu.gemm.packed_gemm` with the block ``pack`` (a batch split among threads),
    or to BLAS where ``pack`` is None."""
    batch = X.shape[0]
    _, transposed = _pack_and_transposed_blocks(layout, batch, work)
    _forward_scores(layout, params, X, work, limit, pack)
    total = _loss_sum(layout, loss_id, Y, labels, sample_weights, scale, batch, work)
    scratch = work[batch * total_width(layout):]
    for layer in range(layout.shape[0] - 1, -1, -1):
        D = activations(work, layout, layer, batch)
        W, _ = weights(params, layout, layer)
        dW, db = weights(grad, layout, layer)
        A_in = X if layer == 0 else activations(work, layout, layer - 1, batch)
        weight_gradient(D, A_in, dW, limit, pack, transposed)
        _column_sums(D, db)
        if layer > 0:
            G = matrix_view(scratch, 0, batch, layout[layer, N_IN])
            backpropagate_delta(D, W, G, limit, pack)
            _delta_from_activations(G, A_in, activation_id(layout, layer - 1))
    return total


@jit
def _blocked_loss_sum(layout, loss_id, params, X, Y, labels, sample_weights, scale, work):
    """The sum of the weighted losses of the rows of ``X`` (forward passes in blocks of
    :func:`_block_rows`)."""
    batch = X.shape[0]
    rows = _block_rows(layout, batch)
    block_work = work[:_chunk_workspace(layout, rows)]
    limit = np.int64(SMALL_GEMM)
    total = scale * 0
    for start in range(0, batch, rows):
        stop = min(start + rows, batch)
        _forward_scores(layout, params, X[start:stop], block_work, limit, None)
        total += _loss_sum(layout, loss_id, Y[start:stop], labels[start:stop],
                           sample_weights[start:stop], scale, stop - start, block_work)
    return total


@jit(parallel=True)
def _split_gradient(layout, loss_id, params, X, Y, labels, sample_weights, scale, grad, work,
                    n_chunks):
    """:func:`_gradient` of the whole batch, in ``n_chunks`` contiguous row blocks run by as
    many threads. The first writes ``grad``, the others their own gradient in ``work``; these
    are added to ``grad`` in block order."""
    batch = X.shape[0]
    size = _chunk_workspace(layout, _chunk_rows(batch, n_chunks))
    n_params = grad.shape[0]
    gradients = work[n_chunks * size:n_chunks * size + (n_chunks - 1) * n_params]
    losses = work[n_chunks * size + gradients.shape[0]:]
    for c in prange(n_chunks):
        start = c * batch // n_chunks
        stop = (c + 1) * batch // n_chunks
        target = grad if c == 0 else gradients[(c - 1) * n_params:c * n_params]
        chunk = work[c * size:(c + 1) * size]
        pack, _ = _pack_and_transposed_blocks(layout, stop - start, chunk)
        losses[c] = _gradient(layout, loss_id, params, X[start:stop], Y[start:stop],
                              labels[start:stop], sample_weights[start:stop], scale, target,
                              chunk, np.int64(SPLIT_GEMM), pack)
    total = losses[0]
    for c in range(1, n_chunks):  # in block order (explicit loops: parallel=True would turn
        total += losses[c]        # array sums into parallel reductions with allocations)
    if n_params < PARALLEL_SUM:
        _add_gradients(grad, gradients, 0, n_params)
    else:
        for c in prange(n_chunks):  # each thread adds a contiguous part of every gradient
            _add_gradients(grad, gradients, c * n_params // n_chunks,
                           (c + 1) * n_params // n_chunks)
    return total


@jit(inline="always")
def _add_gradients(grad, gradients, start, stop):
    """``grad[start:stop] +=`` the same part of each gradient in ``gradients`` (the other
    threads', one after another), in their order: the sum is the same for any split."""
    n_params = grad.shape[0]
    for offset in range(0, gradients.shape[0], n_params):
        part = gradients[offset:offset + n_params]
        for k in range(start, stop):
            grad[k] += part[k]


def splits(layout: np.ndarray, batch: int, n_threads: int) -> bool:
    """Whether :func:`value_and_grad` splits a batch of ``batch`` samples among ``n_threads``
    threads. Where it does not, :func:`serial_value_and_grad` computes the same gradient, and a
    caller that takes it leaves the parallel code uncompiled."""
    return bool(_chunk_count(layout, batch, n_threads) > 1)


@jit(inline="always")
def _gradient_status(layout, params, X, Y, labels, check_finite, grad, work, n_chunks):
    """The status of a gradient's inputs (:func:`~fastprop.cpu.common.check_gradient_inputs`);
    raises ``IndexError`` for a workspace too short for ``n_chunks`` row blocks."""
    status = check_gradient_inputs(layout, params, X, Y, labels, check_finite, grad)
    if status == OK:
        _check_workspace(layout, X.shape[0], n_chunks, work)
    return status


@jit(inline="always")
def _with_l2(layout, params, l2, grad, mean_loss):
    """The L2 term added to ``grad`` and to the weighted mean loss ``mean_loss``."""
    add_l2(layout, params, l2, grad)
    return mean_loss + l2_penalty(layout, params, l2)


@jit
def serial_value_and_grad(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite,
                          grad, work, n_threads):
    """:func:`value_and_grad` on the calling thread, never split (``n_threads`` is not read):
    the same result wherever :func:`splits` is false, and none of the parallel code to compile."""
    layout, grad, work = borrowed(layout), borrowed(grad), borrowed(work)
    params, X, Y = borrowed_input(params), borrowed_input(X), borrowed_input(Y)
    labels, sample_weights = borrowed_input(labels), borrowed_input(sample_weights)
    status = _gradient_status(layout, params, X, Y, labels, check_finite, grad, work,
                              np.int64(1))
    if status != OK:
        return status, l2 * 0
    # In blocks of :func:`_block_rows`: the first block writes ``grad``; each later one writes a
    # gradient of its own at the end of the workspace, which is added to ``grad``.
    scale = weight_scale(sample_weights)
    batch = X.shape[0]
    rows = _block_rows(layout, batch)
    size = _chunk_workspace(layout, rows)
    block_work, block_grad = work[:size], work[size:size + grad.shape[0]]
    total = scale * 0
    for start in range(0, batch, rows):
        stop = min(start + rows, batch)
        total += _gradient(layout, loss_id, params, X[start:stop], Y[start:stop],
                           labels[start:stop], sample_weights[start:stop], scale,
                           grad if start == 0 else block_grad, block_work, np.int64(SMALL_GEMM),
                           None)
        if start > 0:
            _add_gradients(grad, block_grad, 0, grad.shape[0])
    return OK, _with_l2(layout, params, l2, grad, total * scale)


@jit
def value_and_grad(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite, grad,
                   work, n_threads):
    """Loss and its gradient (written into ``grad``); returns ``(status, loss)``. Splits the
    batch among up to ``n_threads`` threads where :func:`splits` says so, else runs
    :func:`serial_value_and_grad`."""
    layout, grad, work = borrowed(layout), borrowed(grad), borrowed(work)
    params, X, Y = borrowed_input(params), borrowed_input(X), borrowed_input(Y)
    labels, sample_weights = borrowed_input(labels), borrowed_input(sample_weights)
    n_chunks = _chunk_count(layout, X.shape[0], n_threads)
    if n_chunks == 1:
        return serial_value_and_grad(layout, loss_id, params, X, Y, labels, sample_weights, l2,
                                     check_finite, grad, work, n_threads)
    status = _gradient_status(layout, params, X, Y, labels, check_finite, grad, work, n_chunks)
    if status != OK:
        return status, l2 * 0
    scale = weight_scale(sample_weights)
    total = _split_gradient(layout, loss_id, params, X, Y, labels, sample_weights, scale, grad,
                            work, n_chunks)
    return OK, _with_l2(layout, params, l2, grad, total * scale)


@jit
def loss(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite, work, n_threads):
    """The loss alone (forward pass only); returns ``(status, loss)``."""
    layout, work = borrowed(layout), borrowed(work)
    params, X, Y = borrowed_input(params), borrowed_input(X), borrowed_input(Y)
    labels, sample_weights = borrowed_input(labels), borrowed_input(sample_weights)
    status = check_values(layout, params, X, Y, labels, check_finite)
    if status != OK:
        return status, l2 * 0
    _check_workspace(layout, X.shape[0], 1, work)
    scale = weight_scale(sample_weights)
    total = _blocked_loss_sum(layout, loss_id, params, X, Y, labels, sample_weights, scale, work)
    return OK, total * scale + l2_penalty(layout, params, l2)


@jit
def forward(layout, params, X, check_finite, out, work, n_threads):
    """Network outputs (after the output activation) written into ``out``; returns the status."""
    layout, out, work = borrowed(layout), borrowed(out), borrowed(work)
    params, X = borrowed_input(params), borrowed_input(X)
    status = check_forward_values(layout, params, X, out, check_finite)
    if status != OK:
        return status
    batch = X.shape[0]
    _check_workspace(layout, batch, 1, work)
    rows = _block_rows(layout, batch)
    block_work = work[:_chunk_workspace(layout, rows)]
    last = layout.shape[0] - 1
    for start in range(0, batch, rows):
        stop = min(start + rows, batch)
        _forward_scores(layout, params, X[start:stop], block_work, np.int64(SMALL_GEMM), None)
        Z = activations(block_work, layout, last, stop - start)
        for i in range(stop - start):
            output_activation(activation_id(layout, last), Z[i], out[start + i])
    return OK
