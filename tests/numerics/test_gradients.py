"""Both backends against the float64 reference, central differences, PyTorch and each other,
over architectures that cover every activation, every output/loss pair, width 1, odd widths,
depth 1 and depth 9, batch 1 and odd batches, l2 on and off, float32 and float64."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from helpers import (
    BACKEND_AGREEMENT_TOL,
    BACKENDS,
    CASES,
    DTYPES,
    IDS,
    make_problem,
    rel_diff,
)
from reference import (
    reference_forward,
    reference_loss,
    reference_loss_and_grad,
    torch_loss_and_grad,
)

import fastprop as fp
from fastprop._kernel_ids import ACTIVATIONS, COMPATIBLE_OUTPUTS
from fastprop.cpu.backend import CpuBackend

# float32 carries about 7 digits; deep networks lose a few more through the chain rule.
REFERENCE_TOL = {np.float32: 1e-5, np.float64: 1e-12}
FINITE_DIFFERENCE_TOL = {np.float32: 5e-4, np.float64: 1e-6}


def test_cases_cover_the_contract():
    used = set()
    for case in CASES:
        used.update((case.activation,) if isinstance(case.activation, str) else case.activation)
    assert used == set(ACTIVATIONS)
    pairs = {(case.output, case.loss) for case in CASES}
    assert pairs == {(out, loss) for loss, outs in COMPATIBLE_OUTPUTS.items() for out in outs}


def _reference(net, params, X, Y):
    return reference_loss_and_grad(net.sizes, net.activations, net.output, net.loss_name,
                                   net.l2, params, X, Y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_float64_reference(case, dtype, backend):
    net = case.net(dtype)
    params, X, Y = make_problem(net, case.batch, case.targets)
    loss, grad = net.value_and_grad(params, X, Y, backend=backend)
    ref_loss, ref_grad = _reference(net, params, X, Y)
    assert grad.dtype == dtype and grad.shape == (net.n_params,)
    assert rel_diff(loss, ref_loss) <= REFERENCE_TOL[dtype]
    assert rel_diff(grad, ref_grad) <= REFERENCE_TOL[dtype]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_central_differences(case, dtype, backend):
    net = case.net(dtype)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=1)
    assert fp.gradient_check(net, params, X, Y, backend=backend) <= FINITE_DIFFERENCE_TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_naive_and_matrix_agree(case, dtype):
    net = case.net(dtype)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=2)
    matrix_loss, matrix_grad = net.value_and_grad(params, X, Y, backend="matrix")
    naive_loss, naive_grad = net.value_and_grad(params, X, Y, backend="naive")
    assert rel_diff(naive_loss, matrix_loss) <= BACKEND_AGREEMENT_TOL[dtype]
    assert rel_diff(naive_grad, matrix_grad) <= BACKEND_AGREEMENT_TOL[dtype]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch_autograd(case):
    pytest.importorskip("torch")
    net = case.net(np.float64)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=3)
    loss, grad = net.value_and_grad(params, X, Y)
    torch_loss, torch_grad = torch_loss_and_grad(net.sizes, net.activations, net.output,
                                                 net.loss_name, net.l2, params, X, Y)
    assert rel_diff(loss, torch_loss) <= 1e-10
    assert rel_diff(grad, torch_grad) <= 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_matches_value_and_grad(backend):
    case = CASES[4]
    net = case.net(np.float64)
    params, X, Y = make_problem(net, case.batch, case.targets)
    loss, _ = net.value_and_grad(params, X, Y, backend=backend)
    assert rel_diff(net.loss(params, X, Y, backend=backend), loss) <= 1e-14


def test_gradient_check_detects_a_wrong_gradient(monkeypatch):
    """A backend whose gradient is 1% off is reported with an error of about 1%."""
    correct = fp.BACKENDS["matrix"].kernels

    def one_percent_off(*args):
        status, loss = correct.value_and_grad(*args)
        args[9][:] *= 1.01  # the gradient
        return status, loss

    monkeypatch.setitem(fp.BACKENDS, "broken", CpuBackend("broken", SimpleNamespace(
        value_and_grad=one_percent_off, loss=correct.loss, forward=correct.forward,
        workspace_size=correct.workspace_size, uses_threads=correct.uses_threads)))
    case = CASES[3]
    net = case.net(np.float64)
    params, X, Y = make_problem(net, case.batch, case.targets)
    assert fp.gradient_check(net, params, X, Y) < 1e-6
    assert 0.009 < fp.gradient_check(net, params, X, Y, backend="broken") < 0.011


def test_gradient_check_samples_big_networks():
    net = fp.MLP([40, 30, 5], "tanh")
    params, X, Y = make_problem(net, 4, "rows")
    assert net.n_params > 1000
    assert fp.gradient_check(net, params, X, Y, max_checks=50) <= 1e-6
    with pytest.raises(ValueError, match="max_checks"):
        fp.gradient_check(net, params, X, Y, max_checks=0)


def _weights(batch: int, seed: int) -> np.ndarray:
    """Non-negative sample weights with a zero among them (for batches above one)."""
    weights = np.random.default_rng(seed).uniform(0.0, 3.0, size=batch)
    weights[batch // 2] = 0.0 if batch > 1 else 0.5
    return weights


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_weighted_loss_matches_the_reference(case, dtype, backend):
    net = case.net(dtype)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=4)
    weights = _weights(case.batch, seed=5)
    loss, grad = net.value_and_grad(params, X, Y, sample_weight=weights, backend=backend)
    ref_loss, ref_grad = reference_loss_and_grad(
        net.sizes, net.activations, net.output, net.loss_name, net.l2, params, X, Y,
        sample_weight=weights.astype(dtype))
    assert rel_diff(loss, ref_loss) <= REFERENCE_TOL[dtype]
    assert rel_diff(grad, ref_grad) <= REFERENCE_TOL[dtype]
    only_loss = net.loss(params, X, Y, sample_weight=weights, backend=backend)
    assert rel_diff(only_loss, loss) <= BACKEND_AGREEMENT_TOL[dtype]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", [CASES[3], CASES[4], CASES[11]], ids=lambda c: c.name)
def test_weighted_gradient_matches_central_differences(case, backend):
    net = case.net(np.float64)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=6)
    weights = _weights(case.batch, seed=7)
    error = fp.gradient_check(net, params, X, Y, sample_weight=weights, backend=backend)
    assert error <= FINITE_DIFFERENCE_TOL[np.float64]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [CASES[4], CASES[9], CASES[12], CASES[13]],
                         ids=lambda c: c.name)
def test_integer_weights_repeat_samples(case, dtype, backend):
    """scikit-learn's semantics: a weight of k counts a sample k times (0 drops it)."""
    net = case.net(dtype)
    params, X, Y = make_problem(net, case.batch, case.targets, seed=8)
    counts = np.random.default_rng(9).integers(0, 4, size=case.batch)
    counts[0] = 1
    repeated = np.repeat(np.arange(case.batch), counts)
    loss, grad = net.value_and_grad(params, X, Y, sample_weight=counts, backend=backend)
    loss_r, grad_r = net.value_and_grad(params, X[repeated], Y[repeated], backend=backend)
    assert rel_diff(loss, loss_r) <= BACKEND_AGREEMENT_TOL[dtype] * 10
    assert rel_diff(grad, grad_r) <= BACKEND_AGREEMENT_TOL[dtype] * 10


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_unit_weights_are_bitwise_the_unweighted_result(dtype, backend):
    for case in (CASES[2], CASES[12], CASES[13]):
        net = case.net(dtype)
        params, X, Y = make_problem(net, case.batch, case.targets, seed=10)
        loss, grad = net.value_and_grad(params, X, Y, backend=backend)
        for weights in (np.ones(case.batch), 1, [1.0] * case.batch):
            weighted = net.value_and_grad(params, X, Y, sample_weight=weights, backend=backend)
            assert weighted[0] == loss and np.array_equal(weighted[1], grad)
        # Scaling every weight changes nothing but rounding.
        scaled = net.value_and_grad(params, X, Y, sample_weight=np.full(case.batch, 2.5),
                                    backend=backend)
        assert rel_diff(scaled[1], grad) <= BACKEND_AGREEMENT_TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("targets", ["labels", "rows"])
