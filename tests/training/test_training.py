"""fastprop.train and the optimizers: loss curves against a float64 NumPy training loop written
here, shuffles, partial batches, early stopping, callbacks, resuming, and bad input."""

from __future__ import annotations

import math
import subprocess
import sys

import numba
import numpy as np
import pytest
from helpers import DTYPES
from reference import reference_loss_and_grad

import fastprop as fp
from fastprop import training
from fastprop.optimizers import get_optimizer
from fastprop.shuffling import permutation

# -- the reference: minibatch training in float64 NumPy, from the optimizers' formulas -------


def reference_rate(optimizer, epoch: int, samples: int) -> float:
    """The learning rate of an epoch, from the schedules' definitions."""
    schedule, lr = optimizer.schedule, optimizer.learning_rate
    if isinstance(schedule, fp.InverseScaling):
        return lr / (samples + 1) ** schedule.power_t
    if isinstance(schedule, fp.StepDecay):
        return lr * schedule.gamma ** (epoch // schedule.step_size)
    return lr


def reference_train(net, params, X, Y, optimizer, epochs, batch_size, seed, shuffle=True,
                    sample_weight=None):
    """``(loss per epoch, final parameters)`` of minibatch training, in float64."""
    weights = np.ones(len(X)) if sample_weight is None else sample_weight
    p = params.astype(np.float64)
    X = X.astype(np.float64)
    Y = Y.astype(np.float64) if Y.dtype.kind == "f" else Y
    rng = np.random.default_rng(seed)
    n = len(X)
    velocity, m, s = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    t = samples = 0
    curve = []
    for epoch in range(epochs):
        order = permutation(rng, n) if shuffle else np.arange(n)
        lr = reference_rate(optimizer, epoch, samples)
        total = 0.0
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            loss, g = reference_loss_and_grad(net.sizes, net.activations, net.output,
                                              net.loss_name, net.l2, p, X[batch], Y[batch],
                                              weights[batch])
            total += loss * len(batch)
            t += 1
            if isinstance(optimizer, fp.Adam):
                b1, b2 = optimizer.beta_1, optimizer.beta_2
                m = b1 * m + (1 - b1) * g
                s = b2 * s + (1 - b2) * g * g
                p = p - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(s)
                                                                      + optimizer.epsilon)
            elif optimizer.momentum == 0:
                p = p - lr * g
            else:
                mu = optimizer.momentum
                velocity = mu * velocity - lr * g
                p = p + (mu * velocity - lr * g if optimizer.nesterov else velocity)
        curve.append(total / n)
        samples += n
    return curve, p


def problem(dtype, output="identity", loss="squared", activation="tanh", l2=0.0, n=50,
            seed=0, targets=None):
    """A small network and data set: 3 inputs, hidden 8 and 5, 3 outputs."""
    net = fp.MLP([3, 8, 5, 3], activation, output, loss, l2=l2, dtype=dtype)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(dtype)
    if targets == "labels":
        Y = rng.integers(0, 3, size=n)
    elif output == "identity":
        Y = np.sin(X @ rng.normal(size=(3, 3))).astype(dtype)
    else:
        Y = (rng.uniform(size=(n, 3)) < 0.5).astype(dtype)
    return net, net.init(seed=rng), X, Y


