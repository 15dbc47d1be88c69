"""Small matrix products ``C = A B`` in compiled code, faster than BLAS at a network's sizes.

A BLAS call packs both operands into its own layout, takes a lock and dispatches on the shapes
before it multiplies; for the products of a small network (tens of thousands of multiply-adds)
that is most of its time. :func:`gemm` multiplies in place, with register-blocked micro-kernels:
each call computes a block of ``C`` with every sum in a scalar of its own, reading per step of
``k`` one contiguous row slice of ``B`` and one element of ``A`` per row. LLVM's SLP vectorizer
packs those scalars into SIMD registers (one FMA per row and register width per step).

The main kernel takes blocks of :data:`BLOCK_ROWS` (8) rows by two SIMD registers of columns: 32
float32 or 16 float64 columns with AVX-512, 16 or 8 with AVX2 (:func:`block_columns`), that is 16
accumulator registers, half of AVX-512's and all of AVX2's. The rows and columns it leaves go to
kernels of ``MR`` (4) rows: ``NR`` columns, then ``NR_NARROW``, then ``NR_QUAD``. On the
development machine (Zen 5, AVX-512, one thread), interleaved with the 4 x 32 blocks used before
in one process: 128 x 256 x 256 float32 took 65 to 68 µs against 78 to 106, the same product
with a transposed ``A`` (a weight gradient) 68 against 132, and float64 138 against 145 to 182.
In separate runs, 8 x 32 float64 blocks (32 accumulator registers) spilled and ran slower than
4 x 32, and compiled for Haswell (AVX2) 8 x 16 float32 blocks ran at 183 to 190 GFLOP/s against
157 to 161 for 4 x 32, 8 x 8 float64 at 84 to 86 against 69 to 72 for 4 x 16. The cost is
compile time: the main kernel's 256 float32 scalars take the SLP vectorizer seconds more, which is
why the product is compiled only once (below). A 32 x 64 x 64 float32 product took 1.2 µs in
the 4-row kernels against OpenBLAS's 3.2 µs (its Haswell kernels, one thread).

numba leaves the SLP vectorizer off (``NUMBA_SLP_VECTORIZE``): the products' compilation (and the
micro-kernels' dispatcher) turns it on while it compiles, and only then (numba reads the setting
each time it builds an optimisation pipeline). Without it the same code runs scalar, ten times
slower, and is still correct.

The micro-kernels are generated Python source (``rows * columns`` accumulators are not written by
hand); they are compiled with ``fastmath={"contract"}``, so each multiply-add is one fused
operation. They are inlined into the product's blocking loops (a call of a separate kernel passes
three array structures and cost as much as a short block's arithmetic: the eight products of a
4-32-16-4 network's training step at batch 32 took 1.44 µs as calls, 0.99 inlined).

The whole product is one C function (a numba ``cfunc``) per dtype and pair of layouts, compiled
once when this module is first imported and cached on disk, and bound to a symbol name that the
kernels call (as :mod:`fastprop.cpu.blas` binds BLAS). As an ordinary numba function it was linked
into every function that calls it, directly or not, and optimised again in each (numba's
``CodeLibrary.finalize`` links callees in "to allow for inlining"): with the 8-row kernel the
float32 gradient's first compilation took 89 s (15 s with the 4-row kernel alone). With C
functions it takes 6.5 s, after the C functions' own compilation, once per machine. The 128-row
half of a split 256-wide float32 gradient runs in 0.85 ms either way (1.40 with the 4-row kernel).
"""

from __future__ import annotations

from functools import partial

from llvmlite import binding
from numba import carray, cfunc, farray, types
from numba.core import config
from numba.core.compiler_lock import global_compiler_lock
from numba.core.errors import TypingError
from numba.core.registry import CPUDispatcher
from numba.extending import overload

from .._jit import jit

#: Rows and columns of ``C`` per micro-kernel call; the columns that remain go to a kernel
#: ``NR_NARROW`` wide (at most once per row block) and then to one ``NR_QUAD`` wide, so that narrow
#: layers (an output layer of 4 or 10 units, a hidden layer of 16) stay out of BLAS as well.
MR, NR, NR_NARROW, NR_QUAD = 4, 32, 16, 4
#: Rows of ``C`` per call of the main kernel (see :func:`block_columns` for its columns).
BLOCK_ROWS = 8


