"""Matrix products ``C = A B`` in compiled code, faster than BLAS at a network's sizes.

A BLAS call packs both operands into its own layout, takes a lock and dispatches on the shapes
before it multiplies; for the products of a small network (tens of thousands of multiply-adds)
that is most of its time. :func:`gemm` multiplies in place, with a register-blocked micro-kernel:
each call of :func:`micro_kernel` computes a ``MR x NR`` block of ``C`` with every sum in a scalar
of its own, reading per step of ``k`` one contiguous row slice of ``B`` and ``MR`` elements of
``A``. LLVM's SLP vectorizer packs those scalars into SIMD registers (one FMA per row and
register width per step).

numba leaves the SLP vectorizer off (``NUMBA_SLP_VECTORIZE``): the dispatcher of :func:`gemm`
(and of the micro-kernels) turns it on while it compiles, and only then (numba reads the setting
each time it builds an optimisation pipeline). Without it the same code runs scalar, far
slower, and is still correct.

The micro-kernel is generated Python source (``MR * NR`` accumulators are not written by hand);
it is compiled with ``fastmath={"contract"}``, so each multiply-add is one fused operation. The
micro-kernels are inlined into :func:`gemm`, which is compiled the same way: a call of a separate
kernel passes three array structures and costs as much as a short block's arithmetic.

:func:`packed_gemm` is the same micro-kernels for products whose right operand does not fit the
core's cache: it copies each 32-column block of ``B`` into a contiguous buffer first, then runs
every row block of ``C`` against that copy (see its docstring), so that large products run at
the micro-kernels' speed instead of waiting on memory.
"""

from __future__ import annotations

from functools import partial

from numba.core import config
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import CPUDispatcher

from .views import matrix_view

#: Rows and columns of ``C`` per micro-kernel call; the columns that remain go to a kernel
#: ``NR_NARROW`` wide (at most once per row block) and then to one ``NR_QUAD`` wide, so that narrow
#: layers (an output layer of 4 or 10 units, a hidden layer of 16) stay out of BLAS as well.
MR, NR, NR_NARROW, NR_QUAD = 4, 32, 16, 4


def _micro_kernel_source(NR: int) -> str:
    """``micro_kernel(A, B, C, i0, j0, jb)``: ``C[i0:i0+MR, j0:j0+NR] = A[i0:i0+MR, :] @
    B[:, jb:jb+NR]``, every sum in a scalar of its own."""
    acc = [[f"c{r}_{c}" for c in range(NR)] for r in range(MR)]
    lines = ["def micro_kernel(A, B, C, i0, j0, jb):", "    zero = C.dtype.type(0)"]
    lines += [f"    {' = '.join(row)} = zero" for row in acc]
    lines.append("    for k in range(A.shape[1]):")
    lines += [f"        a{r} = A[i0 + {r}, k]" for r in range(MR)]
    lines.append(f"        b = B[k, jb:jb + {NR}]")
    lines += [f"        b{c} = b[{c}]" for c in range(NR)]
    lines += [f"        {acc[r][c]} += a{r} * b{c}" for r in range(MR) for c in range(NR)]
    for r in range(MR):
        lines.append(f"    c = C[i0 + {r}, j0:j0 + {NR}]")
        lines += [f"    c[{c}] = {acc[r][c]}" for c in range(NR)]
    return "\n".join(lines) + "\n"


class _SLPDispatcher(CPUDispatcher):
    """A numba dispatcher whose compilations run LLVM's SLP vectorizer."""

    def compile(self, sig):
        with global_compiler_lock:
            before = config.SLP_VECTORIZE
            config.SLP_VECTORIZE = 1
            try:
                return super().compile(sig)
            finally:
                config.SLP_VECTORIZE = before


def _slp_jit(py_func, inline: str = "never", cache: bool = False) -> CPUDispatcher:
    """``py_func`` compiled by :class:`_SLPDispatcher` (nopython, IEEE division, fused
    multiply-adds); ``inline="always"`` inlines it into its callers, in numba's IR."""
    dispatcher = _SLPDispatcher(py_func, targetoptions={
        "nopython": True, "error_model": "numpy", "fastmath": {"contract"}, "inline": inline})
    if cache:
        dispatcher.enable_caching()
    return dispatcher


def _compile_micro_kernel(columns: int) -> CPUDispatcher:
    namespace: dict = {}
    exec(compile(_micro_kernel_source(columns), f"<fastprop {MR}x{columns} micro-kernel>",
                 "exec"), namespace)
    return _slp_jit(namespace["micro_kernel"], inline="always")


micro_kernel = _compile_micro_kernel(NR)
narrow_micro_kernel = _compile_micro_kernel(NR_NARROW)
quad_micro_kernel = _compile_micro_kernel(NR_QUAD)


@partial(_slp_jit, cache=True)
def gemm(A, B, C):
    """``C = A B`` (overwritten) for 2-D ``A`` of any layout (a transposed view is fine) and
    C-contiguous ``B`` and ``C``; shapes must agree (not checked: callers pass views of the
    network's buffers). Full ``MR x NR`` blocks go to :func:`micro_kernel`, then one
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


@partial(_slp_jit, inline="always")
def _pack_columns(B, j0, panel):
    """``panel = B[:, j0:j0 + panel.shape[1]]``, copied into contiguous rows."""
    for k in range(panel.shape[0]):
        row = panel[k]
        for c in range(panel.shape[1]):
            row[c] = B[k, j0 + c]


@partial(_slp_jit, cache=True)
def packed_gemm(A, B, C, pack):
    """``C = A B`` (overwritten) for products too large for :func:`gemm`'s loop order, with ``A``
    and ``B`` of any layout and C-contiguous ``C``; ``pack`` is room for ``A.shape[1] *
    PACK_COLUMNS`` elements. Shapes must agree and ``pack`` be large enough (not checked:
    callers pass views of the network's buffers).

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