def test_a_batch_in_blocks_matches_the_reference(dtype, targets):
    """A batch that the matrix backend runs in blocks on the calling thread (with a shorter last
    block): gradient, loss, weighted loss and outputs against the float64 reference."""
    from fastprop.cpu import matrix

    net = fp.MLP([16, 512, 512, 3], activation="tanh", output="softmax",
                 loss="cross_entropy", l2=1e-3, dtype=dtype)
    rows = max(matrix.MIN_BLOCK_ROWS, matrix.BLOCK_ELEMENTS // (512 + 512 + 3))
    batch = matrix.BLOCKS * rows + 37
    assert matrix.workspace_size(net.spec.layout, batch, 1) < batch * (512 + 512 + 3)
    params, X, Y = make_problem(net, batch, targets)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=batch)
    threads = fp.get_num_threads()["numba"]
    fp.set_num_threads(1)  # on the calling thread: two threads would split the batch instead
    try:
        loss, grad = net.value_and_grad(params, X, Y, backend="matrix")
        weighted = net.loss(params, X, Y, sample_weight=weights, backend="matrix")
        outputs = net.forward(params, X, backend="matrix")
    finally:
        fp.set_num_threads(threads)
    ref_loss, ref_grad = _reference(net, params, X, Y)
    assert rel_diff(loss, ref_loss) <= REFERENCE_TOL[dtype]
    assert rel_diff(grad, ref_grad) <= REFERENCE_TOL[dtype]
    ref_weighted = reference_loss(net.sizes, net.activations, net.output, net.loss_name, net.l2,
                                  params, X, Y, sample_weight=weights)
    assert rel_diff(weighted, ref_weighted) <= REFERENCE_TOL[dtype]
    ref_outputs = reference_forward(net.sizes, net.activations, net.output, params, X)
    assert rel_diff(outputs, ref_outputs) <= REFERENCE_TOL[dtype]
