"""The matrix backend's products: which routine computes each, and the thresholds that decide.

Each layer of :mod:`fastprop.cpu.matrix` takes three products, one function each::

    forward_product       out = A W^T    the layer's scores, from its inputs A
    backpropagate_delta   out = D W      its delta D carried back to its inputs
    weight_gradient       out = D^T A    its weight gradient

and each product goes to one of three routines:

- the compiled, register-blocked :func:`fastprop.cpu.gemm.gemm`, for products of a batch up to
  :data:`SMALL_GEMM` multiply-adds, where BLAS's per-call overhead would dominate (``A W^T``
  through a transposed copy of ``W``, ``D^T A`` and ``D W`` as they are);
- NumPy's BLAS through :func:`fastprop.cpu.blas.dot` for larger ones (``W^T`` and ``D^T`` are
  column-major views, which BLAS takes as they are);
- in a batch split among threads, where :func:`fastprop.cpu.blas.packs_large_products` says so,
  the compiled :func:`fastprop.cpu.gemm.packed_gemm` for the products too large for
  :func:`~fastprop.cpu.gemm.gemm` (``D^T A`` through a transposed copy of ``D``).

A single sample's products are matrix-vector products, where a BLAS call costs more than the
arithmetic: compiled loops do them. They work on four rows of ``W`` at a time: the four dot
products (or four scaled rows, see :func:`fastprop.cpu.common.add_combination`) share each load
of the sample's row and run as independent chains, where one chain per row waits on the latency
of every addition.

Every product writes straight into the view it is given (the gradient vector's, the
workspace's). ``limit`` is the largest product that :func:`~fastprop.cpu.gemm.gemm` takes
(:data:`SMALL_GEMM`, or :data:`SPLIT_GEMM` in a batch split among threads); ``pack`` is the
packed product's column block in a batch split among threads, where the products that
:func:`~fastprop.cpu.gemm.gemm` does not take go to the packed product, and None elsewhere, where
they go to BLAS. None is a type of its own: numba drops the branches for the other case while it
compiles, so a gradient that never splits does not compile the packed product.
"""

from __future__ import annotations

from .._jit import jit
from .._layout import N_IN, N_OUT
from .blas import dot
from .common import add_combination
from .gemm import MR, NR_QUAD, gemm, packed_gemm
from .views import any_layout, matrix_view

#: Largest weight matrix (elements) whose products with a single sample run as compiled loops,
#: not on BLAS.
SINGLE_SAMPLE_WEIGHTS = 256 * 256
#: Largest product (multiply-adds) of a batch that goes to the compiled :func:`gemm`, not BLAS:
#: up to this size BLAS's per-call overhead dominates; larger products are left to BLAS's cache
#: blocking and threads.
SMALL_GEMM = 1 << 20
#: In a batch split among threads, the largest product of a thread's rows, and the largest weight
#: matrix (elements; read once per four rows, it stays in the core's cache up to this size), for
#: which every product goes to :func:`~fastprop.cpu.gemm.gemm`: up to these sizes, each thread
#: running whole passes over its own rows beats sharing every product among the BLAS's threads,
#: which synchronise once per product. Larger products of a split batch go to
#: :func:`~fastprop.cpu.gemm.packed_gemm`, where :func:`~fastprop.cpu.blas.packs_large_products`
#: says so; otherwise the batch is not split and they go to BLAS.
SPLIT_GEMM = 1 << 24
SPLIT_WEIGHTS = 1 << 16
#: No limit: every product of a thread's rows compiled, the large ones packed.
UNLIMITED = 1 << 62
#: Fewest rows per thread for packed products: each packed column block serves every row block
#: of the thread's rows, and with fewer rows the copying costs more than it saves.
PACKED_ROWS = 64


@jit(inline="always")
def _fits_gemm(rows, inner, cols, limit):
    """Whether :func:`~fastprop.cpu.gemm.gemm` can take a ``rows x inner x cols`` product: at
    least one micro-kernel block, every column in one (the row-by-row loop that takes a last
    1 to 3 columns is latency-bound, slower than BLAS), and at most ``limit`` multiply-adds."""
    return (rows >= MR and cols >= NR_QUAD and cols % NR_QUAD == 0
            and rows * inner * cols <= limit)


