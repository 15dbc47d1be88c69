"""Large matrix products from compiled code, on the BLAS that NumPy itself uses.

The matrix backend hands its large products (see :data:`fastprop.cpu.products.SMALL_GEMM`) to BLAS.
numba's own ``np.dot`` would call SciPy's BLAS (``scipy.linalg.cython_blas``): in NumPy's and
SciPy's wheels that is a second OpenBLAS with a thread pool of its own. Two pools in one process
cost time twice over: a program that also calls NumPy's BLAS wakes one pool while the other spins
down, and the two compete for the same cores. :func:`dot` calls ``cblas_sgemm`` or
``cblas_dgemm`` of NumPy's BLAS instead, so that every product runs on NumPy's one pool.

How. At import, every BLAS library loaded in the process (threadpoolctl finds them; NumPy's is
loaded with NumPy) is searched for 64-bit-integer CBLAS products: ``scipy_cblas_sgemm64_`` and
``scipy_cblas_dgemm64_`` (NumPy's wheels, scipy-openblas64), else ``cblas_sgemm64_`` and
``cblas_dgemm64_``. Their addresses are registered with LLVM under fastprop's own names,
``fastprop_sgemm`` and ``fastprop_dgemm``, which the compiled code calls. numba's disk cache keeps
calls by name, so cached kernels stay valid on any machine: the names are bound at every import.

Where no such symbols exist (a NumPy built on Accelerate, MKL or a 32-bit-integer OpenBLAS), or
where the environment sets ``FASTPROP_NUMPY_DOT=1``, the two names are bound to a Python callback
with the same C signature that multiplies with NumPy's ``np.dot``: the same BLAS, plus the cost
of entering Python for every product, which only small products notice. ``PRODUCTS`` says which
path is in use.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils, config
from numba.core.typing.ctypes_utils import from_ctypes
from numba.extending import intrinsic

from .._jit import jit
from ..threads import blas_kernels, blas_paths

#: CBLAS's row-major order and its transpose flags.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

#: Symbol names of 64-bit-integer CBLAS ``?gemm`` in the order they are looked for; ``{}`` is
#: ``s`` or ``d``.
CBLAS_NAMES = ("scipy_cblas_{}gemm64_", "cblas_{}gemm64_")


def _c_arguments(real: type) -> list:
    """The ctypes of ``cblas_?gemm``'s arguments with 64-bit integers (pointers as ``ssize_t``,
    which numba passes as ``intp``), ``real`` being ``ctypes.c_float`` or ``ctypes.c_double``."""
    flags, sizes, pointer = [ctypes.c_int32] * 3, [ctypes.c_int64] * 3, ctypes.c_ssize_t
    return [*flags, *sizes, real, pointer, ctypes.c_int64, pointer, ctypes.c_int64, real, pointer,
            ctypes.c_int64]


def _external(name: str, real: type) -> types.ExternalFunction:
    """The compiled code's call of the symbol ``name`` with :func:`_c_arguments`."""
    return types.ExternalFunction(name, types.void(*map(from_ctypes, _c_arguments(real))))


_sgemm = _external("fastprop_sgemm", ctypes.c_float)
_dgemm = _external("fastprop_dgemm", ctypes.c_double)


