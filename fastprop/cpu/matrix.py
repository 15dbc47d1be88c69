"""Matrix-form backpropagation over a whole batch, compiled with Numba.

For a batch ``A_0 = X`` of shape ``(batch, n_0)``::

    forward    A_l = f_l(A_{l-1} W_l^T + b_l)                         one GEMM, one fused pass
    output     D_L = diag(w / sum w) dloss/dZ_L, weighted losses      one fused pass
    backward   dW_l = D_l^T A_{l-1},  db_l = column sums of D_l       one GEMM, one pass
               D_{l-1} = (D_l W_l) * f'_{l-1}(A_{l-1})                one GEMM, one fused pass

Products of a batch up to :data:`SMALL_GEMM` multiply-adds go to the compiled, register-blocked
:func:`fastprop.cpu.gemm.gemm` (``A W^T`` through a transposed copy of ``W``, ``D^T A`` and ``D W``
as they are), where BLAS's per-call overhead would dominate; larger ones go to NumPy's BLAS through
:func:`fastprop.cpu.blas.dot` (``W^T`` and ``D^T`` are column-major views, which BLAS takes as they
are), or, in a batch split among threads, to the compiled :func:`fastprop.cpu.gemm.packed_gemm`
(``D^T A`` through a transposed copy of ``D``). All write straight into the gradient vector's views
and the workspace. Each element-wise step is one compiled pass: bias plus activation, loss plus
output delta, activation derivative. Only activations are kept: each derivative is computed from the
activation (see :mod:`fastprop.activations`), and ``D_l`` overwrites ``A_l`` once ``A_l`` has been
used.

Workspace (one flat array of the network's dtype, see :func:`workspace_size`): every layer's
activations for the batch, one scratch block for ``D_l W_l``, the packed product's column block, one
block for a transposed weight matrix or delta (the compiled products read ``W^T`` and ``D^T`` by
rows), and at the end the per-sample losses. The kernels check its length first. A batch split among
threads has one such block per thread, for its rows, then the gradients of every thread but the
first, then one loss per thread.

Threads: a gradient whose products of a thread's rows can all go to compiled code (to
:func:`~fastprop.cpu.gemm.gemm`, weights up to 256 x 256; or, where
:func:`fastprop.cpu.blas.compiled_large_products` says so, any size to the packed product, with at
least :data:`PACKED_ROWS` rows per thread; see :func:`_chunk_count`) and that is big enough splits
its batch among numba's threads in one parallel region: each thread runs the whole forward and
backward pass on its contiguous rows, into its own gradient (the first thread's is ``grad`` itself),
and the gradients are then added in thread order (in a second parallel region for large networks,
each thread adding one part of every gradient). The result depends on the inputs and the thread
count only. Every other gradient runs on the calling thread, its large products on the BLAS's
threads, and never starts numba's thread pool: a gradient never has both pools working. Splitting
the element-wise passes of a BLAS-bound gradient among numba threads as well would make two
thread pools fight for the cores: numba's OpenMP workers keep spinning after a ``prange`` and
slow the next BLAS product many times over. With SIMD passes, the serial element-wise work stays
a small fraction of the products' time.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import jit
from .._kernel_ids import IDENTITY, OK
from .._layout import N_IN, N_OUT
from ..activations import activate, derivative
from ..losses import batch_loss_and_delta, output_activation
from .blas import compiled_large_products, dot
from .common import (
    activation_id,
    activations,
    add_combination,
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
from .gemm import MR, NR_QUAD, PACK_COLUMNS, gemm, packed_gemm
from .views import borrowed, matrix_view


def workspace_size(layout: np.ndarray, batch: int, n_threads: int) -> int:
    """Length of the workspace for a batch of ``batch`` samples on ``n_threads`` threads."""
    return int(_workspace_needed(layout, batch, _chunk_count(layout, batch, n_threads)))


@jit
def _workspace_needed(layout, batch, n_chunks):
    """Length of the workspace for a batch of ``batch`` samples in ``n_chunks`` row blocks."""
    one_chunk = _chunk_workspace(layout, _chunk_rows(batch, n_chunks))
    if n_chunks == 1:
        return one_chunk
    return n_chunks * (one_chunk + 1) + (n_chunks - 1) * parameter_count(layout)


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
def _end_blocks(layout, batch, work):
    """The pack block and the transposed block, which lie before the losses at the end of the
    workspace."""
    transposed = work.shape[0] - batch - _transposed_size(layout, batch)
    pack_start = transposed - _pack_size(layout, batch)
    return work[pack_start:transposed], work[transposed:work.shape[0] - batch]


#: Largest weight matrix (elements) for which a one-sample batch uses compiled loops, not BLAS.
SMALL_PRODUCT = 256 * 256
#: Largest product (multiply-adds) of a batch that goes to the compiled :func:`gemm`, not BLAS:
#: up to this size BLAS's per-call overhead dominates; larger products are left to BLAS's cache
#: blocking and threads.
SMALL_GEMM = 1 << 20
#: Fewest rows of a batch per thread, and fewest multiply-adds (``batch x n_params``) of a
#: gradient that splits among threads: starting a parallel region costs about as much as a small
#: network's whole gradient, so only gradients well above that cost split.
MIN_CHUNK_ROWS = 16
PARALLEL_WORK = 1 << 19
#: In a batch split among threads, the largest product of a thread's rows, and the largest weight
#: matrix (elements; read once per four rows, it stays in the core's cache up to this size), for
#: which every product goes to :func:`~fastprop.cpu.gemm.gemm`: up to these sizes, each thread
#: running whole passes over its own rows beats sharing every product among the BLAS's threads,
#: which synchronise once per product. Larger products of a split batch go to
#: :func:`~fastprop.cpu.gemm.packed_gemm`, where :func:`~fastprop.cpu.blas.compiled_large_products`
#: says so; otherwise the batch is not split and they go to BLAS.
SPLIT_GEMM = 1 << 24
SPLIT_WEIGHTS = 1 << 16
#: No limit: every product of a thread's rows compiled, the large ones packed.
UNLIMITED = 1 << 62
#: Fewest rows per thread for packed products: each packed column block serves every row block
#: of the thread's rows, and with fewer rows the copying costs more than it saves.
PACKED_ROWS = 64
#: Fewest parameters for which the threads' gradients are added in parallel: below it, starting
#: a second parallel region costs more than adding them on one thread.
PARALLEL_SUM = 1 << 18
# The limits go to the compiled functions as ``np.int64(...)``: numba compiles a function again
# for each constant argument (a literal type), and ``_gradient``, with everything it calls,
# would compile twice, once per limit.

# A single sample's products are matrix-vector products, where a BLAS call costs more than the
# arithmetic: compiled loops do them. They work on four rows of ``W`` at a time: the four dot
# products (or four scaled rows, see ``add_combination``) share each load of the sample's row and
# run as independent chains, where one chain per row waits on the latency of every addition.


@jit(inline="always")
def _compiled_gemm_fits(rows, inner, cols, limit):
    """Whether a ``rows x inner x cols`` product goes to :func:`~fastprop.cpu.gemm.gemm`: at
    least one micro-kernel block, every column in one (the row-by-row loop that takes a last
    1 to 3 columns is latency-bound, slower than BLAS), and at most ``limit``
    multiply-adds (:data:`SMALL_GEMM`, where BLAS's overhead dominates, or :data:`SPLIT_GEMM` in a
    batch split among threads)."""
    return (rows >= MR and cols >= NR_QUAD and cols % NR_QUAD == 0
            and rows * inner * cols <= limit)


@jit(inline="always")
def _unpacked_fits(rows, inner, cols, limit, pack):
    """Whether :func:`~fastprop.cpu.gemm.gemm` takes a ``rows x inner x cols`` product: it
    fits ``limit`` and, where a pack block is given (a batch split among threads), its right
    operand is small enough to stay in the core's cache (:data:`SPLIT_WEIGHTS`). A larger one
    goes to the packed product: :func:`~fastprop.cpu.gemm.gemm` would read it from memory once
    per four rows, slower than BLAS."""
    return (_compiled_gemm_fits(rows, inner, cols, limit)
            and (pack.shape[0] == 0 or inner * cols <= SPLIT_WEIGHTS))


@jit(inline="always")
def _transposed_weight_gradient(batch, n_in, n_out, limit):
    """Whether the weight gradient ``D^T A`` of a layer is computed as ``out^T = A^T D``: for
    fewer inputs than outputs, where that fits the compiled product (see
    :func:`_transpose_times`)."""
    return n_in < n_out and _compiled_gemm_fits(n_in, batch, n_out, limit)


@jit
def _all_products_compiled(layout, batch, weights_limit, limit):
    """Whether every product of a gradient at ``batch`` (> 1) rows goes to compiled code, none
    to BLAS (the choices of :func:`_times_transpose`, :func:`_transpose_times` and
    :func:`_times`), with weight matrices up to ``weights_limit`` elements and products up to
    ``limit`` multiply-adds."""
    for layer in range(layout.shape[0]):
        n_in, n_out = layout[layer, N_IN], layout[layer, N_OUT]
        if n_in * n_out > weights_limit or not _compiled_gemm_fits(batch, n_in, n_out, limit):
            return False
        if not (_transposed_weight_gradient(batch, n_in, n_out, limit)
                or _compiled_gemm_fits(n_out, batch, n_in, limit)):
            return False
        if layer > 0 and not _compiled_gemm_fits(batch, n_out, n_in, limit):
            return False
    return True


@jit
def _chunk_count(layout, batch, n_threads):
    """Threads that a gradient of ``batch`` samples splits among: 1 unless each gets at least
    :data:`MIN_CHUNK_ROWS` rows, the gradient has at least :data:`PARALLEL_WORK` multiply-adds
    per layer pass, and every product of a thread's rows is compiled (BLAS inside the parallel
    region would start the BLAS's threads too): all fit :func:`~fastprop.cpu.gemm.gemm`, or
    :func:`~fastprop.cpu.blas.compiled_large_products` lets the large ones be packed."""
    n_chunks = min(n_threads, batch // MIN_CHUNK_ROWS)
    if n_chunks < 2 or batch * parameter_count(layout) < PARALLEL_WORK:
        return 1
    rows = _chunk_rows(batch, n_chunks)
    if _all_products_compiled(layout, rows, SPLIT_WEIGHTS, SPLIT_GEMM) or (
            compiled_large_products() and rows >= PACKED_ROWS
            and _all_products_compiled(layout, rows, UNLIMITED, UNLIMITED)):
        return n_chunks
    return 1


@jit(inline="always")
def _product(A, B, out, limit, pack):
    """``out = A B``: the compiled :func:`~fastprop.cpu.gemm.gemm` where it fits, else the
    packed one where a pack block is given (a batch split among threads), else BLAS."""
    if _unpacked_fits(A.shape[0], A.shape[1], B.shape[1], limit, pack):
        gemm(A, B, out)
    elif pack.shape[0] > 0:
        packed_gemm(A, B, out, pack)
    else:
        dot(A, B, out)


@jit
def _transpose_into(W, WT):
    """``WT = W^T``, four rows of ``W`` per pass, so that each row of ``WT`` is written four
    elements at a time: one element at a time, the writes a row length apart collide in the
    cache."""
    n_out, n_in = W.shape
    j = 0
    while j + 4 <= n_out:
        w0, w1, w2, w3 = W[j], W[j + 1], W[j + 2], W[j + 3]
        for k in range(n_in):
            row = WT[k]
            row[j], row[j + 1], row[j + 2], row[j + 3] = w0[k], w1[k], w2[k], w3[k]
        j += 4
    for rest in range(j, n_out):
        for k in range(n_in):
            WT[k, rest] = W[rest, k]


@jit(fastmath={"reassoc"})
def _times_transpose(A, W, out, WT, limit, pack):
    """``out = A W^T``; ``reassoc`` lets each dot product of a single sample run in SIMD lanes.
    ``WT`` is room for ``W^T`` (``n_in x n_out``), which the compiled product reads by rows; the
    packed product packs its column blocks from ``W`` itself."""
    if A.shape[0] > 1 or W.size > SMALL_PRODUCT:
        if _unpacked_fits(A.shape[0], A.shape[1], W.shape[0], limit, pack):
            _transpose_into(W, WT)
            gemm(A, WT, out)
        elif pack.shape[0] > 0:
            packed_gemm(A, W.T, out, pack)
        else:
            dot(A, W.T, out)
        return
    a, o = A[0], out[0]
    zero = out.dtype.type(0)
    n_out, n_in = W.shape
    j = 0
    while j + 4 <= n_out:
        w0, w1, w2, w3 = W[j], W[j + 1], W[j + 2], W[j + 3]
        s0 = s1 = s2 = s3 = zero
        for k in range(n_in):
            s0 += a[k] * w0[k]
            s1 += a[k] * w1[k]
            s2 += a[k] * w2[k]
            s3 += a[k] * w3[k]
        o[j], o[j + 1], o[j + 2], o[j + 3] = s0, s1, s2, s3
        j += 4
    for jj in range(j, n_out):
        s = zero
        for k in range(n_in):
            s += a[k] * W[jj, k]
        o[jj] = s


@jit
def _times(D, W, out, limit, pack):
    """``out = D W`` (the back-propagated delta); one sample as a sum of scaled rows of ``W``."""
    if D.shape[0] > 1 or W.size > SMALL_PRODUCT:
        _product(D, W, out, limit, pack)
        return
    out[0, :] = 0
    add_combination(D[0], W, out[0])


@jit
def _transpose_times(D, A, out, limit, pack, transposed):
    """``out = D^T A`` (the weight gradient); one sample as an outer product.

    The compiled product computes ``out^T = A^T D`` instead where ``out`` has fewer columns than
    rows (a layer with few inputs): both ways read contiguous rows (of ``A`` or of ``D``), and the
    wider result fills the wide micro-kernel. The packed product reads ``D^T`` from a copy in
    ``transposed``: through the transposed view, its packing would read four elements per row of
    ``D``, a row length apart, and wait on memory."""
    if D.shape[0] > 1 or out.size > SMALL_PRODUCT:
        n_out, n_in = out.shape
        rows = D.shape[0]
        if n_in < n_out and _unpacked_fits(n_in, rows, n_out, limit, pack):
            gemm(A.T, D, out.T)
        elif _unpacked_fits(n_out, rows, n_in, limit, pack):
            gemm(D.T, A, out)
        elif pack.shape[0] > 0:
            DT = matrix_view(transposed, 0, n_out, rows)
            _transpose_into(D, DT)
            packed_gemm(DT, A, out, pack)
        else:
            dot(D.T, A, out)
        return
    for j in range(D.shape[1]):
        d = D[0, j]
        for k in range(A.shape[1]):
            out[j, k] = d * A[0, k]


@jit
def _bias_activation(A, b, act):
    """``A <- f(A + b)`` row by row, ``f`` the activation with id ``act``."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            A[i, j] = activate(act, A[i, j] + b[j])


