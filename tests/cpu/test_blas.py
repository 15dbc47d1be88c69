"""The compiled code's BLAS products (``fastprop.cpu.blas``): both ways they can be bound, checked
against float64 products, and the layouts they refuse."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import make_problem, rel_diff
from reference import reference_loss_and_grad

import fastprop as fp
from fastprop.cpu import blas
from fastprop.threads import blas_paths

SHAPES = [(5, 7, 3), (1, 9, 4), (6, 1, 1), (3, 4, 1), (1, 1, 1), (70, 33, 20)]


def _operands(shape, dtype, transposed_a, transposed_b):
    """``A`` (``M x K``) and ``B`` (``K x N``), each C-contiguous or a transposed view."""
    M, K, N = shape
    rng = np.random.default_rng(M * 1000 + K * 10 + N)
    A = rng.standard_normal((K, M) if transposed_a else (M, K)).astype(dtype)
    B = rng.standard_normal((N, K) if transposed_b else (K, N)).astype(dtype)
    return (A.T if transposed_a else A), (B.T if transposed_b else B)


def _assert_product(A, B, C):
    expected = A.astype(np.float64) @ B.astype(np.float64)
    bound = np.abs(A).astype(np.float64) @ np.abs(B).astype(np.float64)
    assert (np.abs(C - expected) <= 4 * A.shape[1] * np.finfo(C.dtype).eps * bound).all()


LAYOUTS = pytest.mark.parametrize(("transposed_a", "transposed_b"),
                                  [(False, False), (False, True), (True, False), (True, True)],
                                  ids=["A B", "A B.T", "A.T B", "A.T B.T"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@LAYOUTS
def test_dot_matches_float64_product(dtype, shape, transposed_a, transposed_b):
    A, B = _operands(shape, dtype, transposed_a, transposed_b)
    C = np.full((shape[0], shape[2]), np.nan, dtype)  # every element must be written
    blas.dot(A, B, C)
    _assert_product(A, B, C)


@pytest.mark.parametrize(("dtype", "real"), [(np.float32, ctypes.c_float),
                                             (np.float64, ctypes.c_double)])
@LAYOUTS
def test_numpy_dot_callback_reads_cblas_arguments(dtype, real, transposed_a, transposed_b):
    """The callback bound where no 64-bit-integer CBLAS exists, called with the arguments
    ``dot`` passes (leading dimensions included)."""
    M, K, N = 6, 5, 3
    A, B = _operands((M, K, N), dtype, transposed_a, transposed_b)
    C = np.full((M, N), np.nan, dtype)
    flag = {False: blas.NO_TRANS, True: blas.TRANS}
    gemm = blas.numpy_dot_gemm(real)
    gemm(blas.ROW_MAJOR, flag[transposed_a], flag[transposed_b], M, N, K, 1.0,
         A.ctypes.data, M if transposed_a else K, B.ctypes.data, K if transposed_b else N,
         0.0, C.ctypes.data, N)
    _assert_product(A, B, C)


@pytest.mark.parametrize(("A", "B", "C", "what"), [
    (np.ones((3, 4)), np.ones((5, 2)), np.ones((3, 2)), "shapes"),
    (np.ones((3, 4)), np.ones((4, 2)), np.ones((2, 2)), "shapes"),
    (np.ones((3, 8))[:, ::2], np.ones((4, 2)), np.ones((3, 2)), "row- or column-major"),
    (np.ones((3, 4)), np.ones((4, 2))[::-1], np.ones((3, 2)), "row- or column-major"),
    (np.ones((3, 4)), np.ones((4, 2)), np.ones((2, 3)).T, "out contiguous"),
    (np.ones((3, 4)), np.ones((4, 2)), np.ones((3, 4))[:, :2], "out contiguous"),
], ids=["inner", "out shape", "strided A", "reversed B", "out transposed", "out strided"])
def test_dot_refuses_what_blas_would_misread(A, B, C, what):
    """Each of these would make BLAS read or write outside the arrays, or the wrong elements."""
    before = C.copy()
    with pytest.raises(ValueError, match=what):
        blas.dot(A, B, C)
    assert (C == before).all()


def test_products_use_numpys_own_blas():
    """NumPy's wheels ship scipy-openblas64, whose 64-bit-integer CBLAS is bound directly."""
    blas_name = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    if blas_name == "scipy-openblas":
        assert blas.PRODUCTS.startswith("scipy_cblas_?gemm64_ in ")
        assert blas.PRODUCTS.split(" in ", 1)[1] in blas_paths()
    else:  # another build: either path is valid, and says which it is
        assert "gemm64_ in " in blas.PRODUCTS or "np.dot" in blas.PRODUCTS


