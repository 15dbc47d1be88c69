"""The direct path of ``MLP.value_and_grad`` (see :mod:`fastprop.cpu.direct_calls`): a call
with ``out=`` like an earlier one goes straight to the compiled overload that ran it. It must give
the checked path's result bit for bit, run the compiled value checks, and leave for the checked
path on every change that the overload's argument types or the Python checks depend on."""

from __future__ import annotations

import pickle

import numba
import numpy as np
import pytest
from helpers import BACKENDS, make_problem

import fastprop as fp
from fastprop.cpu.backend import CpuBackend
from fastprop.cpu.direct_calls import TYPE_FLAGS

NETWORKS = {
    "rows": lambda: fp.MLP([4, 5, 3], "tanh"),
    "labels": lambda: fp.MLP([4, 5, 3], "tanh", output="softmax", loss="cross_entropy"),
}


def checked(net, params, X, Y, backend="matrix"):
    """The gradient from a new network of the same configuration, which takes the checked
    path."""
    return net.with_dtype(net.dtype).value_and_grad(params, X, Y, backend=backend)


def forbid_checked_path(monkeypatch):
    """Make any call that leaves the direct path fail (the checked path starts with the
    backend's argument checks)."""
    def fail(backend, *args):
        raise AssertionError(f"the checked path ran (backend {backend.name!r})")

    monkeypatch.setattr(CpuBackend, "_kernel_inputs", fail)


def direct_calls(net, backend="matrix"):
    """The calling thread's direct calls of ``net`` with ``backend``."""
    return net.spec.per_thread.__dict__[backend].direct_calls


def read_only(array):
    frozen = array.copy()
    frozen.flags.writeable = False
    return frozen


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("targets", sorted(NETWORKS))
def test_repeated_calls_go_direct_and_match_the_checked_path(backend, targets, monkeypatch):
    net = NETWORKS[targets]()
    params, X, Y = make_problem(net, 6, targets)
    out = np.empty_like(params)
    net.value_and_grad(params, X, Y, backend=backend, out=out)
    assert len(direct_calls(net, backend)) == 1
    rng = np.random.default_rng(1)
    for _ in range(3):  # new values in the same arrays
        params[:] = rng.normal(scale=0.5, size=params.shape)
        X[:] = rng.normal(size=X.shape)
        expected_loss, expected_grad = checked(net, params, X, Y, backend)
        with monkeypatch.context() as patch:
            forbid_checked_path(patch)
            loss, grad = net.value_and_grad(params, X, Y, backend=backend, out=out)
        assert grad is out and loss == expected_loss and (grad == expected_grad).all()
    assert len(direct_calls(net, backend)) == 1


@pytest.mark.parametrize("targets", sorted(NETWORKS))
def test_value_checks_run_on_the_direct_path(targets, monkeypatch):
    net = NETWORKS[targets]()
    params, X, Y = make_problem(net, 6, targets)
    buffer = np.empty(X.size + net.n_params)
    overlapping = buffer[X.size - 1:X.size - 1 + net.n_params]  # shares X's last element
    X = buffer[:X.size].reshape(X.shape)  # same type and flags as any other X and out
    X[:] = make_problem(net, 6, targets)[1]
    out = np.empty_like(params)
    for check_finite in (True, False):
        net.value_and_grad(params, X, Y, out=out, check_finite=check_finite)
    forbid_checked_path(monkeypatch)
    with pytest.raises(ValueError, match="out overlaps"):
        net.value_and_grad(params, X, Y, out=overlapping)
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="X holds NaN"):
        net.value_and_grad(params, X, Y, out=out)
    assert np.isnan(net.value_and_grad(params, X, Y, out=out, check_finite=False)[0])
    X[2, 1] = 0
    if targets == "labels":
        Y[3] = net.n_outputs
        with pytest.raises(ValueError, match="label outside"):
            net.value_and_grad(params, X, Y, out=out)