@jit
def _times_derivative(G, A, act):
    """``A <- G * f'(A)``: the delta of a hidden layer from its activations ``A``."""
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


@jit
def _forward_scores(layout, params, X, work, limit, pack):
    """Forward pass: hidden activations and the last layer's scores, in the workspace."""
    batch = X.shape[0]
    last = layout.shape[0] - 1
    _, transposed = _end_blocks(layout, batch, work)
    for layer in range(layout.shape[0]):
        W, b = weights(params, layout, layer)
        A = activations(work, layout, layer, batch)
        WT = matrix_view(transposed, 0, layout[layer, N_IN], layout[layer, N_OUT])
        if layer == 0:
            _times_transpose(X, W, A, WT, limit, pack)
        else:
            _times_transpose(activations(work, layout, layer - 1, batch), W, A, WT, limit, pack)
        _bias_activation(A, b, activation_id(layout, layer) if layer < last else IDENTITY)


@jit
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
              packed):
    """Forward and backward pass over the rows of ``X``: their summed weighted loss; ``grad``
    (written) is the gradient of ``scale`` times that sum. Products past ``limit`` go to
    :func:`~fastprop.cpu.gemm.packed_gemm` where ``packed``, else to BLAS."""
    batch = X.shape[0]
    pack, transposed = _end_blocks(layout, batch, work)
    if not packed:
        pack = pack[:0]
    _forward_scores(layout, params, X, work, limit, pack)
    total = _loss_sum(layout, loss_id, Y, labels, sample_weights, scale, batch, work)
    scratch = work[batch * total_width(layout):]
    for layer in range(layout.shape[0] - 1, -1, -1):
        D = activations(work, layout, layer, batch)
        W, _ = weights(params, layout, layer)
        dW, db = weights(grad, layout, layer)
        if layer == 0:
            _transpose_times(D, X, dW, limit, pack, transposed)
        else:
            A_in = activations(work, layout, layer - 1, batch)
            _transpose_times(D, A_in, dW, limit, pack, transposed)
        _column_sums(D, db)
        if layer > 0:
            G = matrix_view(scratch, 0, batch, layout[layer, N_IN])
            _times(D, W, G, limit, pack)
            _times_derivative(G, A_in, activation_id(layout, layer - 1))
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
        losses[c] = _gradient(layout, loss_id, params, X[start:stop], Y[start:stop],
                              labels[start:stop], sample_weights[start:stop], scale, target,
                              work[c * size:(c + 1) * size],
                              np.int64(SPLIT_GEMM), n_chunks > 1)
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


