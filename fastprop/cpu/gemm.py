"""Matrix products ``C = A B`` in compiled code, faster than BLAS at a network's sizes.

A BLAS call packs both operands into its own layout, takes a lock and dispatches on the shapes
before it multiplies; for the products of a small network (tens of thousands of multiply-adds)
that is most of its time. :func:`gemm` multiplies in place, with a register-blocked micro-kernel:
each call of :data:`micro_kernel` computes a ``MR x NR`` block of ``C`` in ``MR`` SIMD
accumulators of ``NR`` lanes, with one fused multiply-add per row and step of ``k``: a row slice
of ``B`` times one element of ``A``, broadcast.

The micro-kernels are numba intrinsics that emit that loop as LLVM vector instructions
(:func:`_emit_micro_kernel`): LLVM splits each ``NR``-lane vector into the CPU's registers (AVX,
AVX-512 or NEON) and fuses the multiply-adds where the CPU has FMA. Written as ``MR * NR``
scalar accumulators in Python, the same kernel took numba seconds to compile per variant of
:func:`gemm`, and needed LLVM's SLP vectorizer, which numba leaves off. Being intrinsics, they
are compiled into the code of their caller, with no call between them.

:func:`packed_gemm` is the same micro-kernels for products whose right operand does not fit the
core's cache: it copies each 32-column block of ``B`` into a contiguous buffer first, then runs
every row block of ``C`` against that copy (see its docstring), so that large products run at
the micro-kernels' speed instead of waiting on memory.
"""

from __future__ import annotations

from functools import partial

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

from .._jit import jit
from .views import matrix_view

#: Rows and columns of ``C`` per micro-kernel call; the columns that remain go to a kernel
#: ``NR_NARROW`` wide (at most once per row block) and then to one ``NR_QUAD`` wide, so that narrow
#: layers (an output layer of 4 or 10 units, a hidden layer of 16) stay out of BLAS as well.
MR, NR, NR_NARROW, NR_QUAD = 4, 32, 16, 4


def _element_pointer(context, builder, array_type, array, row, column):
    """The address of ``array[row, column]`` (no bounds check)."""
    return cgutils.get_item_pointer2(context, builder, array.data,
                                     cgutils.unpack_tuple(builder, array.shape, 2),
                                     cgutils.unpack_tuple(builder, array.strides, 2),
                                     array_type.layout, [row, column])


def _load_row(context, builder, array_type, array, row, column, vector):
    """``array[row, column:column + n]`` as an ``n``-lane vector: one load from a C-ordered
    array, element by element from any other layout."""
    first = _element_pointer(context, builder, array_type, array, row, column)
    element = vector.element
    if array_type.layout == "C":
        return builder.load(builder.bitcast(first, vector.as_pointer()),
                            align=context.get_abi_sizeof(element))
    row_vector = ir.Constant(vector, ir.Undefined)
    for lane in range(vector.count):
        at = builder.add(column, ir.Constant(column.type, lane))
        value = builder.load(_element_pointer(context, builder, array_type, array, row, at))
        row_vector = builder.insert_element(row_vector, value, ir.Constant(ir.IntType(32), lane))
    return row_vector


def _store_row(context, builder, array_type, array, row, column, value):
    """``array[row, column:column + n] = value``, the counterpart of :func:`_load_row`."""
    first = _element_pointer(context, builder, array_type, array, row, column)
    if array_type.layout == "C":
        builder.store(value, builder.bitcast(first, value.type.as_pointer()),
                      align=context.get_abi_sizeof(value.type.element))
        return
    for lane in range(value.type.count):
        at = builder.add(column, ir.Constant(column.type, lane))
        builder.store(builder.extract_element(value, ir.Constant(ir.IntType(32), lane)),
                      _element_pointer(context, builder, array_type, array, row, at))


def _check_block(context, builder, shapes, i0, j0, jb, columns):
    """Under ``NUMBA_BOUNDSCHECK``: the block's last row and columns lie inside ``A``, ``B`` and
    ``C``, and ``B`` has a row for every column of ``A`` (IndexError otherwise)."""
    (a_rows, depth), (b_rows, b_cols), (c_rows, c_cols) = shapes
    intp = depth.type
    last_row = builder.add(i0, ir.Constant(intp, MR - 1))
    for index, length in ((last_row, a_rows), (last_row, c_rows),
                          (builder.add(j0, ir.Constant(intp, columns - 1)), c_cols),
                          (builder.add(jb, ir.Constant(intp, columns - 1)), b_cols)):
        cgutils.do_boundscheck(context, builder, index, length)
    with builder.if_then(builder.icmp_signed(">", depth, ir.Constant(intp, 0))):
        cgutils.do_boundscheck(context, builder, builder.sub(depth, ir.Constant(intp, 1)), b_rows)


