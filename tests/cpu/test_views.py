"""The compiled views into flat arrays (borrowed: used inside compiled code, never returned)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

import fastprop as fp
from fastprop.cpu.views import borrowed, matrix_view


@njit
def _view_copy(flat, start, rows, cols):
    return matrix_view(flat, start, rows, cols).copy()


@njit
def _write_through_view(flat, start, rows, cols, value):
    view = matrix_view(flat, start, rows, cols)
    view[rows - 1, cols - 1] = value


@njit
def _borrowed_slice_sum(values, start, stop):
    return borrowed(values)[start:stop].sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_view_matches_reshape_and_writes_through(dtype):
    flat = np.arange(20, dtype=dtype)
    view = _view_copy(flat, 3, 2, 5)
    assert view.dtype == dtype and view.flags.c_contiguous
    assert (view == flat[3:13].reshape(2, 5)).all()
    _write_through_view(flat, 3, 2, 5, -1)
    assert flat[12] == -1 and (np.delete(flat, 12) == np.delete(np.arange(20), 12)).all()


def test_view_of_read_only_array_cannot_be_written():
    flat = np.arange(6.0)
    flat.flags.writeable = False
    with pytest.raises(TypingError, match=r"readonly"):
        _write_through_view(flat, 0, 2, 3, 1.0)


@pytest.mark.parametrize(("start", "rows", "cols"), [(15, 2, 3), (-1, 1, 1), (0, 3, 7), (0, -1, 2)])
def test_view_outside_the_array_raises(start, rows, cols):
    with pytest.raises(IndexError, match="outside the flat array"):
        _view_copy(np.arange(20.0), start, rows, cols)


def test_borrowed_array_slices_like_the_original():
    values = np.arange(10.0)
    assert _borrowed_slice_sum(values, 2, 7) == values[2:7].sum()


@pytest.mark.parametrize("backend", ["matrix", "naive"])
def test_entry_points_keep_their_arguments_reference_counts(backend):
    """The kernels borrow their arguments: a call must neither keep nor drop a reference."""
    net = fp.MLP((8, 16, 3), "tanh", dtype=np.float32)
    params = net.init(seed=0)
    X = np.ones((5, 8), np.float32)
    Y = np.ones((5, 3), np.float32)
    grad = np.empty_like(params)
    train_X, train_Y = np.ones((40, 8), np.float32), np.ones((40, 3), np.float32)
    arrays = (params, X, Y, grad, train_X, train_Y)
    net.value_and_grad(params, X, Y, out=grad, backend=backend)
    before = [sys.getrefcount(a) for a in arrays]
    for _ in range(200):
        net.value_and_grad(params, X, Y, out=grad, backend=backend)
        net.loss(params, X, Y, backend=backend)
        net.forward(params, X, backend=backend)
    fp.train(net, params, train_X, train_Y, epochs=3, batch_size=8, progress=False,
             backend=backend)
    assert [sys.getrefcount(a) for a in arrays] == before