@jit
def value_and_grad(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite, grad,
                   work, n_threads):
    """Loss and its gradient (written into ``grad``); returns ``(status, loss)``."""
    layout, params, X, Y = borrowed(layout), borrowed(params), borrowed(X), borrowed(Y)
    labels, sample_weights = borrowed(labels), borrowed(sample_weights)
    grad, work = borrowed(grad), borrowed(work)
    status = check_gradient_inputs(layout, params, X, Y, labels, check_finite, grad)
    if status != OK:
        return status, l2 * 0
    batch = X.shape[0]
    scale = weight_scale(sample_weights)
    n_chunks = _chunk_count(layout, batch, n_threads)
    _check_workspace(layout, batch, n_chunks, work)
    if n_chunks == 1:
        total = _gradient(layout, loss_id, params, X, Y, labels, sample_weights, scale, grad, work,
                          np.int64(SMALL_GEMM), n_chunks > 1)
    else:
        total = _split_gradient(layout, loss_id, params, X, Y, labels, sample_weights, scale, grad,
                                work, n_chunks)
    add_l2(layout, params, l2, grad)
    return OK, total * scale + l2_penalty(layout, params, l2)


@jit
def loss(layout, loss_id, params, X, Y, labels, sample_weights, l2, check_finite, work, n_threads):
    """The loss alone (forward pass only); returns ``(status, loss)``."""
    layout, params, X, Y = borrowed(layout), borrowed(params), borrowed(X), borrowed(Y)
    labels, sample_weights, work = borrowed(labels), borrowed(sample_weights), borrowed(work)
    status = check_values(layout, params, X, Y, labels, check_finite)
    if status != OK:
        return status, l2 * 0
    batch = X.shape[0]
    _check_workspace(layout, batch, 1, work)
    _forward_scores(layout, params, X, work, np.int64(SMALL_GEMM), work[:0])
    scale = weight_scale(sample_weights)
    total = _loss_sum(layout, loss_id, Y, labels, sample_weights, scale, batch, work)
    return OK, total * scale + l2_penalty(layout, params, l2)


@jit
def forward(layout, params, X, check_finite, out, work, n_threads):
    """Network outputs (after the output activation) written into ``out``; returns the status."""
    layout, params, X = borrowed(layout), borrowed(params), borrowed(X)
    out, work = borrowed(out), borrowed(work)
    status = check_forward_values(layout, params, X, out, check_finite)
    if status != OK:
        return status
    _check_workspace(layout, X.shape[0], 1, work)
    _forward_scores(layout, params, X, work, np.int64(SMALL_GEMM), work[:0])
    last = layout.shape[0] - 1
    Z = activations(work, layout, last, X.shape[0])
    for i in range(X.shape[0]):
        output_activation(activation_id(layout, last), Z[i], out[i])
    return OK
