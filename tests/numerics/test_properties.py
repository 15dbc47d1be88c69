"""Hypothesis: random architectures, batches, dtypes and targets; both backends agree with
each other and with the float64 reference, and every output has the documented shape."""

from __future__ import annotations

import numpy as np
from helpers import make_targets, rel_diff
from hypothesis import given
from hypothesis import strategies as st
from reference import reference_loss_and_grad

import fastprop as fp
from fastprop._kernel_ids import ACTIVATIONS, COMPATIBLE_OUTPUTS, TARGET_KINDS

PAIRS = [(out, loss) for loss, outs in COMPATIBLE_OUTPUTS.items() for out in outs]


@st.composite
def problems(draw):
    sizes = draw(st.lists(st.integers(1, 9), min_size=2, max_size=5))
    activations = draw(st.lists(st.sampled_from(sorted(ACTIVATIONS)), min_size=len(sizes) - 2,
                                max_size=len(sizes) - 2))
    output, loss = draw(st.sampled_from(PAIRS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    l2 = draw(st.sampled_from([0.0, 0.1]))
    batch = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    net = fp.MLP(sizes, activations, output, loss, l2, dtype)
    rng = np.random.default_rng(seed)
    params = rng.normal(scale=0.7, size=net.n_params).astype(dtype)
    X = rng.normal(size=(batch, sizes[0])).astype(dtype)
    kind = {"labels": "labels", "rows": "rows"}.get(TARGET_KINDS[loss],
                                                    draw(st.sampled_from(["labels", "soft"])))
    return net, params, X, make_targets(net, batch, kind, rng)


def _reference(net, params, X, Y):
    return reference_loss_and_grad(net.sizes, net.activations, net.output, net.loss_name,
                                   net.l2, params, X, Y)


def _cancellation_bound(net, params, X, Y):
    """Per gradient element, 64 rounding errors of the network's dtype times the sum of the
    magnitudes of the samples' shares of it (each sample's own gradient over the batch size).

    Where the samples' gradients nearly cancel, rounding each one leaves an error of their size,
    not of their small sum: hypothesis found float32 weight gradients of 2.3e-4 summed from two
    samples' terms of 0.86, off by 1.3e-7 (5e-4 of the largest gradient element). Elsewhere
    this bound is below the tests' relative tolerance, which then decides."""
    shares = sum(np.abs(_reference(net, params, X[i:i + 1], Y[i:i + 1])[1])
                 for i in range(len(X))) / len(X)
    return 64 * np.finfo(net.dtype).eps * shares


@given(problems())
def test_backends_agree_with_reference(problem):
    net, params, X, Y = problem
    tol = 1e-5 if net.dtype == np.float32 else 1e-12
    ref_loss, ref_grad = _reference(net, params, X, Y)
    largest = np.abs(ref_grad).max()
    cancellation = _cancellation_bound(net, params, X, Y)
    results = {b: net.value_and_grad(params, X, Y, backend=b) for b in ("matrix", "naive")}
    for loss, grad in results.values():
        assert grad.shape == (net.n_params,) and grad.dtype == net.dtype
        assert rel_diff(loss, ref_loss) <= 10 * tol
        assert (np.abs(grad - ref_grad) <= np.maximum(10 * tol * largest, cancellation)).all()
    disagreement = np.abs(results["naive"][1] - results["matrix"][1])
    assert (disagreement <= np.maximum(tol * largest, cancellation)).all()


@given(problems())
def test_forward_and_predict_shapes(problem):
    net, params, X, _ = problem
    out = net.forward(params, X)
    assert out.shape == (X.shape[0], net.n_outputs) and out.dtype == net.dtype
    assert np.isfinite(out).all()
    if net.output == "softmax":
        np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
    labels = net.predict(params, X)
    if net.loss_name in ("cross_entropy", "hinge"):
        assert labels.shape == (X.shape[0],) and labels.min() >= 0
        assert labels.max() < net.n_outputs
