"""The compiled small matrix product (``fastprop.cpu.gemm``) against float64 products."""

from __future__ import annotations

import re

import llvmlite.binding as llvm
import numba
import numpy as np
import pytest

from fastprop.cpu.gemm import (
    MR,
    NR,
    NR_NARROW,
    NR_QUAD,
    PACK_COLUMNS,
    gemm,
    micro_kernel,
    narrow_micro_kernel,
    packed_gemm,
    quad_micro_kernel,
)

SHAPES = [
    (MR, 1, NR),                  # one block, one step
    (2 * MR, 64, 2 * NR),         # full blocks only
    (2 * MR + 3, 17, NR + 5),     # remainder rows and columns
    (MR - 1, 9, 3 * NR),          # fewer rows than a block
    (5 * MR, 33, NR - 1),         # fewer columns than a block: one narrow block and the rest
    (MR, 8, NR_NARROW),           # one narrow block only
    (3 * MR + 1, 5, 2 * NR + NR_NARROW + 3),  # wide, narrow and remainder columns
    (2 * MR, 7, NR_NARROW - 1),   # quad blocks and the rest
    (MR, 3, NR_QUAD),             # one quad block only
    (2 * MR + 1, 6, NR + NR_NARROW + 2 * NR_QUAD + 3),  # every kind of block, remainders
    (2 * MR, 7, NR_QUAD - 1),     # too narrow for any block
    (1, 1, 1),
]


def _operands(shape, dtype):
    M, K, N = shape
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    return A, B, np.full((M, N), np.nan, dtype)  # every element of C must be written


def _assert_product(A, B, C):
    expected = A.astype(np.float64) @ B.astype(np.float64)
    bound = np.abs(A).astype(np.float64) @ np.abs(B).astype(np.float64)
    assert (np.abs(C - expected) <= 4 * A.shape[1] * np.finfo(C.dtype).eps * bound).all()


def _column_major(X):
    """The same matrix, stored column by column (a transposed view of a C array)."""
    return np.ascontiguousarray(X.T).T


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("layouts", ["A B C", "A.T B C", "A.T B C.T"])
def test_gemm_matches_float64_product(dtype, shape, layouts):
    """``A`` and ``C`` stored either way (the weight gradient writes through a transposed view)."""
    A, B, C = _operands(shape, dtype)
    c = _column_major(C) if layouts.endswith("C.T") else C
    gemm(_column_major(A) if layouts.startswith("A.T") else A, B, c)
    _assert_product(A, B, c)