@pytest.mark.parametrize("targets", sorted(NETWORKS))
def test_inputs_the_direct_path_cannot_take_are_checked(targets):
    """After a direct call, each change below takes the checked path: it raises the checked
    path's error, or gives the checked path's result."""
    net = NETWORKS[targets]()
    params, X, Y = make_problem(net, 6, targets)
    out = np.empty_like(params)
    for _ in range(2):
        net.value_and_grad(params, X, Y, out=out)
    errors = [
        ({"out": read_only(out)}, "out is read-only"),
        ({"out": np.empty(2 * net.n_params)[::2]}, "out must be C-contiguous"),
        ({"X": np.asfortranarray(X)}, "X must be C-contiguous"),
        ({"X": X.astype(np.float32)}, "X has dtype float32"),
        ({"params": params[:-1]}, "params must have shape"),
        ({"backend": "gpu"}, "backend must be one of"),
        ({"check_finite": None}, "check_finite must be True or False"),
    ]
    for change, match in errors:
        args = {"params": params, "X": X, "Y": Y, "out": out} | change
        with pytest.raises((TypeError, ValueError), match=match):
            net.value_and_grad(args.pop("params"), args.pop("X"), args.pop("Y"), **args)
    expected_loss, expected_grad = checked(net, params, X, Y)
    if targets == "rows":  # read-only inputs: aliased as writable each call, never direct
        frozen = [read_only(a) for a in (params, X, Y)]
        calls = len(direct_calls(net))
        for _ in range(2):
            loss, grad = net.value_and_grad(*frozen, out=out)
            assert loss == expected_loss and (grad == expected_grad).all()
        assert len(direct_calls(net)) == calls
    else:  # other integer dtypes are converted: never direct calls
        calls = len(direct_calls(net))
        for labels in (Y.astype(np.longlong), Y.astype(np.int32), Y.astype(np.longlong)):
            loss, grad = net.value_and_grad(params, X, labels, out=out)
            assert loss == expected_loss and (grad == expected_grad).all()
        assert len(direct_calls(net)) == calls


def test_thread_count_changes_leave_the_direct_path():
    net = NETWORKS["rows"]()
    params, X, Y = make_problem(net, 6, "rows")
    out = np.empty_like(params)
    threads = numba.get_num_threads()
    try:
        for count in (threads, 1, threads):
            numba.set_num_threads(count)
            for _ in range(2):
                loss, grad = net.value_and_grad(params, X, Y, backend="naive", out=out)
            (_, _, _, n_threads, _), = direct_calls(net, "naive").values()
            assert n_threads == count
            expected_loss, expected_grad = checked(net, params, X, Y, "naive")
            assert loss == expected_loss and (grad == expected_grad).all()
    finally:
        numba.set_num_threads(threads)


def test_a_grown_workspace_replaces_every_direct_call():
    net = NETWORKS["rows"]()
    params, X, Y = make_problem(net, 32, "rows")
    out = np.empty_like(params)
    for batch in (4, 32, 4):
        net.value_and_grad(params, X[:batch], Y[:batch], out=out)
    assert len(direct_calls(net)) == 2
    for _, _, work, _, _ in direct_calls(net).values():
        assert work is net.spec.per_thread.matrix.work
    assert not hasattr(pickle.loads(pickle.dumps(net)).spec.per_thread, "matrix")


def test_arrays_with_the_same_key_have_the_same_numba_type():
    """Among C-contiguous arrays of one dtype and shape, equal TYPE_FLAGS bits mean equal numba
    types (writeability changes the type; alignment is in the key too, to be safe)."""
    raw = np.zeros(8 * 12 + 1, np.uint8)
    unaligned = raw[1:].view(np.float64).reshape(3, 4)
    arrays = [np.zeros((3, 4)), np.ones((3, 4)), unaligned, read_only(np.zeros((3, 4))),
              read_only(np.ones((3, 4))), unaligned.view()]
    arrays[-1].flags.writeable = False
    assert not unaligned.flags.aligned and all(a.flags.c_contiguous for a in arrays)
    keys = {a.flags.num & TYPE_FLAGS for a in arrays}
    assert len(keys) == 4
    for key in keys:
        assert len({numba.typeof(a) for a in arrays if a.flags.num & TYPE_FLAGS == key}) == 1
    assert numba.typeof(arrays[0]) != numba.typeof(arrays[3])