CASES = {
    "sgd": ({}, fp.SGD(0.1)),
    "momentum-invscaling-l2": ({"l2": 0.01},
                               fp.SGD(0.5, momentum=0.9, schedule=fp.InverseScaling(0.3))),
    "nesterov-step": ({"activation": "relu"},
                      fp.SGD(0.05, momentum=0.8, nesterov=True, schedule=fp.StepDecay(2, 0.5))),
    "adam-labels": ({"output": "softmax", "loss": "cross_entropy", "targets": "labels",
                     "l2": 1e-3}, fp.Adam(0.01)),
    "adam-step-bce": ({"output": "sigmoid", "loss": "binary_cross_entropy",
                       "activation": "softplus"},
                      fp.Adam(0.02, 0.8, 0.99, 1e-6, fp.StepDecay(1, 0.7))),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_loss_curve_matches_float64_reference(case, dtype):
    options, optimizer = CASES[case]
    net, params, X, Y = problem(dtype, **options)
    expected_curve, expected_params = reference_train(net, params, X, Y, optimizer, epochs=4,
                                                      batch_size=8, seed=3)
    history = fp.train(net, params, X, Y, optimizer=optimizer, epochs=4, batch_size=8, seed=3,
                       progress=False)
    tolerance = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(history.loss, expected_curve, rtol=tolerance)
    scale = np.abs(expected_params).max()
    assert np.abs(params - expected_params).max() <= tolerance * 10 * scale
    assert history.state.steps == 4 * 7, "50 samples in batches of 8: 6 full and one of 2"
    assert history.learning_rate == [reference_rate(optimizer, e, 50 * e) for e in range(4)]


@pytest.mark.parametrize("backend", ["matrix", "naive"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_weighted_training_matches_float64_reference(dtype, backend):
    """Sample weights weigh each minibatch's loss; a zero weight leaves a sample out."""
    options, optimizer = CASES["adam-labels"]
    net, params, X, Y = problem(dtype, **options)
    weights = np.random.default_rng(4).integers(0, 4, size=len(X)).astype(np.float64)
    weights[:8] = 1.0  # (no minibatch of all-zero weights)
    expected_curve, expected_params = reference_train(
        net, params, X, Y, optimizer, epochs=3, batch_size=8, seed=None, shuffle=False,
        sample_weight=weights.astype(dtype))
    history = fp.train(net, params, X, Y, optimizer=optimizer, epochs=3, batch_size=8,
                       shuffle=False, sample_weight=weights, backend=backend, progress=False)
    tolerance = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(history.loss, expected_curve, rtol=tolerance)
    assert np.abs(params - expected_params).max() <= tolerance * 10 * np.abs(params).max()


def test_full_batch_integer_weights_train_as_repeated_samples():
    net, params, X, Y = problem(np.float64, l2=0.01)
    counts = np.random.default_rng(5).integers(0, 3, size=len(X))
    repeated = np.repeat(np.arange(len(X)), counts)
    copy = params.copy()
    fp.train(net, params, X, Y, optimizer=fp.SGD(0.3), epochs=5, batch_size=len(X),
             sample_weight=counts, progress=False)
    fp.train(net, copy, X[repeated], Y[repeated], optimizer=fp.SGD(0.3), epochs=5,
             batch_size=len(repeated), progress=False)
    np.testing.assert_allclose(params, copy, rtol=0, atol=1e-12)


def test_naive_backend_and_unshuffled_order():
    net, params, X, Y = problem(np.float64, l2=0.01)
    optimizer = fp.SGD(0.2, momentum=0.5)
    expected_curve, expected_params = reference_train(net, params, X, Y, optimizer, epochs=3,
                                                      batch_size=16, seed=None, shuffle=False)
    history = fp.train(net, params, X, Y, optimizer=optimizer, epochs=3, batch_size=16,
                       shuffle=False, backend="naive", progress=False)
    np.testing.assert_allclose(history.loss, expected_curve, rtol=1e-10)
    np.testing.assert_allclose(params, expected_params, rtol=0, atol=1e-10)


def test_training_converges():
    net, params, X, Y = problem(np.float32, n=400)
    history = fp.train(net, params, X, Y, optimizer=fp.Adam(0.01), epochs=30, batch_size=16,
                       seed=0, progress=False)
    assert history.loss[-1] < 0.1 * history.loss[0]
    assert history.stopped == "epochs" and history.epochs == 30 and history.seconds > 0


def test_seed_determinism_and_resume():
    net, start, X, Y = problem(np.float64)
    runs = []
    for seed in (5, 5, 6):
        params = start.copy()
        runs.append((fp.train(net, params, X, Y, epochs=4, seed=seed, batch_size=8,
                              progress=False).loss, params))
    assert runs[0][0] == runs[1][0] and (runs[0][1] == runs[1][1]).all()
    assert runs[0][0] != runs[2][0]
    params = start.copy()
    first = fp.train(net, params, X, Y, epochs=2, seed=5, batch_size=8, progress=False)
    second = fp.train(net, params, X, Y, epochs=2, batch_size=8, progress=False,
                      resume=first.state)
    assert first.loss + second.loss == runs[0][0], "resuming goes on exactly"
    assert (params == runs[0][1]).all() and second.state.steps == 4 * 7


def test_one_compiled_call_per_epoch(monkeypatch):
    calls = []
    compiled_epoch = training._compiled_epoch

    def counted_epoch(kernel):
        epoch = compiled_epoch(kernel)

        def counted(*args):
            calls.append(args[8].shape)  # the shuffled order: every sample, once
            return epoch(*args)
        return counted

    monkeypatch.setattr(training, "_compiled_epoch", counted_epoch)
    net, params, X, Y = problem(np.float64)
    fp.train(net, params, X, Y, epochs=3, batch_size=8, progress=False)
    assert calls == [(50,)] * 3


@pytest.mark.parametrize("backend, threads", [
    ("matrix", 1), ("naive", 1),
    pytest.param("naive", 2, marks=pytest.mark.skipif(
        numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread: no batch splits"))])
def test_a_new_process_loads_the_epoch_from_the_disk_cache(backend, threads):
    """The compiled epoch is cached on disk like the kernels (in the session's numba cache): a
    process after one that ran it compiles nothing for it (its entry point is a global of the
    compiled copy, not an argument). On two threads the naive backend's batches split: that
    epoch calls parallel code, and is loaded from the cache too."""
    script = f"""
import numpy as np, fastprop as fp
from fastprop import training
from fastprop.backends import get_backend
fp.set_num_threads({threads})
net = fp.MLP([3, 8, 2], activation="tanh"); params = net.init(seed=0)
rng = np.random.default_rng(0)
X, Y = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
history = fp.train(net, params, X, Y, epochs=2, batch_size=8, seed=0, progress=False,
                   backend={backend!r})
kernel, _, _ = get_backend({backend!r}).gradient_kernel(net.spec, 8)
stats = training._compiled_epoch(kernel).stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()), history.loss)
"""
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=900, check=False) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    first, second = (run.stdout.split(maxsplit=2) for run in runs)
    assert second[:2] == ["1", "0"], "the second process compiled the epoch again"
    assert first[2] == second[2]  # the same training


def test_validation_scores_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    for options, metric in (({"output": "softmax", "loss": "cross_entropy",
                              "targets": "labels"}, "accuracy"),
                            ({"output": "sigmoid", "loss": "binary_cross_entropy"}, "subset"),
                            ({}, "r2")):
        net, params, X, Y = problem(np.float64, **options)
        _, _, X_val, Y_val = problem(np.float64, seed=1, **options)
        history = fp.train(net, params, X, Y, epochs=2, validation=(X_val, Y_val),
                           progress=False)
        outputs = net.forward(params, X_val)
        if metric == "r2":
            expected = metrics.r2_score(Y_val, outputs)
        elif metric == "subset":
            expected = metrics.accuracy_score(Y_val, outputs >= 0.5)
        else:
            expected = metrics.accuracy_score(Y_val, outputs.argmax(axis=1))
        assert history.val_score[-1] == pytest.approx(expected, abs=1e-12)
        assert history.val_loss[-1] == pytest.approx(net.loss(params, X_val, Y_val), rel=1e-12)
        # Weighted: scikit-learn's weighted score and fastprop's weighted loss.
        weights = np.random.default_rng(2).uniform(0, 2, size=len(X_val))
        history = fp.train(net, params, X, Y, epochs=1, validation=(X_val, Y_val, weights),
                           progress=False)
        outputs = net.forward(params, X_val)
        predicted = {"r2": outputs, "subset": outputs >= 0.5,
                     "accuracy": outputs.argmax(axis=1)}[metric]
        score = metrics.r2_score if metric == "r2" else metrics.accuracy_score
        expected = score(Y_val, predicted, sample_weight=weights)
        assert history.val_score[-1] == pytest.approx(expected, abs=1e-12)
        assert history.val_loss[-1] == pytest.approx(
            net.loss(params, X_val, Y_val, sample_weight=weights), rel=1e-12)


def test_early_stopping_restores_the_best_epoch():
    net, start, X, Y = problem(np.float64)
    X_val, Y_val = X[:10], Y[:10] + 5.0  # validation loss rises as training fits Y
    params = start.copy()
    kept = []
    history = fp.train(net, params, X, Y, optimizer=fp.SGD(0.05), epochs=50, seed=0,
                       validation=(X_val, Y_val), progress=False,
                       early_stopping=fp.EarlyStopping(patience=3, tol=0, monitor="val_loss"),
                       callback=lambda h: kept.append(params.copy()))
    assert history.stopped == "early_stopping"
    best = int(np.argmin(history.val_loss))
    assert history.best_epoch == best + 1 and history.epochs == history.best_epoch + 4
    assert (params == kept[best]).all() and not (params == kept[-1]).all()
    # on the training loss, with a tolerance no epoch can beat: the first epoch sets the best,
    # then training stops at the (patience + 1)-th epoch without improvement
    history = fp.train(net, start.copy(), X, Y, optimizer=fp.SGD(1e-6), epochs=50,
                       early_stopping=fp.EarlyStopping(2, tol=1.0, monitor="loss"),
                       progress=False)
    assert history.epochs == 1 + 3 and history.stopped == "early_stopping"


def test_callback_stops_and_progress_bar(capsys):
    net, params, X, Y = problem(np.float64)
    seen = []
    history = fp.train(net, params, X, Y, epochs=10, progress=False,
                       callback=lambda h: seen.append(h.epochs) or h.epochs == 3)
    assert seen == [1, 2, 3] and history.epochs == 3 and history.stopped == "callback"
    assert capsys.readouterr().err == ""
    fp.train(net, params, X, Y, epochs=2, progress=True)
    assert "2/2" in capsys.readouterr().err


def test_divergence_stops_with_a_warning():
    net, params, X, Y = problem(np.float64)
    with pytest.warns(RuntimeWarning, match="diverged"):
        history = fp.train(net, params, X, Y * 1e30, optimizer=fp.SGD(1e10), epochs=20,
                           progress=False)
    assert history.stopped == "diverged" and not math.isfinite(history.loss[-1])


# -- bad input -----------------------------------------------------------------------------


def _bad_inputs():
    _, params, X, Y = problem(np.float64)
    nan_X = X.copy()
    nan_X[3, 1] = np.nan
    inf_Y = Y.copy()
    inf_Y[0, 0] = np.inf
    read_only = params.copy()
    read_only.flags.writeable = False
    return {
        "X columns": ({"X": X[:, :2].copy()}, ValueError, r"X must have shape \(n, 3\)"),
        "Y rows": ({"Y": Y[:10]}, ValueError, r"Y must have shape \(50, 3\)"),
        "X dtype": ({"X": X.astype(np.float32)}, TypeError, "X has dtype float32"),
        "NaN in X": ({"X": nan_X}, ValueError, "X holds NaN"),
        "inf in Y": ({"Y": inf_Y}, ValueError, "Y holds NaN or infinity"),
        "NaN in validation": ({"validation": (nan_X, Y)}, ValueError,
                              "validation: X holds NaN"),
        "validation shape": ({"validation": (X, Y[:, :2].copy())}, ValueError,
                             r"validation: Y must have shape"),
        "validation type": ({"validation": [X, Y]}, TypeError, "validation must be a tuple"),
        "zero epochs": ({"epochs": 0}, ValueError, "epochs must be >= 1, got 0"),
        "float epochs": ({"epochs": 2.5}, TypeError, "epochs must be an integer"),
        "batch 0": ({"batch_size": 0}, ValueError, "batch_size must be from 1"),
        "batch larger than data": ({"batch_size": 51}, ValueError,
                                   r"batch_size must be from 1 to the number of samples \(50\)"),
        "unknown optimizer": ({"optimizer": "rmsprop"}, ValueError,
                              r"optimizer must be one of \['sgd', 'adam'\]"),
        "unknown backend": ({"backend": "gpu"}, ValueError, "backend must be one of"),
        "params dtype": ({"params": params.astype(np.float32)}, TypeError, "params has dtype"),
        "read-only params": ({"params": read_only}, ValueError, "params is read-only"),
        "check_finite": ({"check_finite": "no"}, TypeError, "check_finite must be True or False"),
        "early stopping without validation": (
            {"early_stopping": fp.EarlyStopping()}, ValueError, "needs validation="),
        "early stopping type": ({"early_stopping": 3}, TypeError,
                                "early_stopping must be an EarlyStopping"),
        "callback": ({"callback": "print"}, TypeError, "callback must be callable"),
        "net": ({"net": "mlp"}, TypeError, r"net must be a fastprop\.MLP"),
        "resume type": ({"resume": {}}, TypeError, "resume must be a TrainState"),
        "resume size": ({"resume": training.TrainState(np.zeros(3), 0, 0, 0, None)}, ValueError,
                        "resume holds an optimizer state of shape"),
    }


BAD = _bad_inputs()


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_rejected_before_training(name):
    net, params, X, Y = problem(np.float64)
    arguments = {"net": net, "params": params, "X": X, "Y": Y}
    changes, error, match = BAD[name]
    arguments.update(changes)
    before = arguments["params"].copy() if isinstance(arguments["params"], np.ndarray) else None
    with pytest.raises(error, match=match):
        fp.train(**arguments, progress=False)
    if before is not None:
        assert (arguments["params"] == before).all(), "nothing is trained on bad input"


def test_default_batch_size_is_clipped_to_the_samples():
    net, params, X, Y = problem(np.float64, n=10)
    clipped = fp.train(net, params.copy(), X, Y, epochs=2, shuffle=False, progress=False)
    whole = fp.train(net, params.copy(), X, Y, epochs=2, batch_size=10, shuffle=False,
                     progress=False)
    assert np.array_equal(clipped.loss, whole.loss)
    with pytest.raises(ValueError, match=r"batch_size must be from 1 to the number of samples "
                                         r"\(10\), got 11"):
        fp.train(net, params, X, Y, batch_size=11, progress=False)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        fp.train(net, params, X, Y, seed=-1, progress=False)


def test_seed_and_resume_together():
    net, params, X, Y = problem(np.float64)
    state = fp.train(net, params, X, Y, epochs=1, progress=False).state
    with pytest.raises(ValueError, match="pass seed or resume"):
        fp.train(net, params, X, Y, seed=1, resume=state, progress=False)


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda: fp.SGD(0.0), ValueError, r"learning_rate must lie in \(0.0"),
    (lambda: fp.SGD(momentum=1.5), ValueError, "momentum must lie in"),
    (lambda: fp.SGD(nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
    (lambda: fp.SGD(nesterov=1), TypeError, "nesterov must be a bool"),
    (lambda: fp.SGD(schedule="cosine"), ValueError, "schedule must be one of"),
    (lambda: fp.Adam(beta_1=1.0), ValueError, "beta_1 must lie in"),
    (lambda: fp.Adam(epsilon=0), ValueError, "epsilon must lie in"),
    (lambda: fp.Adam(learning_rate="fast"), TypeError, "learning_rate must be a real number"),
    (lambda: fp.StepDecay(step_size=0), ValueError, "step_size must be >= 1"),
    (lambda: fp.StepDecay(gamma=0.0), ValueError, "gamma must lie in"),
    (lambda: fp.InverseScaling(power_t=-1), ValueError, "power_t must lie in"),
    (lambda: fp.EarlyStopping(patience=0), ValueError, "patience must be >= 1"),
    (lambda: fp.EarlyStopping(tol=-1), ValueError, "tol must lie in"),
    (lambda: fp.EarlyStopping(monitor="accuracy"), ValueError, "monitor must be one of"),
])
def test_bad_hyperparameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_optimizer_names_and_schedules():
    assert fp.SGD(schedule="invscaling").schedule == fp.InverseScaling(0.5)
    assert fp.Adam(schedule="step").schedule == fp.StepDecay(10, 0.1)
    assert get_optimizer("sgd") == fp.SGD() and get_optimizer("adam") == fp.Adam()
    assert fp.StepDecay(3, 0.5)(1.0, 7, 0) == 0.25
    assert fp.InverseScaling(1.0)(1.0, 0, 9) == 0.1