@jit(inline="always")
def _operand(X):
    """CBLAS's transpose flag and leading dimension for a row-major matrix (rows of unit stride,
    a C-contiguous view) or a column-major one (a transposed view); -1 for any other layout."""
    rows, cols = X.shape
    size = X.itemsize
    row_step, col_step = X.strides
    if ((col_step == size or cols == 1) and row_step % size == 0
            and (row_step >= cols * size or rows == 1)):
        return np.int32(NO_TRANS), max(row_step // size, cols)
    if ((row_step == size or rows == 1) and col_step % size == 0
            and (col_step >= rows * size or cols == 1)):
        return np.int32(TRANS), max(col_step // size, rows)
    return np.int32(NO_TRANS), np.int64(-1)


@jit
def dot(A, B, out):
    """``out = A B`` on NumPy's BLAS.

    ``A`` and ``B`` are row-major or column-major (a transposed view is fine), ``out`` row-major
    and contiguous, all of one floating dtype. Shapes and layouts are checked (a ``ValueError``):
    BLAS would read and write past the arrays otherwise."""
    M, N = out.shape
    K = A.shape[1]
    trans_a, lda = _operand(A)
    trans_b, ldb = _operand(B)
    if A.shape[0] != M or B.shape[0] != K or B.shape[1] != N:
        raise ValueError("dot: the shapes of A, B and out do not agree")
    trans_c, ldc = _operand(out)
    if lda < 0 or ldb < 0 or trans_c != NO_TRANS or ldc != N:
        raise ValueError("dot: A and B must be row- or column-major and out contiguous")
    order = np.int32(ROW_MAJOR)
    if out.itemsize == 4:
        _sgemm(order, trans_a, trans_b, M, N, K, np.float32(1), A.ctypes.data, lda,
               B.ctypes.data, ldb, np.float32(0), out.ctypes.data, ldc)
    else:
        _dgemm(order, trans_a, trans_b, M, N, K, np.float64(1), A.ctypes.data, lda,
               B.ctypes.data, ldb, np.float64(0), out.ctypes.data, ldc)


def _matrix(address: int, trans: int, rows: int, cols: int, ld: int, real: type) -> np.ndarray:
    """The ``rows x cols`` operand a CBLAS call describes, as a NumPy view of its memory."""
    stored_rows, stored_cols = (cols, rows) if trans == TRANS else (rows, cols)
    pointer = ctypes.cast(address, ctypes.POINTER(real))
    stored = np.ctypeslib.as_array(pointer, (stored_rows, ld))[:, :stored_cols]
    return stored.T if trans == TRANS else stored


def numpy_dot_gemm(real: type):
    """A Python function with ``cblas_?gemm``'s arguments (``real`` is ``ctypes.c_float`` or
    ``ctypes.c_double``) that computes ``C = A B`` with ``np.dot``: the products' path where
    NumPy's BLAS exports no 64-bit-integer CBLAS. It serves :func:`dot`, which always passes
    row-major order, ``alpha = 1``, ``beta = 0`` and a contiguous ``C``."""

    def gemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        np.dot(_matrix(a, trans_a, m, k, lda, real), _matrix(b, trans_b, k, n, ldb, real),
               out=_matrix(c, NO_TRANS, m, n, ldc, real))

    return gemm


def _find_cblas() -> tuple[str, dict[str, int]] | None:
    """``(description, {"s": address, "d": address})`` of the first 64-bit-integer CBLAS
    ``?gemm`` pair in a loaded BLAS library, or ``None``."""
    for path in blas_paths():
        library = ctypes.CDLL(path)
        for name in CBLAS_NAMES:
            try:
                functions = {p: getattr(library, name.format(p)) for p in "sd"}
            except AttributeError:
                continue
            addresses = {p: ctypes.cast(f, ctypes.c_void_p).value for p, f in functions.items()}
            return f"{name.format('?')} in {path}", addresses
    return None


def _bind() -> tuple[str, list]:
    """Bind ``fastprop_sgemm`` and ``fastprop_dgemm`` (see the module's docstring); returns the
    description of the path and the callbacks that must stay alive."""
    found = None if os.environ.get("FASTPROP_NUMPY_DOT") == "1" else _find_cblas()
    callbacks = []
    if found is None:
        addresses = {}
        for prefix, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
            c_type = ctypes.CFUNCTYPE(None, *_c_arguments(real))
            callbacks.append(c_type(numpy_dot_gemm(real)))
            addresses[prefix] = ctypes.cast(callbacks[-1], ctypes.c_void_p).value
        description = "np.dot through a Python callback (no 64-bit-integer CBLAS found)"
    else:
        description, addresses = found
    for prefix, address in addresses.items():
        binding.add_symbol(f"fastprop_{prefix}gemm", address)
    return description, callbacks


#: Which function the compiled products call (for the comparison command's machine note).
PRODUCTS, _CALLBACKS = _bind()


#: OpenBLAS's kernel families with AVX-512 products (threadpoolctl's ``architecture``).
AVX512_OPENBLAS_KERNELS = frozenset({"SkylakeX", "Cooperlake", "SapphireRapids"})
#: The symbol through which compiled code reads the choice (:func:`packs_large_products`).
_PACKS_LARGE_PRODUCTS_SYMBOL = "fastprop_packs_large_products"


def _choose_large_products() -> tuple[bool, str]:
    """Whether a batch split among threads multiplies large matrices in compiled code (the
    packed product of :mod:`fastprop.cpu.gemm`) rather than on the BLAS, and why.

    ``FASTPROP_LARGE_PRODUCTS=compiled`` or ``=blas`` decides. Otherwise the compiled products
    are chosen where they beat the BLAS: numba compiles for a host with AVX-512 while every
    loaded BLAS is an OpenBLAS whose kernels are not AVX-512 ones (its ``Haswell`` kernels on an
    AVX-512 CPU it does not recognise, or where ``OPENBLAS_CORETYPE`` says so), so that the
    packed products use registers twice as wide as the BLAS's. Against OpenBLAS's AVX-512
    kernels, MKL or Accelerate the BLAS keeps them."""
    setting = os.environ.get("FASTPROP_LARGE_PRODUCTS", "auto")
    if setting not in ("auto", "compiled", "blas"):
        raise ValueError(f"FASTPROP_LARGE_PRODUCTS must be auto, compiled or blas, got {setting!r}")
    if setting != "auto":
        return setting == "compiled", f"{setting} (FASTPROP_LARGE_PRODUCTS={setting})"
    kernels = blas_kernels()
    avx512_host = not config.CPU_NAME and binding.get_host_cpu_features().get("avx512f", False)
    narrower_blas = bool(kernels) and all(
        kernel is not None and kernel not in AVX512_OPENBLAS_KERNELS for kernel in kernels)
    if avx512_host and narrower_blas:
        return True, f"compiled (AVX-512 host, OpenBLAS {'/'.join(kernels)} kernels)"
    return False, "blas"


#: The choice of :func:`_choose_large_products` in words, with its reason, for the comparison
#: command's machine note; compiled code reads the choice itself through
#: :func:`packs_large_products`.
_packs, LARGE_PRODUCTS = _choose_large_products()
_packs_large_products_flag = ctypes.c_int64(_packs)
binding.add_symbol(_PACKS_LARGE_PRODUCTS_SYMBOL, ctypes.addressof(_packs_large_products_flag))


@intrinsic
def packs_large_products(typingctx):
    """Whether a batch split among threads sends its large products to the packed product
    (:func:`_choose_large_products`; an int64, 1 or 0), read from the process at run time: a
    global baked into compiled code would be kept in numba's disk cache across processes and
    settings."""

    def codegen(context, builder, signature, args):
        module = builder.module
        flag = module.globals.get(_PACKS_LARGE_PRODUCTS_SYMBOL)
        if flag is None:
            flag = cgutils.add_global_variable(module, ir.IntType(64),
                                               _PACKS_LARGE_PRODUCTS_SYMBOL)
        return builder.load(flag)

    return types.int64(), codegen