def _vector_bytes() -> int:
    """Bytes per SIMD register of the CPU numba compiles for: 64 where the host has AVX-512 and
    numba targets the host (no ``NUMBA_CPU_NAME``), else 32."""
    if config.CPU_NAME not in (None, "host"):
        return 32
    return 64 if binding.get_host_cpu_features().get("avx512f") else 32


def block_columns(itemsize: int) -> int:
    """Columns of the main kernel's blocks for elements of ``itemsize`` bytes: two SIMD
    registers' worth."""
    return 2 * _vector_bytes() // itemsize


def _micro_kernel_source(MR: int, NR: int) -> str:
    """``micro_kernel(A, B, C, i0, j0)``: ``C[i0:i0+MR, j0:j0+NR] = A[i0:i0+MR, :] @
    B[:, j0:j0+NR]``, every sum in a scalar of its own."""
    acc = [[f"c{r}_{c}" for c in range(NR)] for r in range(MR)]
    lines = ["def micro_kernel(A, B, C, i0, j0):", "    zero = C.dtype.type(0)"]
    lines += [f"    {' = '.join(row)} = zero" for row in acc]
    lines.append("    for k in range(A.shape[1]):")
    lines += [f"        a{r} = A[i0 + {r}, k]" for r in range(MR)]
    lines.append(f"        b = B[k, j0:j0 + {NR}]")
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


def _micro_kernel_function(rows: int, columns: int):
    """The Python function of the ``rows x columns`` micro-kernel."""
    namespace: dict = {}
    exec(compile(_micro_kernel_source(rows, columns),
                 f"<fastprop {rows}x{columns} micro-kernel>", "exec"), namespace)
    return namespace["micro_kernel"]


def _compile_micro_kernel(rows: int, columns: int) -> CPUDispatcher:
    return _slp_jit(_micro_kernel_function(rows, columns), inline="always")


micro_kernel = _compile_micro_kernel(MR, NR)
narrow_micro_kernel = _compile_micro_kernel(MR, NR_NARROW)
quad_micro_kernel = _compile_micro_kernel(MR, NR_QUAD)
#: The main kernel's Python function per element size (bytes).
_BLOCK_KERNELS = {itemsize: _micro_kernel_function(BLOCK_ROWS, block_columns(itemsize))
                  for itemsize in (4, 8)}


def block_kernel(A, B, C, i0, j0):
    """``C[i0:i0+BLOCK_ROWS, j0:j0+n] = A[i0:i0+BLOCK_ROWS, :] @ B[:, j0:j0+n]``, ``n`` the
    dtype's :func:`block_columns`; compiled code only (an overload, chosen by dtype)."""
    raise NotImplementedError("block_kernel runs in compiled code only")


