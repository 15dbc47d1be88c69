"""Every bad input raises its documented error, naming the argument, before anything is
written; nothing bad reaches compiled code."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import BACKENDS, make_problem

import fastprop as fp
from fastprop._kernel_ids import ACTIVATIONS
from fastprop.cpu.common import all_finite


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"sizes": 5}, TypeError, "sizes must be a sequence"),
    ({"sizes": "784,10"}, TypeError, "sizes must be a sequence"),
    ({"sizes": [4]}, ValueError, "at least one layer"),
    ({"sizes": [4, 0, 2]}, ValueError, "sizes must all be >= 1"),
    ({"sizes": [4, 2.0]}, TypeError, "sizes must hold integers"),
    ({"sizes": [4, True]}, TypeError, "sizes must hold integers"),
    ({"activation": "gelu"}, ValueError, "activation must be one of"),
    ({"activation": ["tanh", "relu"]}, ValueError, "one activation per hidden layer"),
    ({"activation": 3}, TypeError, "activation must be a name"),
    ({"output": "softmin"}, ValueError, "output must be one of"),
    ({"loss": "mse"}, ValueError, "loss must be one of"),
    ({"loss": "cross_entropy"}, ValueError, "needs output in"),
    ({"loss": "hinge", "output": "softmax"}, ValueError, "needs output in"),
    ({"output": "identity", "loss": "binary_cross_entropy"}, ValueError, "needs output in"),
    ({"l2": -1e-3}, ValueError, "l2 must lie in"),
    ({"l2": float("nan")}, ValueError, "l2 must lie in"),
    ({"l2": "0.1"}, TypeError, "l2 must be a real number"),
    ({"dtype": np.int32}, ValueError, "dtype must be float32 or float64"),
    ({"dtype": np.float16}, ValueError, "dtype must be float32 or float64"),
    ({"dtype": "banana"}, ValueError, "dtype must be float32 or float64"),
    ({"dtype": None}, ValueError, "dtype must be float32 or float64"),
    ({"sizes": [2**40, 2**40]}, ValueError, r"sizes \[1099511627776, 1099511627776\] make a "
     r"network of 1.21e\+24 parameters \(9.01e\+15 GiB in float64\)"),
    ({"sizes": [2**62, 2]}, ValueError, "sizes .* make a network of 9.22e"),
    ({"sizes": np.array([[4, 3]])}, ValueError, "sizes must be one-dimensional"),
    ({"sizes": np.array([4.0, 3.0])}, TypeError, "sizes must hold integers"),
])
def test_bad_architecture(kwargs, error, match):
    arguments = {"sizes": [4, 3, 2]} | kwargs
    with pytest.raises(error, match=match):
        fp.MLP(**arguments)


def test_numpy_integers_are_integers():
    expected = fp.MLP([5, 3, 2])
    for sizes in (np.array([5, 3, 2]), np.array([5, 3, 2], np.uint8), [np.int64(5), 3, 2]):
        net = fp.MLP(sizes)
        assert net == expected and all(type(n) is int for n in net.sizes)
    assert np.array_equal(expected.init(seed=np.int64(3)), expected.init(seed=3))
    fp.set_num_threads(np.int64(fp.get_num_threads()["numba"]))


@pytest.mark.parametrize(("seed", "error", "match"), [
    (-1, ValueError, "seed must be >= 0, got -1"),
    (1.5, TypeError, "seed must be an integer, got 1.5"),
    ("0", TypeError, "seed must be an integer"),
    (True, TypeError, "seed must be an integer"),
])
def test_bad_seed(seed, error, match):
    with pytest.raises(error, match=match):
        fp.MLP([2, 3, 1]).init(seed=seed)


@pytest.fixture(scope="module")
def regression():
    net = fp.MLP([4, 5, 3], "tanh")
    return (net, *make_problem(net, 6, "rows"))


@pytest.fixture(scope="module")
def classifier():
    net = fp.MLP([4, 5, 3], "tanh", output="softmax", loss="cross_entropy")
    return (net, *make_problem(net, 6, "labels"))


def _call(net, params, X, Y, **kwargs):
    return net.value_and_grad(params, X, Y, **kwargs)


BAD_INPUTS = [
    # (name, change(params, X, Y) -> (params, X, Y), error, match)
    ("params-list", lambda p, X, Y: (list(p), X, Y), TypeError, "params must be a numpy"),
    ("params-dtype", lambda p, X, Y: (p.astype(np.float32), X, Y), TypeError,
     "params has dtype float32"),
    ("params-length", lambda p, X, Y: (p[:-1].copy(), X, Y), ValueError,
     r"params must have shape \(43,\)"),
    ("params-2d", lambda p, X, Y: (p[None, :].copy(), X, Y), ValueError, "params must have"),
    ("params-strided", lambda p, X, Y: (np.repeat(p, 2)[::2], X, Y), ValueError,
     "params must be C-contiguous"),
    ("X-dtype", lambda p, X, Y: (p, X.astype(np.float32), Y), TypeError, "X has dtype"),
    ("X-ints", lambda p, X, Y: (p, X.astype(np.int64), Y), TypeError, "X has dtype"),
    ("X-width", lambda p, X, Y: (p, X[:, :3].copy(), Y), ValueError,
     r"X must have shape \(n, 4\)"),
    ("X-1d", lambda p, X, Y: (p, X[0].copy(), Y), ValueError, "X must have shape"),
    ("X-empty", lambda p, X, Y: (p, X[:0].copy(), Y[:0]), ValueError, "X is empty"),
    ("X-fortran", lambda p, X, Y: (p, np.asfortranarray(X), Y), ValueError,
     "X must be C-contiguous"),
    ("X-nan", lambda p, X, Y: (p, np.where(X > 1, np.nan, X), Y), ValueError,
     "X holds NaN or infinity"),
    ("X-inf", lambda p, X, Y: (p, np.where(X > 1, -np.inf, X), Y), ValueError,
     "X holds NaN or infinity"),
    ("params-inf", lambda p, X, Y: (np.where(p > 0.2, np.inf, p), X, Y), ValueError,
     "params holds NaN or infinity"),
    ("X-not-array", lambda p, X, Y: (p, X.tolist(), Y), TypeError, "X must be a numpy"),
    ("params-masked", lambda p, X, Y: (np.ma.masked_greater(p, 0.5), X, Y), TypeError,
     r"params is a numpy masked array.*params.filled\(value\)"),
    ("X-masked", lambda p, X, Y: (p, np.ma.masked_invalid(X), Y), TypeError,
     "X is a numpy masked array"),
    ("Y-masked", lambda p, X, Y: (p, X, np.ma.masked_greater(Y, 0)), TypeError,
     "Y is a numpy masked array"),
]
REGRESSION_INPUTS = [
    ("Y-nan", lambda p, X, Y: (p, X, np.where(Y > 0, np.nan, Y)), ValueError,
     "Y holds NaN or infinity"),
    ("Y-shape", lambda p, X, Y: (p, X, Y[:, :2].copy()), ValueError,
     r"Y must have shape \(6, 3\)"),
    ("Y-batch", lambda p, X, Y: (p, X, Y[:5].copy()), ValueError, r"Y must have shape \(6, 3\)"),
    ("Y-dtype", lambda p, X, Y: (p, X, Y.astype(np.float32)), TypeError, "Y has dtype float32"),
    ("Y-labels", lambda p, X, Y: (p, X, np.zeros(6, np.int64)), TypeError, "Y has dtype int64"),
    ("Y-list", lambda p, X, Y: (p, X, Y.tolist()), TypeError, "Y must be a numpy"),
]
CLASSIFIER_INPUTS = [
    ("label-negative", lambda p, X, Y: (p, X, np.where(Y == 0, -1, Y)), ValueError,
     r"label outside \[0, 3\)"),
    ("label-too-big", lambda p, X, Y: (p, X, np.where(Y == 0, 3, Y)), ValueError,
     r"label outside \[0, 3\)"),
    ("label-huge-unsigned", lambda p, X, Y: (p, X, np.full(6, 2**63 + 1, np.uint64)),
     ValueError, r"label outside \[0, 3\)"),
    ("label-float", lambda p, X, Y: (p, X, Y.astype(np.float64)), TypeError,
     "must hold integer class labels"),
    ("label-bool", lambda p, X, Y: (p, X, Y > 0), TypeError, "must hold integer class labels"),
    ("label-count", lambda p, X, Y: (p, X, Y[:5].copy()), ValueError,
     r"one integer label per sample, shape \(6,\)"),
    ("label-2d", lambda p, X, Y: (p, X, Y[:, None].copy()), ValueError, "one integer label"),
]


def _ids(cases):
    return [case[0] for case in cases]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "change", "error", "match"),
                         BAD_INPUTS + REGRESSION_INPUTS, ids=_ids(BAD_INPUTS + REGRESSION_INPUTS))
def test_bad_regression_input(regression, backend, name, change, error, match):
    net, params, X, Y = regression
    out = np.full(net.n_params, 7.0)
    with pytest.raises(error, match=match):
        _call(net, *change(params, X, Y), backend=backend, out=out)
    assert (out == 7.0).all(), "nothing is written on bad input"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "change", "error", "match"), CLASSIFIER_INPUTS,
                         ids=_ids(CLASSIFIER_INPUTS))
def test_bad_classifier_input(classifier, backend, name, change, error, match):
    net, params, X, Y = classifier
    out = np.full(net.n_params, 7.0)
    with pytest.raises(error, match=match):
        _call(net, *change(params, X, Y), backend=backend, out=out)
    assert (out == 7.0).all(), "nothing is written on bad input"


def test_hinge_needs_integer_labels():
    net = fp.MLP([3, 4], (), output="identity", loss="hinge")
    params, X, _ = make_problem(net, 2, "rows")
    with pytest.raises(TypeError, match="loss 'hinge' needs Y as integer class labels"):
        net.value_and_grad(params, X, np.zeros((2, 4)))


@pytest.mark.parametrize(("make_out", "error", "match"), [
    (lambda net, p: np.empty(net.n_params, np.float32), TypeError, "out has dtype float32"),
    (lambda net, p: np.empty(net.n_params + 1), ValueError, "out must have shape"),
    (lambda net, p: np.empty((net.n_params, 1)), ValueError, "out must have shape"),
    (lambda net, p: np.empty(2 * net.n_params)[::2], ValueError, "out must be C-contiguous"),
    (lambda net, p: p, ValueError, "out overlaps params"),
    (lambda net, p: [0.0] * net.n_params, TypeError, "out must be a numpy"),
])
def test_bad_out(regression, make_out, error, match):
    net, params, X, Y = regression
    params = params.copy()
    before = params.copy()
    with pytest.raises(error, match=match):
        net.value_and_grad(params, X, Y, out=make_out(net, params))
    assert (params == before).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_partly_overlapping_inputs(regression, backend):
    net, params, X, Y = regression
    for name, size in (("X", X.size), ("Y", Y.size)):
        shared = np.zeros(net.n_params + size - 3)
        out = shared[:net.n_params]
        inputs = {"X": X, "Y": Y}
        inputs[name] = shared[net.n_params - 3:].reshape(inputs[name].shape)
        inputs[name][:] = (X if name == "X" else Y)
        with pytest.raises(ValueError, match="out overlaps params, X or Y"):
            net.value_and_grad(params, inputs["X"], inputs["Y"], backend=backend, out=out)
    classifier = fp.MLP([4, 3], (), output="softmax", loss="cross_entropy")
    c_params, c_X, _ = make_problem(classifier, 6, "rows")
    out = np.zeros(classifier.n_params)
    with pytest.raises(ValueError, match="out overlaps"):
        classifier.value_and_grad(c_params, c_X, out[:6].view(np.int64), backend=backend,
                                  out=out)


def test_read_only_out(regression):
    net, params, X, Y = regression
    out = np.empty(net.n_params)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        net.value_and_grad(params, X, Y, out=out)


def test_check_finite_must_be_a_bool(regression):
    net, params, X, Y = regression
    for method, args in (("value_and_grad", (params, X, Y)), ("loss", (params, X, Y)),
                         ("forward", (params, X))):
        for flag in (None, "no", 1, np.array([True])):
            with pytest.raises(TypeError, match="check_finite must be True or False"):
                getattr(net, method)(*args, check_finite=flag)
        getattr(net, method)(*args, check_finite=np.False_)


def test_unknown_backend(regression):
    net, params, X, Y = regression
    for backend in ("gpu", None, 3):
        with pytest.raises(ValueError, match="backend must be one of"):
            net.value_and_grad(params, X, Y, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_only_inputs_are_accepted(regression, backend):
    net, params, X, Y = regression
    expected_loss, expected_grad = net.value_and_grad(params, X, Y, backend=backend)
    frozen = [a.copy() for a in (params, X, Y)]
    for a in frozen:
        a.flags.writeable = False
    loss, grad = net.value_and_grad(*frozen, backend=backend)
    assert loss == expected_loss and (grad == expected_grad).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_check_finite_false_propagates_nan_without_crashing(backend, activation):
    """NaN in, NaN out, through every activation: never a silent finite result."""
    net = fp.MLP([4, 5, 3], activation)
    params, X, Y = make_problem(net, 6, "rows")
    X[2, :] = np.nan
    loss, grad = net.value_and_grad(params, X, Y, backend=backend, check_finite=False)
    assert np.isnan(loss) and np.isnan(grad).any()
    assert np.isnan(net.forward(params, X, backend=backend, check_finite=False)[2]).all()


@pytest.mark.parametrize("method", ["loss", "forward", "predict"])
def test_other_entry_points_validate_too(classifier, method):
    net, params, X, Y = classifier
    args = (params, X[:, :2].copy()) + ((Y,) if method == "loss" else ())
    with pytest.raises(ValueError, match="X must have shape"):
        getattr(net, method)(*args)
    nan_X = np.full_like(X, np.nan)
    args = (params, nan_X) + ((Y,) if method == "loss" else ())
    with pytest.raises(ValueError, match="X holds NaN"):
        getattr(net, method)(*args)


def test_unpack_and_pack_validate(regression):
    net, params, _, _ = regression
    with pytest.raises(ValueError, match="params must have shape"):
        net.unpack(params[:-1])
    with pytest.raises(ValueError, match="layers must hold 2"):
        net.pack(net.unpack(params)[:1])
    (W1, b1), (W2, b2) = net.unpack(params)
    with pytest.raises(ValueError, match="layer 2 must be W"):
        net.pack([(W1, b1), (W2.T, b2)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_finds_a_bad_value_at_every_position(dtype):
    """Both halves, the odd last element, 1-D and 2-D, and the empty array."""
    for n in (*range(10), 33, 4224):
        values = np.ones(n, dtype)
        assert all_finite(values) and all_finite(values.reshape(1, n))
        for position in range(n):
            for bad in (np.nan, np.inf, -np.inf):
                values[position] = bad
                assert not all_finite(values), (n, position, bad)
                assert not all_finite(values.reshape(1, n)), (n, position, bad)
            values[position] = np.finfo(dtype).max
            assert all_finite(values), (n, position)
            values[position] = 1


BAD_WEIGHTS = [
    ("short", lambda n: np.ones(n - 1), ValueError, r"sample_weight must have shape \(6,\)"),
    ("2-d", lambda n: np.ones((n, 1)), ValueError, r"sample_weight must have shape \(6,\)"),
    ("negative", lambda n: np.r_[np.ones(n - 1), -1.0], ValueError,
     "must be non-negative, got -1.0 at index 5"),
    ("all zero", lambda n: np.zeros(n), ValueError, "positive sum: every weight is zero"),
    ("nan", lambda n: np.r_[np.nan, np.ones(n - 1)], ValueError, "must be finite"),
    ("overflows float32", lambda n: np.full(n, 1e39), ValueError, "must be finite in float32"),
    ("strings", lambda n: ["a"] * n, TypeError, "must hold real numbers, got dtype <U1"),
    ("complex", lambda n: np.ones(n, complex), TypeError, "must hold real numbers"),
    ("ragged", lambda n: [[1.0], [1.0, 2.0]], TypeError, "must be an array of real numbers"),
    ("masked", lambda n: np.ma.masked_array(np.ones(n), mask=np.r_[True, [False] * (n - 1)]),
     TypeError, "masked array"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "make", "error", "match"), BAD_WEIGHTS,
                         ids=[case[0] for case in BAD_WEIGHTS])
def test_bad_sample_weight(regression, backend, name, make, error, match):
    net, params, X, Y = regression
    net = net.with_dtype(np.float32)
    params, X, Y = params.astype(np.float32), X.astype(np.float32), Y.astype(np.float32)
    out = np.full(net.n_params, 7.0, np.float32)
    with pytest.raises(error, match=match):
        net.value_and_grad(params, X, Y, sample_weight=make(len(X)), backend=backend, out=out)
    with pytest.raises(error, match=match):
        net.loss(params, X, Y, sample_weight=make(len(X)), backend=backend)
    with pytest.raises(error, match=match):
        fp.train(net, params.copy(), X, Y, sample_weight=make(len(X)), epochs=1, progress=False,
                 backend=backend)
    assert (out == 7.0).all()
