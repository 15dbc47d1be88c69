"""The compiled 2-D views into flat arrays."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from fastprop.cpu.views import matrix_view


@njit
def _view(flat, start, rows, cols):
    return matrix_view(flat, start, rows, cols)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_view_shares_memory_and_matches_reshape(dtype):
    flat = np.arange(20, dtype=dtype)
    view = _view(flat, 3, 2, 5)
    assert view.dtype == dtype and view.flags.c_contiguous
    assert (view == flat[3:13].reshape(2, 5)).all()
    view[1, 4] = -1
    assert flat[12] == -1


def test_view_of_read_only_array_is_read_only():
    flat = np.arange(6.0)
    flat.flags.writeable = False
    assert not _view(flat, 0, 2, 3).flags.writeable


@pytest.mark.parametrize(("start", "rows", "cols"), [(15, 2, 3), (-1, 1, 1), (0, 3, 7), (0, -1, 2)])
def test_view_outside_the_array_raises(start, rows, cols):
    with pytest.raises(IndexError, match="outside the flat array"):
        _view(np.arange(20.0), start, rows, cols)


def test_view_keeps_its_memory_alive():
    view = _view(np.arange(20.0), 2, 3, 3)
    assert view.sum() == sum(range(2, 11))