@overload(block_kernel, inline="always")
def _block_kernel_for(A, B, C, i0, j0):
    return _BLOCK_KERNELS[C.dtype.bitwidth // 8]


def block_width(C):
    """The dtype's :func:`block_columns`, a constant in compiled code."""
    return block_columns(C.dtype.itemsize)


@overload(block_width, inline="always")
def _block_width_for(C):
    width = block_columns(C.dtype.bitwidth // 8)
    return lambda C: width


@partial(_slp_jit, inline="always")
def _four_rows(A, B, C, i0, j0):
    """``C[i0:i0+MR, j0:]`` but its last ``N % NR_QUAD`` columns, in the ``MR``-row kernels:
    ``NR``-wide blocks, one ``NR_NARROW``-wide block where that many columns remain, then
    ``NR_QUAD``-wide blocks (``j0`` a multiple of ``NR_QUAD``)."""
    N = C.shape[1]
    while j0 + NR <= N:
        micro_kernel(A, B, C, i0, j0)
        j0 += NR
    if j0 + NR_NARROW <= N:
        narrow_micro_kernel(A, B, C, i0, j0)
        j0 += NR_NARROW
    while j0 + NR_QUAD <= N:
        quad_micro_kernel(A, B, C, i0, j0)
        j0 += NR_QUAD


@partial(_slp_jit, inline="always")
def _blocked_product(A, B, C):
    """``C = A B`` (overwritten), the blocking of :func:`gemm`. Blocks of ``BLOCK_ROWS`` rows go
    to :func:`block_kernel`; the columns it leaves, and the rows it leaves in blocks of ``MR``,
    to the ``MR``-row kernels (:func:`_four_rows`); and the rest (the last ``M % MR`` rows, the
    last ``N % NR_QUAD`` columns) to a row-by-row loop."""
    M, N = C.shape
    width = block_width(C)
    block_rows = M - M % BLOCK_ROWS
    block_cols = N - N % width
    full_rows = M - M % MR
    full_cols = N - N % NR_QUAD  # every kernel's width is a multiple of NR_QUAD
    for i0 in range(0, block_rows, BLOCK_ROWS):
        for j0 in range(0, block_cols, width):
            block_kernel(A, B, C, i0, j0)
    # A loop of its own: inlined into the one above, the MR-row kernels slowed the main kernel
    # by a quarter (128 x 256 x 256 float32: 86 µs instead of 68).
    for i0 in range(0, full_rows, MR):
        _four_rows(A, B, C, i0, block_cols if i0 < block_rows else 0)
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



def _c_times_c_into_c(a, b, c, M, K, N):
    """``C = A B``: ``A`` ``M x K``, ``B`` ``K x N`` and ``C`` ``M x N`` row-major."""
    _blocked_product(carray(a, (M, K)), carray(b, (K, N)), carray(c, (M, N)))


def _f_times_c_into_c(a, b, c, M, K, N):
    """``C = A B`` with ``A`` column-major (a transposed row-major matrix)."""
    _blocked_product(farray(a, (M, K)), carray(b, (K, N)), carray(c, (M, N)))


def _f_times_c_into_f(a, b, c, M, K, N):
    """``C = A B`` with ``A`` and ``C`` column-major."""
    _blocked_product(farray(a, (M, K)), carray(b, (K, N)), farray(c, (M, N)))


#: The C functions per layout of ``A`` and of ``C`` (``B`` is row-major in every product).
_PRODUCTS = {("C", "C"): _c_times_c_into_c, ("F", "C"): _f_times_c_into_c,
             ("F", "F"): _f_times_c_into_f}


def _symbol(a_layout: str, c_layout: str, bits: int) -> str:
    return f"fastprop_gemm_{a_layout}{c_layout}_f{bits}"


def _compile_products() -> list:
    """Compile (or load from numba's cache) every C product and bind its symbol name."""
    compiled = []
    with global_compiler_lock:
        before = config.SLP_VECTORIZE
        config.SLP_VECTORIZE = 1
        try:
            for (a_layout, c_layout), function in _PRODUCTS.items():
                for real in (types.float32, types.float64):
                    pointer = types.CPointer(real)
                    signature = types.void(pointer, pointer, pointer, *[types.intp] * 3)
                    product = cfunc(signature, cache=True, error_model="numpy",
                                    fastmath={"contract"})(function)
                    binding.add_symbol(_symbol(a_layout, c_layout, real.bitwidth),
                                       product.address)
                    compiled.append(product)
        finally:
            config.SLP_VECTORIZE = before
    return compiled


_COMPILED = _compile_products()
_CALLS = {(a_layout, c_layout, bits): types.ExternalFunction(
              _symbol(a_layout, c_layout, bits), types.void(*[types.intp] * 6))
          for a_layout, c_layout in _PRODUCTS for bits in (32, 64)}


def _call_product(A, B, C):
    """The C product for the layouts and dtype of ``A`` and ``C``; compiled code only."""
    raise NotImplementedError("_call_product runs in compiled code only")


@overload(_call_product, inline="always")
def _call_product_for(A, B, C):
    key = (A.layout, C.layout, C.dtype.bitwidth)
    if B.layout != "C" or key not in _CALLS:
        raise TypingError(f"gemm: no compiled product for layouts A {A.layout}, B {B.layout}, "
                          f"C {C.layout} of {C.dtype}")
    product = _CALLS[key]

    def call(A, B, C):
        M, N = C.shape
        product(A.ctypes.data, B.ctypes.data, C.ctypes.data, M, A.shape[1], N)

    return call


@jit(inline="always")
def gemm(A, B, C):
    """``C = A B`` (overwritten) for 2-D ``A`` row- or column-major (a transposed view is fine),
    ``B`` row-major and ``C`` row- or column-major, all contiguous (numba's layouts ``C`` and
    ``F``: another layout is a typing error); shapes must agree (not checked: callers pass views
    of the network's buffers). One call of the compiled C product (see above)."""
    _call_product(A, B, C)