def _emit_micro_kernel(columns, context, builder, signature, args):
    """The code of ``C[i0:i0+MR, j0:j0+columns] = A[i0:i0+MR, :] @ B[:, jb:jb+columns]``: one
    ``columns``-lane accumulator per row, and per step of ``k`` one row slice of ``B`` and one
    broadcast element of ``A`` per row, multiplied and added in one fused operation where the
    CPU has FMA (``llvm.fmuladd``)."""
    array_types, offset_types = signature.args[:3], signature.args[3:]
    A, B, C = (make_array(t)(context, builder, value)
               for t, value in zip(array_types, args[:3], strict=True))
    i0, j0, jb = (context.cast(builder, value, t, types.intp)
                  for value, t in zip(args[3:], offset_types, strict=True))
    shapes = [cgutils.unpack_tuple(builder, x.shape, 2) for x in (A, B, C)]
    if context.enable_boundscheck:
        _check_block(context, builder, shapes, i0, j0, jb, columns)
    A_type, B_type, C_type = array_types
    element = context.get_data_type(C_type.dtype)
    vector = ir.VectorType(element, columns)
    fmuladd = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vector, [vector] * 3),
        f"llvm.fmuladd.v{columns}f{C_type.dtype.bitwidth}")
    broadcast = ir.Constant(ir.VectorType(ir.IntType(32), columns), [0] * columns)
    rows = [builder.add(i0, ir.Constant(i0.type, r)) for r in range(MR)]
    sums = [cgutils.alloca_once_value(builder, ir.Constant(vector, None)) for _ in range(MR)]
    with cgutils.for_range(builder, shapes[0][1]) as loop:  # A's columns
        b = _load_row(context, builder, B_type, B, loop.index, jb, vector)
        for row, total in zip(rows, sums, strict=True):
            a = builder.load(_element_pointer(context, builder, A_type, A, row, loop.index))
            a = builder.insert_element(ir.Constant(vector, ir.Undefined), a,
                                       ir.Constant(ir.IntType(32), 0))
            a = builder.shuffle_vector(a, ir.Constant(vector, ir.Undefined), broadcast)
            builder.store(builder.call(fmuladd, [a, b, builder.load(total)]), total)
    for row, total in zip(rows, sums, strict=True):
        _store_row(context, builder, C_type, C, row, j0, builder.load(total))
    return context.get_dummy_value()


def _micro_kernel(columns: int):
    """An intrinsic ``kernel(A, B, C, i0, j0, jb)`` (compiled code only) that sets
    ``C[i0:i0+MR, j0:j0+columns] = A[i0:i0+MR, :] @ B[:, jb:jb+columns]``; ``A``, ``B`` and
    ``C`` are 2-D arrays of one float dtype, any layout (the rows of a C-ordered ``B`` and ``C``
    are loaded and stored whole)."""
    @intrinsic
    def kernel(typingctx, A, B, C, i0, j0, jb):
        arrays, offsets = (A, B, C), (i0, j0, jb)
        if (all(isinstance(t, types.Array) and t.ndim == 2 and t.dtype == C.dtype
                for t in arrays) and C.dtype in (types.float32, types.float64)
                and all(isinstance(t, types.Integer) for t in offsets)):
            return types.none(*arrays, *offsets), partial(_emit_micro_kernel, columns)
        return None

    return kernel


micro_kernel = _micro_kernel(NR)
narrow_micro_kernel = _micro_kernel(NR_NARROW)
quad_micro_kernel = _micro_kernel(NR_QUAD)