#: The packed product's shapes: SHAPES, and column blocks longer than a cache way's stride.
PACKED_SHAPES = [*SHAPES, (3 * MR + 2, 300, 2 * NR + NR_NARROW + NR_QUAD + 2), (64, 1024, 64)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", PACKED_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("layouts", ["AB", "A.T B", "A B.T", "A.T B.T"])
def test_packed_gemm_matches_float64_product(dtype, shape, layouts):
    """Every block width, the rows and columns left over, operands stored either way (the
    forward product packs from ``W`` through a transposed view); ``pack`` exactly as long as
    the contract asks, with a guard after it that must stay untouched."""
    A, B, C = _operands(shape, dtype)
    a = _column_major(A) if layouts.startswith("A.T") else A
    b = _column_major(B) if layouts.endswith("B.T") else B
    room = A.shape[1] * PACK_COLUMNS
    pack = np.full(room + 8, 7.0, dtype)
    packed_gemm(a, b, C, pack[:room])
    _assert_product(A, B, C)
    assert (pack[room:] == 7).all()


KERNELS = [(micro_kernel, NR), (narrow_micro_kernel, NR_NARROW), (quad_micro_kernel, NR_QUAD)]


def _compiled_call(kernel):
    """``kernel(A, B, C, i0, j0, jb)`` called from compiled code (it is a numba intrinsic)."""
    return numba.njit(lambda A, B, C, i0, j0, jb: kernel(A, B, C, i0, j0, jb))


@pytest.mark.parametrize("kernel, columns", KERNELS)
@pytest.mark.parametrize("layouts", ["B C", "B.T C.T"])
def test_micro_kernels_read_the_columns_they_are_given(kernel, columns, layouts):
    """``kernel(A, B, C, i0, j0, jb)`` writes ``C[i0:i0+MR, j0:j0+columns]`` from columns
    ``jb:jb+columns`` of ``B``, not ``j0:``, and nothing else of ``C``; rows of C-ordered
    operands are loaded and stored whole, those of others element by element."""
    A, B, _ = _operands((MR + 2, 9, 3 * columns), np.float64)
    B *= 100  # a column offset taken from a value of B would be far off
    C = np.full((MR + 2, 2 * columns), np.nan)
    if layouts == "B.T C.T":
        B, C = _column_major(B), _column_major(C)
    _compiled_call(kernel)(A, B, C, 1, columns, 2 * columns)
    _assert_product(A[1:1 + MR], B[:, 2 * columns:], C[1:1 + MR, columns:])
    assert np.isnan(C[:, :columns]).all() and np.isnan(C[[0, MR + 1]]).all()



@pytest.mark.parametrize("kernel, columns", KERNELS)
@pytest.mark.parametrize("where", ["rows of A", "rows of C", "columns of C", "columns of B",
                                   "rows of B"])
def test_micro_kernels_check_their_block_under_bounds_checking(kernel, columns, where):
    """Compiled with bounds checks (as under ``NUMBA_BOUNDSCHECK=1``), a block that reaches past
    an operand raises IndexError instead of reading or writing past it."""
    A, B, _ = _operands((MR + 1, 5, 2 * columns), np.float64)
    C = np.zeros((MR + 1, 2 * columns))
    call = numba.njit(boundscheck=True)(lambda A, B, C, i0, j0, jb: kernel(A, B, C, i0, j0, jb))
    call(A, B, C, 1, columns, columns)  # the last block that fits
    i0, j0, jb = 1, columns, columns
    if where == "rows of A":
        A = A[:MR]
    elif where == "rows of C":
        C = C[:MR]
    elif where == "columns of C":
        j0 += 1
    elif where == "columns of B":
        jb += 1
    else:
        B = B[:4]
    with pytest.raises(IndexError):
        call(A, B, C, i0, j0, jb)

def test_micro_kernels_compile_to_simd_fused_multiply_adds():
    """The point of the kernels: each row's sums in SIMD registers, one packed FMA per register
    and step. Compiled afresh here, since numba cannot show the assembly of disk-cached code."""
    features = llvm.get_host_cpu_features()
    if not (features.get("fma") and features.get("avx2")):
        pytest.skip("the host has no AVX2 and FMA: packed FMAs are not expected")
    for kernel, columns in KERNELS:
        A = np.ones((MR, 3), np.float32)
        B = np.ones((3, columns), np.float32)
        C = np.empty((MR, columns), np.float32)
        call = _compiled_call(kernel)
        call(A, B, C, 0, 0, 0)
        assert (C == 3).all()
        asm = call.inspect_asm(tuple(numba.typeof(value) for value in (A, B, C, 0, 0, 0)))
        register = "[yz]mm" if columns > NR_QUAD else "xmm"  # four float32 fill an xmm
        assert len(re.findall(rf"vfmadd\w*ps\s+[^\n]*%{register}", asm)) >= MR
    A, B = np.ones((MR, 3), np.float32), np.ones((3, NR), np.float32)
    pack = np.empty(3 * PACK_COLUMNS, np.float32)
    for product, extra in ((gemm, ()), (packed_gemm, (pack,))):
        fresh = numba.njit(product.py_func)
        C = np.empty((MR, NR), np.float32)
        fresh(A, B, C, *extra)
        assert (C == 3).all()
        asm = fresh.inspect_asm(tuple(numba.typeof(value) for value in (A, B, C, *extra)))
        assert len(re.findall(r"vfmadd\w*ps\s+[^\n]*%[yz]mm", asm)) >= MR