@jit(inline="always")
def _use_gemm(rows, inner, cols, limit, pack):
    """Whether a ``rows x inner x cols`` product goes to :func:`~fastprop.cpu.gemm.gemm`: it
    fits (:func:`_fits_gemm`) and, with a ``pack`` block (a batch split among threads), its right
    operand is small enough to stay in the core's cache (:data:`SPLIT_WEIGHTS`). A
    larger one goes to the packed product: :func:`~fastprop.cpu.gemm.gemm` would read it from
    memory once per four rows, slower than BLAS."""
    return (_fits_gemm(rows, inner, cols, limit)
            and (pack is None or inner * cols <= SPLIT_WEIGHTS))


@jit(inline="always")
def _weight_gradient_as_transpose(batch, n_in, n_out, limit):
    """Whether :func:`weight_gradient` computes a layer's ``D^T A`` as its transpose
    ``A^T D``: for fewer inputs than outputs, where that fits the compiled product."""
    return n_in < n_out and _fits_gemm(n_in, batch, n_out, limit)


@jit
def all_products_compiled(layout, batch, weights_limit, limit):
    """Whether every product of a gradient at ``batch`` (> 1) rows goes to compiled code, none
    to BLAS (the choices of :func:`forward_product`, :func:`weight_gradient` and
    :func:`backpropagate_delta`), with weight matrices up to ``weights_limit`` elements and
    products up to ``limit`` multiply-adds."""
    for layer in range(layout.shape[0]):
        n_in, n_out = layout[layer, N_IN], layout[layer, N_OUT]
        if n_in * n_out > weights_limit or not _fits_gemm(batch, n_in, n_out, limit):
            return False
        if not (_weight_gradient_as_transpose(batch, n_in, n_out, limit)
                or _fits_gemm(n_out, batch, n_in, limit)):
            return False
        if layer > 0 and not _fits_gemm(batch, n_out, n_in, limit):
            return False
    return True


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
def forward_product(A, W, out, WT, limit, pack):
    """``out = A W^T``; ``reassoc`` lets each dot product of a single sample run in SIMD lanes.
    ``WT`` is room for ``W^T`` (``n_in x n_out``), which the compiled product reads by rows; the
    packed product packs its column blocks from ``W`` itself."""
    if A.shape[0] > 1 or W.size > SINGLE_SAMPLE_WEIGHTS:
        if _use_gemm(A.shape[0], A.shape[1], W.shape[0], limit, pack):
            _transpose_into(W, WT)
            gemm(any_layout(A), WT, out)
        elif pack is None:
            dot(any_layout(A), any_layout(W.T), out)
        else:
            packed_gemm(A, W.T, out, pack)
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
def backpropagate_delta(D, W, out, limit, pack):
    """``out = D W``: the layer's delta ``D`` carried back through its weights to its inputs
    (before the inputs' activation derivative); one sample as a sum of scaled rows of ``W``."""
    if D.shape[0] > 1 or W.size > SINGLE_SAMPLE_WEIGHTS:
        if _use_gemm(D.shape[0], D.shape[1], W.shape[1], limit, pack):
            gemm(any_layout(D), W, out)
        elif pack is None:
            dot(any_layout(D), any_layout(W), out)
        else:
            packed_gemm(D, W, out, pack)
        return
    out[0, :] = 0
    add_combination(D[0], W, out[0])


@jit
def weight_gradient(D, A, out, limit, pack, transposed):
    """``out = D^T A``: the layer's weight gradient from its delta ``D`` and inputs ``A``; one
    sample as an outer product.

    The compiled product computes ``out^T = A^T D`` instead where ``out`` has fewer columns than
    rows (a layer with few inputs): both ways read contiguous rows (of ``A`` or of ``D``), and the
    wider result fills the wide micro-kernel. The packed product reads ``D^T`` from a copy in
    ``transposed``: through the transposed view, its packing would read four elements per row of
    ``D``, a row length apart, and wait on memory."""
    if D.shape[0] > 1 or out.size > SINGLE_SAMPLE_WEIGHTS:
        n_out, n_in = out.shape
        rows = D.shape[0]
        if n_in < n_out and _use_gemm(n_in, rows, n_out, limit, pack):
            gemm(any_layout(A.T), D, out.T)
        elif _use_gemm(n_out, rows, n_in, limit, pack):
            gemm(any_layout(D.T), A, out)
        elif pack is None:
            dot(any_layout(D.T), any_layout(A), out)
        else:
            DT = matrix_view(transposed, 0, n_out, rows)
            _transpose_into(D, DT)
            packed_gemm(DT, A, out, pack)
        return
    for j in range(D.shape[1]):
        d = D[0, j]
        for k in range(A.shape[1]):
            out[j, k] = d * A[0, k]