@jit(fastmath={"contract"})
def gemm(A, B, C):
    """``C = A B`` (overwritten) for 2-D operands of any layout (the kernels are fastest with a
    C-ordered ``B`` and ``C``; the weight gradient writes through a transposed ``C``); shapes
    must agree (not checked: callers pass views of the network's buffers). Full ``MR x NR``
    blocks go to :data:`micro_kernel`, then one
    ``MR x NR_NARROW`` block per row block to the narrow kernel where that many columns remain,
    then ``MR x NR_QUAD`` blocks to the quad kernel, and the rest (the last ``M % MR`` rows, the
    last ``N % NR_QUAD`` columns) to a row-by-row loop."""
    M, N = C.shape
    full_rows = M - M % MR
    wide_cols = N - N % NR
    narrow_cols = wide_cols + NR_NARROW if N - wide_cols >= NR_NARROW else wide_cols
    full_cols = N - N % NR_QUAD  # NR and NR_NARROW are multiples of NR_QUAD
    for i0 in range(0, full_rows, MR):
        for j0 in range(0, wide_cols, NR):
            micro_kernel(A, B, C, i0, j0, j0)
        if narrow_cols > wide_cols:
            narrow_micro_kernel(A, B, C, i0, wide_cols, wide_cols)
        for j0 in range(narrow_cols, full_cols, NR_QUAD):
            quad_micro_kernel(A, B, C, i0, j0, j0)
    for i in range(M):
        first = full_cols if i < full_rows else 0
        if first == N:
            continue
        c = C[i, first:]
        c[:] = 0
        for k in range(A.shape[1]):
            a = A[i, k]
            b = B[k, first:]
            for j in range(c.shape[0]):
                c[j] += a * b[j]


#: Elements of the pack buffer that :func:`packed_gemm` needs per inner-dimension step.
PACK_COLUMNS = NR


@jit
def _pack_columns(B, j0, panel):
    """``panel = B[:, j0:j0 + panel.shape[1]]``, copied into contiguous rows."""
    for k in range(panel.shape[0]):
        row = panel[k]
        for c in range(panel.shape[1]):
            row[c] = B[k, j0 + c]


@jit(fastmath={"contract"})
def packed_gemm(A, B, C, pack):
    """``C = A B`` (overwritten) for products too large for :func:`gemm`'s loop order, with
    operands of any layout (the kernels store C-ordered rows of ``C`` whole); ``pack`` is room
    for ``A.shape[1] * PACK_COLUMNS`` elements. Shapes must agree and ``pack`` be large enough
    (not checked: callers pass views of the network's buffers).

    :func:`gemm` sweeps all of ``B`` once per four rows of ``C``: past the core's cache (a
    1024 x 1024 ``B``) it waits on memory, and the rows of a column block lie a row length
    apart, where the cache holds only a few lines that far apart. Here each column block of
    ``B`` (``PACK_COLUMNS`` wide, or the narrow and quad widths for the last columns) is first
    copied into ``pack``, contiguous, and every row block of ``C`` is then computed against that
    copy, which stays in the core's L2 cache (``K x 32`` elements: 256 KiB for 1024 float64 or
    2048 float32; the inner dimension is not blocked, so a much longer one spills it). The last
    ``M % MR`` rows and ``N % NR_QUAD`` columns go to plain loops."""
    M, N = C.shape
    K = A.shape[1]
    full_rows = M - M % MR
    full_cols = N - N % NR_QUAD
    j0 = 0
    while j0 < full_cols:
        left = full_cols - j0
        width = NR if left >= NR else (NR_NARROW if left >= NR_NARROW else NR_QUAD)
        panel = matrix_view(pack, 0, K, width)
        _pack_columns(B, j0, panel)
        if width == NR:  # a loop per kernel: one loop around all three compiles to slower code
            for i0 in range(0, full_rows, MR):
                micro_kernel(A, panel, C, i0, j0, 0)
        elif width == NR_NARROW:
            for i0 in range(0, full_rows, MR):
                narrow_micro_kernel(A, panel, C, i0, j0, 0)
        else:
            for i0 in range(0, full_rows, MR):
                quad_micro_kernel(A, panel, C, i0, j0, 0)
        for i in range(full_rows, M):
            c = C[i, j0:j0 + width]
            c[:] = 0
            for k in range(K):
                a = A[i, k]
                b = panel[k]
                for j in range(width):
                    c[j] += a * b[j]
        j0 += width
    for i in range(M):
        for j in range(full_cols, N):
            total = C.dtype.type(0)
            for k in range(K):
                total += A[i, k] * B[k, j]
            C[i, j] = total
