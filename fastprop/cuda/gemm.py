"""Tiled, shared-memory, register-blocked matrix products with fused epilogues.

One main loop, :func:`kernels`' ``tile_product``, computes a ``BM x BN`` tile of ``C = A B`` for
operands stored in flat arrays, each row-major as it is or transposed (``A`` may be stored
``K x M``, ``B`` may be stored ``N x K``): a block's ``(BM / TM) * (BN / TN)`` threads stage
``BK``-deep slices of both operands in shared memory and each accumulates a ``TM x TN`` block of
``C`` in registers. Thread ``(tr, tc)``
owns rows ``tr + i * BM / TM`` and columns ``tc + j * BN / TN``, so that neighbouring threads
read neighbouring shared-memory words and write neighbouring addresses.

The three products of backpropagation (:mod:`fastprop.cuda.matrix` launches them) differ only
in their operands and epilogues:

``forward``
    ``A_l = f(A_{l-1} W_l^T + b_l)``: bias and activation applied to the tile before it is stored;
``delta``
    ``D_{l-1} = (D_l W_l) * f'(A_{l-1})``: the activation derivative applied before storing;
``weights``
    ``dW_l = D_l^T A_{l-1}`` for every layer in one launch (``blockIdx.y`` is the layer), and the
    bias gradient ``db_l``, the row sums of ``D_l^T``, added up from the slices that the blocks
    of the first column of tiles stage anyway. The batch (the inner dimension) is cut into
    ``blockIdx.z`` splits, each writing its partial sums to its own slice of a buffer that
    :mod:`fastprop.cuda.report` sums in order: no atomics. Narrow layers take narrower tiles
    (:func:`weight_tiles`).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np

from .._layout import ACT, B_OFF, N_IN, N_OUT, W_OFF
from . import config, retarget, runtime, samples

#: ``numba.cuda``, bound by the kernel builders: the kernels name it as a module global, which
#: is how the CUDA simulator finds it to put its own in its place.
cuda: Any = None


Tiles = tuple[int, int, int, int, int]


def tiles(dtype: str) -> Tiles:
    """``(BM, BN, BK, TM, TN)`` of the layer-by-layer products in ``dtype``
    (:data:`config.GEMM_TILES`)."""
    return config.GEMM_TILES[dtype]


def threads(shape: Tiles) -> int:
    """Threads per block of the products with tiles ``shape``."""
    BM, BN, _, TM, TN = shape
    return (BM // TM) * (BN // TN)


def weight_tiles(layout: np.ndarray, dtype: str) -> tuple[Tiles, list[int]]:
    """The tiles of the ``weights`` product, and how many each layer's ``dW`` takes: the
    narrow tiles (:data:`config.GEMM_NARROW_TILES`) when every layer's ``dW`` fits in one,
    the wide ones otherwise."""
    narrow = config.GEMM_NARROW_TILES[dtype]
    fits = bool((layout[:, N_OUT] <= narrow[0]).all() and (layout[:, N_IN] <= narrow[1]).all())
    BM, BN, *_ = shape = narrow if fits else tiles(dtype)
    return shape, [-(-int(n_out) // BM) * -(-int(n_in) // BN)
                   for n_in, n_out in zip(layout[:, N_IN], layout[:, N_OUT], strict=True)]


@functools.cache
def kernels(dtype: str, shape: Tiles) -> SimpleNamespace:
    """``forward``, ``delta`` and ``weights`` kernels for ``dtype`` with tiles ``shape``."""
    runtime.bind(globals())
    ty = numba.from_dtype(np.dtype(dtype))
    BM, BN, BK, TM, TN = shape
    RS = BM // TM  # thread rows
    CS = BN // TN  # thread columns
    NT = RS * CS
    LA = BM * BK // NT  # elements of each operand's slice that a thread stages
    LB = BN * BK // NT
    if LA * NT != BM * BK or LB * NT != BN * BK:
        raise ValueError(f"GEMM tiles {shape}: {NT} threads must divide BM * BK and BN * BK")
    shared = samples.device_functions()
    act_offset, delta_offset = shared.act_offset, shared.delta_offset
    activate = retarget.activate()
    derivative = retarget.derivative()

    @cuda.jit(device=True, inline="always")
    def owner():
        """``(tr, tc)``: this thread's row and column in the block's grid of threads."""
        tr = cuda.threadIdx.x // CS
        return tr, cuda.threadIdx.x - tr * CS

    @cuda.jit(device=True, inline="always")
    def slot(q, rows_, transposed):
        """``(kk, index)`` of the ``q``-th element that this thread stages of a ``rows_ x BK``
        slice (``rows_`` along the operand's outer dimension): consecutive threads take
        consecutive addresses, along the outer dimension when the operand is stored
        transposed, along ``k`` otherwise."""
        e = cuda.threadIdx.x + q * NT
        if transposed:
            kk = e // rows_
            return kk, e - kk * rows_
        index = e // BK
        return e - index * BK, index

    @cuda.jit(device=True, inline="always")
    def load(source, start, ld, transposed, count, k0, k_hi, outer0, staged, regs):
        """This thread's ``staged`` elements of the ``BK``-deep slice at ``k0`` into ``regs``:
        element ``(outer, k)`` is at ``start + k * ld + outer`` when ``transposed``, else at
        ``start + outer * ld + k``, for ``outer < count``; 0 outside."""
        for q in range(staged):
            kk, index = slot(q, staged * NT // BK, transposed)
            outer = outer0 + index
            k = k0 + kk
            value = ty(0)
            if k < k_hi and outer < count:
                value = (source[start + k * ld + outer] if transposed
                         else source[start + outer * ld + k])
            regs[q] = value

    @cuda.jit(device=True, inline="always")
    def tile_product(A, a_start, lda, trans_a, B, b_start, ldb, trans_b, M, N, k_lo, k_hi,
                     row0, col0, acc, row_sums, with_sums):
        """``acc[i, j] = sum_{k_lo <= k < k_hi} A[r, k] B[k, c]`` for this thread's rows ``r``
        and columns ``c`` of the tile at ``(row0, col0)``. ``A[r, k]`` is stored at
        ``a_start + k * lda + r`` when ``trans_a`` else ``a_start + r * lda + k``; ``B[k, c]``
        at ``b_start + c * ldb + k`` when ``trans_b`` else ``b_start + k * ldb + c``, for
        ``r < M``, ``c < N``. With ``with_sums`` (the same for the whole block), also
        ``row_sums[i] = sum_k A[r, k]`` from the staged slices, at the cost of ``TM`` additions
        per ``TM x TN`` products: the bias gradients, in the weight-gradient product.

        The next slice's global loads are issued before the current slice's products, into
        registers, so that their latency hides behind the arithmetic."""
        As = cuda.shared.array((BK, BM), ty)
        Bs = cuda.shared.array((BK, BN), ty)
        a_regs = cuda.local.array(LA, ty)
        b_regs = cuda.local.array(LB, ty)
        a_frag = cuda.local.array(TM, ty)
        b_frag = cuda.local.array(TN, ty)
        tr, tc = owner()
        for i in range(TM):
            row_sums[i] = 0
            for j in range(TN):
                acc[i, j] = 0
        load(A, a_start, lda, trans_a, M, k_lo, k_hi, row0, LA, a_regs)
        load(B, b_start, ldb, not trans_b, N, k_lo, k_hi, col0, LB, b_regs)
        for k0 in range(k_lo, k_hi, BK):
            for q in range(LA):
                kk, mm = slot(q, BM, trans_a)
                As[kk, mm] = a_regs[q]
            for q in range(LB):
                kk, nn = slot(q, BN, not trans_b)
                Bs[kk, nn] = b_regs[q]
            cuda.syncthreads()
            if k0 + BK < k_hi:
                load(A, a_start, lda, trans_a, M, k0 + BK, k_hi, row0, LA, a_regs)
                load(B, b_start, ldb, not trans_b, N, k0 + BK, k_hi, col0, LB, b_regs)
            for kk in range(BK):
                for i in range(TM):
                    a_frag[i] = As[kk, tr + i * RS]
                if with_sums:
                    for i in range(TM):
                        row_sums[i] += a_frag[i]
                for j in range(TN):
                    b_frag[j] = Bs[kk, tc + j * CS]
                for i in range(TM):
                    for j in range(TN):
                        acc[i, j] += a_frag[i] * b_frag[j]
            cuda.syncthreads()

    @cuda.jit(device=True, inline="always")
    def block_tile(A, a_start, lda, B, b_start, ldb, trans_b, M, N, K, acc):
        """The tile of ``C = A B`` (``M x N``, over all of ``K``; ``A`` stored as it is) at
        ``(blockIdx.y, blockIdx.x)``, into ``acc``; returns the tile's ``(row0, col0)``."""
        row0 = cuda.blockIdx.y * BM
        col0 = cuda.blockIdx.x * BN
        no_sums = cuda.local.array(TM, ty)
        tile_product(A, a_start, lda, False, B, b_start, ldb, trans_b, M, N, 0, K, row0, col0,
                     acc, no_sums, False)
        return row0, col0

    @cuda.jit
    def forward(layout, layer, act, params, a_in, a_in_start, work, batch):
        """Layer ``layer``'s activations: ``f(a_in W^T + b)`` with activation ``act``."""
        n_in = layout[layer, N_IN]
        n_out = layout[layer, N_OUT]
        acc = cuda.local.array((TM, TN), ty)
        row0, col0 = block_tile(a_in, a_in_start, n_in, params, layout[layer, W_OFF], n_in,
                                True, batch, n_out, n_in, acc)
        tr, tc = owner()
        out = act_offset(layout, layer, batch)
        b_off = layout[layer, B_OFF]
        for i in range(TM):
            r = row0 + tr + i * RS
            for j in range(TN):
                c = col0 + tc + j * CS
                if r < batch and c < n_out:
                    work[out + r * n_out + c] = activate(act, acc[i, j] + params[b_off + c])

    @cuda.jit
    def delta(layout, layer, params, work, batch):
        """Layer ``layer - 1``'s deltas: ``(D_layer W_layer) * f'(A_{layer - 1})``."""
        n_in = layout[layer, N_IN]
        n_out = layout[layer, N_OUT]
        acc = cuda.local.array((TM, TN), ty)
        row0, col0 = block_tile(work, delta_offset(layout, layer, batch), n_out, params,
                                layout[layer, W_OFF], n_in, False, batch, n_in, n_out, acc)
        tr, tc = owner()
        a_prev = act_offset(layout, layer - 1, batch)
        d_prev = delta_offset(layout, layer - 1, batch)
        act = layout[layer - 1, ACT]
        for i in range(TM):
            r = row0 + tr + i * RS
            for j in range(TN):
                c = col0 + tc + j * CS
                if r < batch and c < n_in:
                    e = r * n_in + c
                    work[d_prev + e] = acc[i, j] * derivative(act, work[a_prev + e])

    @cuda.jit
    def weights(layout, X, work, batch, split_rows, partials):
        """Every layer's ``dW = D^T A_in`` over the samples of split ``blockIdx.z``, and ``db``
        (the row sums of ``D^T``, in the blocks of the first column of tiles), into that
        split's slice of ``partials`` (the parameter layout)."""
        layer = cuda.blockIdx.y
        n_in = layout[layer, N_IN]
        n_out = layout[layer, N_OUT]
        col_tiles = (n_in + BN - 1) // BN
        tile = cuda.blockIdx.x
        if tile >= col_tiles * ((n_out + BM - 1) // BM):
            return
        row0 = (tile // col_tiles) * BM
        col0 = (tile - (tile // col_tiles) * col_tiles) * BN
        split = cuda.blockIdx.z
        k_lo = split * split_rows
        k_hi = min(batch, k_lo + split_rows)
        acc = cuda.local.array((TM, TN), ty)
        bias = cuda.local.array(TM, ty)
        a_in = X if layer == 0 else work
        a_in_start = 0 if layer == 0 else act_offset(layout, layer - 1, batch)
        tile_product(work, delta_offset(layout, layer, batch), n_out, True, a_in, a_in_start,
                     n_in, False, n_out, n_in, k_lo, k_hi, row0, col0, acc, bias, col0 == 0)
        tr, tc = owner()
        n_params = layout[layout.shape[0] - 1, B_OFF] + layout[layout.shape[0] - 1, N_OUT]
        base = split * n_params
        for i in range(TM):
            r = row0 + tr + i * RS
            if r < n_out:
                for j in range(TN):
                    c = col0 + tc + j * CS
                    if c < n_in:
                        partials[base + layout[layer, W_OFF] + r * n_in + c] = acc[i, j]
                if col0 == 0 and tc == 0:
                    partials[base + layout[layer, B_OFF] + r] = bias[i]

    return SimpleNamespace(forward=forward, delta=delta, weights=weights)