_CALLBACK_RUN = """
import json, sys
import numpy as np
import fastprop as fp
from fastprop.cpu import blas
from fastprop.threads import blas_paths
net = fp.MLP([300, 257, 130, 7], "tanh", output="softmax", loss="cross_entropy", l2=1e-3)
params, X, Y = (np.load(path) for path in sys.argv[1:4])
loss, grad = net.value_and_grad(params, X, Y, backend="matrix")
np.save(sys.argv[4], grad)
print(json.dumps({"products": blas.PRODUCTS, "loss": loss}))
"""


def test_gradient_through_the_numpy_dot_callback(tmp_path):
    """With ``FASTPROP_NUMPY_DOT=1`` (in a new process: the products are bound at import) the
    matrix backend's BLAS-sized products (300 x 257 x 600 and up) go through the callback, and
    the gradient is the float64 reference's."""
    net = fp.MLP([300, 257, 130, 7], "tanh", output="softmax", loss="cross_entropy", l2=1e-3)
    params, X, Y = make_problem(net, 600, "onehot")
    paths = [tmp_path / f"{name}.npy" for name in ("params", "X", "Y", "grad")]
    for path, array in zip(paths[:3], (params, X, Y), strict=True):
        np.save(path, array)
    env = {**os.environ, "FASTPROP_NUMPY_DOT": "1", "FASTPROP_LARGE_PRODUCTS": "blas"}
    run = subprocess.run([sys.executable, "-c", _CALLBACK_RUN, *map(str, paths)], env=env,
                         capture_output=True, text=True, check=True)
    result = json.loads(run.stdout.splitlines()[-1])
    assert result["products"].startswith("np.dot through a Python callback")
    expected_loss, expected = reference_loss_and_grad(net.sizes, net.activations, net.output,
                                                      net.loss_name, net.l2, params, X, Y)
    assert rel_diff(result["loss"], expected_loss) < 1e-13
    assert rel_diff(np.load(paths[3]), expected) < 1e-13


@pytest.mark.parametrize(("setting", "kernels", "avx512", "compiled"), [
    ("auto", ["Haswell"], True, True),           # OpenBLAS's AVX2 kernels on an AVX-512 CPU
    ("auto", ["Haswell", "Zen"], True, True),
    ("auto", ["SkylakeX"], True, False),         # its AVX-512 kernels
    ("auto", ["Haswell", "SkylakeX"], True, False),
    ("auto", ["Haswell"], False, False),         # no AVX-512 to compile for
    ("auto", [None], True, False),               # a BLAS that does not say (MKL, Accelerate)
    ("auto", [], True, False),
    ("compiled", ["SkylakeX"], False, True),
    ("blas", ["Haswell"], True, False),
])
def test_large_products_choice(monkeypatch, setting, kernels, avx512, compiled):
    monkeypatch.setenv("FASTPROP_LARGE_PRODUCTS", setting)
    monkeypatch.setattr(blas, "blas_kernels", lambda: kernels)
    monkeypatch.setattr(blas.binding, "get_host_cpu_features", lambda: {"avx512f": avx512})
    monkeypatch.setattr(blas.config, "CPU_NAME", None)
    chosen, reason = blas._choose_large_products()
    assert chosen is compiled
    assert reason.startswith("compiled" if compiled else "blas")


def test_large_products_setting_is_checked(monkeypatch):
    monkeypatch.setenv("FASTPROP_LARGE_PRODUCTS", "yes")
    with pytest.raises(ValueError, match="FASTPROP_LARGE_PRODUCTS must be auto, compiled or blas"):
        blas._choose_large_products()


def test_compiled_code_reads_the_choice_when_it_runs():
    """numba's disk cache keeps compiled code across processes: the choice is read from the
    process at run time, not baked in. The same cached ``_chunk_count`` splits a 256 x 512 x 256
    network's batch of 256 (packed products) or not (BLAS), by each process's setting."""
    code = ("import fastprop as fp; from fastprop.cpu import matrix; "
            "print(matrix._chunk_count(fp.MLP([256, 512, 256]).spec.layout, 256, 2))")
    for setting, chunks in (("compiled", "2"), ("blas", "1"), ("compiled", "2")):
        env = {**os.environ, "FASTPROP_LARGE_PRODUCTS": setting}
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        assert run.stdout.split()[-1] == chunks
