"""fastprop.MLPRegressor and fastprop.MLPClassifier: scikit-learn's own estimator checks, and
what those checks do not cover (parity with scikit-learn's MLPs: the L-BFGS solver, warm starts,
the adaptive schedule, n_iter_no_change, verbose output, partial_fit; early stopping, parameter
errors, pickling, import without scikit-learn)."""

from __future__ import annotations

import inspect
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import neural_network
from sklearn.base import clone
from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastprop as fp

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: Defaults (Adam, matrix backend, float64), SGD on the naive backend in float32, and L-BFGS
#: with scikit-learn's own test setting, max_iter=100 (see docs/training.md for why).
ESTIMATORS = [fp.MLPRegressor(), fp.MLPClassifier(),
              fp.MLPRegressor(solver="sgd", backend="naive", dtype="float32"),
              fp.MLPClassifier((8, 8), "tanh", solver="sgd", backend="naive", dtype="float32"),
              fp.MLPRegressor(solver="lbfgs", max_iter=100),
              fp.MLPClassifier(solver="lbfgs", max_iter=100)]


def expected_failures(estimator) -> dict[str, str]:
    """The checks that cannot pass, with why (docs/training.md lists them too)."""
    if estimator.dtype == "float32":
        return {"check_sample_weight_equivalence_on_dense_data":
                "it compares float32 predictions to 1e-7 relative; the weighted and repeated "
                "fits agree to float32's precision"}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def digits():
    data = load_digits()
    return data.data[:600] / 16, data.target[:600]


def test_fitted_attributes_mirror_scikit_learn():
    X, y = digits()
    settings = {"hidden_layer_sizes": (16, 8), "max_iter": 20, "batch_size": 32, "random_state": 0}
    ours = fp.MLPClassifier(**settings).fit(X, y)
    theirs = neural_network.MLPClassifier(**settings).fit(X, y)
    for name in ("n_layers_", "n_outputs_", "out_activation_", "n_iter_", "t_",
                 "n_features_in_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert (ours.classes_ == theirs.classes_).all()
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]
    assert len(ours.loss_curve_) == 20 and ours.loss_ == ours.loss_curve_[-1]
    assert ours.best_loss_ == min(ours.loss_curve_) and ours.validation_scores_ is None
    assert ours.score(X, y) > 0.8 and abs(ours.score(X, y) - theirs.score(X, y)) < 0.05
    assert ours.predict_proba(X).shape == (600, 10)
    W, _ = ours.net_.unpack(ours.params_)[0]
    assert (ours.coefs_[0] == W.T).all() and np.shares_memory(ours.coefs_[0], ours.params_)
    np.testing.assert_allclose(np.exp(ours.predict_log_proba(X[:5])), ours.predict_proba(X[:5]))


def test_binary_multilabel_and_regression_outputs():
    X, y = digits()
    binary = fp.MLPClassifier((8,), max_iter=30, random_state=0).fit(X, y % 2 == 0)
    assert binary.out_activation_ == "logistic" and binary.predict(X).dtype == bool
    proba = binary.predict_proba(X)
    assert proba.shape == (600, 2) and np.allclose(proba.sum(axis=1), 1)
    labels = np.stack([y % 2, y > 4, y == 0], axis=1).astype(int)
    multilabel = fp.MLPClassifier((8,), max_iter=30, random_state=0).fit(X, labels)
    assert multilabel.predict(X).shape == (600, 3) and multilabel.net_.loss_name == \
        "binary_cross_entropy"
    X_r, y_r = make_regression(200, 5, n_targets=2, random_state=0)
    regressor = fp.MLPRegressor((16,), max_iter=50, random_state=0, dtype="float32")
    prediction = regressor.fit(X_r, y_r / 100).predict(X_r)
    assert prediction.shape == (200, 2) and prediction.dtype == np.float32


def test_partial_fit():
    X, y = digits()
    classifier = fp.MLPClassifier((16,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        classifier.partial_fit(X, y)
    classifier.partial_fit(X[:100], y[:100], classes=np.arange(10))
    for _ in range(5):
        classifier.partial_fit(X, y)
    assert len(classifier.loss_curve_) == 6 and classifier.n_iter_ == 1
    assert classifier.loss_curve_[-1] < classifier.loss_curve_[0]
    assert classifier.t_ == 100 + 5 * 600 and list(classifier.classes_) == list(range(10))
    with pytest.raises(ValueError, match="not in classes_"):
        classifier.partial_fit(X[:3], np.array([1, 2, 11]))
    regressor = fp.MLPRegressor((8,), random_state=0).partial_fit(X, y.astype(float))
    assert regressor.partial_fit(X, y.astype(float)).t_ == 1200
    with pytest.raises(ValueError, match="y has 2 outputs, but this estimator was trained"):
        regressor.partial_fit(X, np.stack([y, y], axis=1).astype(float))


def regression():
    X, y = make_regression(100, 5, noise=10, random_state=0)
    return X, y / y.std()


def test_parameters_mirror_scikit_learn():
    for ours, theirs in ((fp.MLPClassifier(), neural_network.MLPClassifier()),
                         (fp.MLPRegressor(), neural_network.MLPRegressor())):
        params = ours.get_params()
        assert params.pop("backend") == "matrix" and params.pop("dtype") == "float64"
        expected = theirs.get_params()
        expected.pop("loss", None)  # the regressor's squared_error (no poisson here)
        assert params == expected
    for name in ("fit", "partial_fit"):
        for ours, theirs in ((fp.MLPClassifier, neural_network.MLPClassifier),
                             (fp.MLPRegressor, neural_network.MLPRegressor)):
            arguments = list(inspect.signature(getattr(theirs, name)).parameters)
            assert list(inspect.signature(getattr(ours, name)).parameters) == arguments


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_warm_start_goes_on_from_the_fitted_parameters(solver):
    X, y = digits()
    model = fp.MLPClassifier((8,), solver=solver, max_iter=5, random_state=0).fit(X, y)
    fitted = model.params_.copy()
    first_loss, curve = model.loss_, list(model.loss_curve_)
    # A learning rate too small to move: the warm start ends where it began, a new fit at the
    # initial weights.
    settings = {"learning_rate_init": 1e-12, "max_iter": 2}
    fresh = clone(model).set_params(**settings).fit(X, y)
    assert not np.allclose(fresh.params_, fitted, atol=1e-3)
    model.set_params(warm_start=True, **settings).fit(X, y)
    assert model.n_iter_ == 2 and len(model.loss_curve_) == 7 and model.loss_curve_[:5] == curve
    if solver == "lbfgs":  # L-BFGS goes on from there: never above its last loss
        assert model.loss_ <= first_loss
    else:  # the first epoch's loss is the loss at the fitted parameters
        np.testing.assert_allclose(model.params_, fitted, atol=1e-9)
        assert model.loss_curve_[5] == pytest.approx(model.net_.loss(fitted, X, y), rel=1e-9)
        assert model.t_ == 7 * 600
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        model.fit(X[y < 9], y[y < 9])
    with pytest.raises(ValueError, match=r"layer sizes \[64, 8, 10\] .* fit with warm_start"):
        model.set_params(hidden_layer_sizes=(9,)).fit(X, y)
    model.set_params(warm_start=False).fit(X, y)  # a new network
    assert model.net_.sizes == (64, 9, 10) and len(model.loss_curve_) == 2


def test_lbfgs_reaches_scikit_learns_loss():
    X_r, y_r = regression()
    X, y = digits()
    settings = {"hidden_layer_sizes": (8,), "activation": "tanh", "solver": "lbfgs",
                "alpha": 1.0, "max_iter": 200, "random_state": 0}
    losses = {}
    for ours, theirs, (X_fit, y_fit), rtol in (
            (fp.MLPRegressor, neural_network.MLPRegressor, (X_r, y_r), 0.02),
            (fp.MLPClassifier, neural_network.MLPClassifier, (X[:300], y[:300]), 0.05)):
        fast = ours(**settings).fit(X_fit, y_fit)
        reference = theirs(**settings).fit(X_fit, y_fit)
        assert fast.loss_ == pytest.approx(reference.loss_, rel=rtol)
        assert len(fast.loss_curve_) == fast.n_iter_ <= 200 and fast.loss_curve_[-1] == fast.loss_
        assert fast.best_loss_ == fast.loss_ and fast.validation_scores_ is None
        assert fast.t_ == 0 and not hasattr(fast, "partial_fit")
        # The objective: the network's full-batch loss, with alpha / n_samples as its l2.
        assert fast.net_.l2 == pytest.approx(1.0 / X_fit.shape[0])
        Y = y_fit if ours is fp.MLPClassifier else y_fit.reshape(-1, 1)
        assert fast.net_.loss(fast.params_, X_fit, Y) == pytest.approx(fast.loss_, rel=1e-12)
        losses[ours] = fast.loss_
    # float32: L-BFGS-B still works in float64, the network in float32.
    single = fp.MLPRegressor(**settings, dtype="float32").fit(X_r, y_r)
    assert single.params_.dtype == np.float32
    assert single.loss_ == pytest.approx(losses[fp.MLPRegressor], rel=0.02)


def test_lbfgs_limits_and_convergence_warning(monkeypatch):
    X, y = regression()
    settings = {"hidden_layer_sizes": (8,), "solver": "lbfgs", "random_state": 0}
    for model in (fp.MLPRegressor(**settings, max_iter=5),
                  neural_network.MLPRegressor(**settings, max_iter=5)):
        with pytest.warns(ConvergenceWarning, match=re.escape(
                "lbfgs failed to converge after 5 iteration(s) (status=1)")) as caught:
            model.fit(X, y)
        assert model.n_iter_ == 5 and "(max_iter=5)" in str(caught[0].message)
    evaluations = []
    value_and_grad = fp.MLP.value_and_grad

    def counted(self, *args, **kwargs):
        evaluations.append(1)
        return value_and_grad(self, *args, **kwargs)

    monkeypatch.setattr(fp.MLP, "value_and_grad", counted)
    model = fp.MLPRegressor(**settings, max_fun=10)
    with pytest.warns(ConvergenceWarning, match="status=1") as caught:
        model.fit(X, y)
    # SciPy checks maxfun once per iteration: the last line search may go a little past it.
    assert 10 <= len(evaluations) <= 30 and model.n_iter_ < 10
    assert "max_iter" not in str(caught[0].message)


def test_lbfgs_copies_read_only_data_and_needs_scipy(monkeypatch):
    X, y = regression()
    settings = {"hidden_layer_sizes": (8,), "solver": "lbfgs", "max_iter": 20, "random_state": 0}
    writable = fp.MLPRegressor(**settings).fit(X, y)
    X.flags.writeable = y.flags.writeable = False
    assert (fp.MLPRegressor(**settings).fit(X, y).params_ == writable.params_).all()
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    message = 'needs SciPy: pip install "fastprop[sklearn]"'
    with pytest.raises(ImportError, match=re.escape(message)):
        fp.MLPRegressor(**settings).fit(X, y)


def test_partial_fit_takes_scikit_learns_arguments():
    X, y = digits()
    classifier = fp.MLPClassifier((8,), random_state=0)
    classifier.partial_fit(X, y, None, np.arange(10))  # sample_weight, then classes
    assert list(classifier.classes_) == list(range(10)) and classifier.n_iter_ == 1
    # Unit sample weights, passed by position, give bitwise the unweighted step.
    for model, extra in ((fp.MLPClassifier((8,), random_state=1), (np.arange(10),)),
                         (fp.MLPRegressor((8,), random_state=1), ())):
        target = y if extra else y * 1.0
        unweighted = clone(model).partial_fit(X, target, None, *extra)
        weighted = clone(model).partial_fit(X, target, np.ones(600), *extra)
        assert np.array_equal(weighted.params_, unweighted.params_)
    assert fp.MLPRegressor((8,)).partial_fit(X, y * 1.0, None).t_ == 600
    for estimator in (fp.MLPClassifier, fp.MLPRegressor):
        lbfgs = estimator(solver="lbfgs")
        assert not hasattr(lbfgs, "partial_fit")
        with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as caught:
            lbfgs.partial_fit(X, y)
        assert "only available for stochastic optimizers" in str(caught.value.__cause__)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        fp.MLPClassifier(early_stopping=True).partial_fit(X, y, classes=np.arange(10))


def test_adaptive_learning_rate_divides_by_five_on_each_plateau(capsys):
    X, y = digits()
    settings = {"hidden_layer_sizes": (16,), "solver": "sgd", "learning_rate_init": 0.5,
                "momentum": 0.0, "n_iter_no_change": 2, "tol": 1e-2, "max_iter": 60,
                "random_state": 0}
    constant = fp.MLPClassifier(**settings).fit(X, y)
    adaptive = fp.MLPClassifier(**settings, learning_rate="adaptive", verbose=True).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    lowered = [line for line in lines if "Setting learning rate to" in line]
    assert len(lowered) >= 2 and lowered[0] == (
        "Training loss did not improve more than tol=0.010000 for 2 consecutive epochs. "
        "Setting learning rate to 0.100000")
    assert adaptive._plateau.learning_rate == pytest.approx(0.5 / 5 ** len(lowered))
    # The same epochs up to the first plateau, where the constant rate stops; training then
    # resumes (same optimizer state and shuffles) at the lower rate.
    n = constant.n_iter_
    assert adaptive.loss_curve_[:n] == constant.loss_curve_ and adaptive.n_iter_ > n
    assert min(adaptive.loss_curve_[n:]) < min(constant.loss_curve_)
    # Stopped when the rate would go below 1e-6, before max_iter, without ConvergenceWarning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        small = fp.MLPClassifier(**{**settings, "learning_rate_init": 2e-6, "max_iter": 50},
                                 learning_rate="adaptive", verbose=True).fit(X, y)
    assert small.n_iter_ < 50 and capsys.readouterr().out.splitlines()[-1].endswith(
        "Learning rate too small. Stopping.")
    # scikit-learn lowers its rate on the same rule.
    theirs = neural_network.MLPClassifier(**settings, learning_rate="adaptive").fit(X, y)
    assert theirs._optimizer.learning_rate < 0.5


def test_n_iter_no_change_inf_runs_max_iter_epochs():
    X, y = regression()
    for n_iter_no_change in (2, np.inf):
        settings = {"hidden_layer_sizes": (4,), "max_iter": 12, "tol": 1e9,
                    "n_iter_no_change": n_iter_no_change, "random_state": 0}
        ours = fp.MLPRegressor(**settings)
        theirs = neural_network.MLPRegressor(**settings)
        if n_iter_no_change == np.inf:
            for model in (ours, theirs):
                with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
                    model.fit(X, y)
        else:
            ours.fit(X, y)
            theirs.fit(X, y)
        # A tol this large: every epoch after the first fails to improve.
        assert ours.n_iter_ == theirs.n_iter_ == (12 if n_iter_no_change == np.inf else 4)
    early = fp.MLPClassifier((8,), early_stopping=True, n_iter_no_change=np.inf, max_iter=6,
                             random_state=0).fit(*digits())
    assert len(early.validation_scores_) == 6


def test_verbose_prints_scikit_learns_lines(capsys):
    X, y = digits()
    line = re.compile(r"Iteration \d+, loss = \d+\.\d{8}$")
    settings = {"hidden_layer_sizes": (8,), "max_iter": 3, "verbose": True, "random_state": 0}
    neural_network.MLPClassifier(**settings).fit(X, y)
    theirs = capsys.readouterr().out.splitlines()
    ours = fp.MLPClassifier(**settings).fit(X, y)
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"Iteration {i}, loss = {loss:.8f}"
                       for i, loss in enumerate(ours.loss_curve_, 1)]
    assert len(theirs) == len(printed) == 3 and all(line.match(text) for text in theirs)
    fp.MLPClassifier(**settings, early_stopping=True, n_iter_no_change=1, tol=1.0).fit(X, y)
    printed = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"Validation score: \d\.\d{6}", printed[1]) and printed[-1] == (
        "Validation score did not improve more than tol=1.000000 for 1 consecutive epochs. "
        "Stopping.")
    lbfgs = fp.MLPClassifier((8,), solver="lbfgs", max_iter=4, verbose=True).fit(X, y)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and all(line.match(text) for text in printed)
    assert printed[-1] == f"Iteration 4, loss = {lbfgs.loss_:.8f}"
    fp.MLPClassifier(**{**settings, "verbose": False}).fit(X, y)
    assert capsys.readouterr().out == ""


def test_early_stopping_and_batch_clipping():
    X, y = digits()
    model = fp.MLPClassifier((16,), early_stopping=True, n_iter_no_change=2, max_iter=200,
                             random_state=0).fit(X, y)
    assert model.best_loss_ is None and len(model.validation_scores_) == model.n_iter_ < 200
    assert model.best_validation_score_ == max(model.validation_scores_)
    with pytest.raises(ValueError, match="validation set is too small"):
        fp.MLPRegressor(early_stopping=True).fit(X[:10], y[:10].astype(float))
    with pytest.warns(UserWarning, match="It is going to be clipped"):
        fp.MLPRegressor((4,), batch_size=1000, max_iter=2).fit(X[:50], y[:50].astype(float))


@pytest.mark.parametrize(("params", "error", "match"), [
    ({"solver": "newton"}, ValueError, "solver must be one of"),
    ({"learning_rate": "cyclic", "solver": "sgd"}, ValueError, "learning_rate must be one of"),
    ({"solver": "lbfgs", "max_fun": 0}, ValueError, "max_fun must be >= 1, got 0"),
    ({"n_iter_no_change": 2.5}, ValueError, "n_iter_no_change must be an integer >= 1 or"),
    ({"hidden_layer_sizes": (10, 0)}, ValueError, "hidden_layer_sizes must be"),
    ({"activation": "gelu"}, ValueError, "activation must be one of"),
    ({"alpha": -1.0}, ValueError, "alpha must lie in"),
    ({"max_iter": 0}, ValueError, "max_iter must be >= 1, got 0"),
    ({"max_iter": 2.5}, TypeError, "max_iter must be an integer, got 2.5"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
    ({"learning_rate_init": 0.0}, ValueError, "learning_rate_init must lie in"),
    ({"beta_2": 1.0}, ValueError, "beta_2 must lie in"),
    ({"n_iter_no_change": 0}, ValueError, "n_iter_no_change must be an integer"),
    ({"early_stopping": True, "validation_fraction": 1.0}, ValueError,
     "validation_fraction must lie in"),
    ({"dtype": "float16"}, ValueError, "dtype must be float32 or float64"),
    ({"backend": "cuda"}, ValueError, "train runs on the CPU backends"),
    ({"backend": "tpu"}, ValueError, "backend must be one of"),
])
def test_bad_parameters_raise_in_fit(params, error, match):
    X, y = digits()
    model = fp.MLPClassifier(**params)  # no check in __init__, as scikit-learn requires
    with pytest.raises(error, match=match):
        model.fit(X[:50], y[:50])


def test_pickle_and_clone():
    X, y = digits()
    model = fp.MLPClassifier((8,), max_iter=5, random_state=0, dtype="float32").fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    assert (restored.predict_proba(X) == model.predict_proba(X)).all()
    restored.partial_fit(X, y)  # the optimizer state travels too
    assert not hasattr(clone(model), "net_") and clone(model).get_params() == model.get_params()


def test_import_without_scikit_learn():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import fastprop as fp\n"
            "fp.MLP([2, 1]); fp.train\n"
            "try:\n    fp.MLPClassifier\nexcept ImportError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert "pip install 'fastprop[sklearn]'" in result.stdout


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_integer_sample_weights_fit_as_repeated_samples(solver):
    """scikit-learn's semantics: a weight of k counts a sample k times. Full batches, no
    shuffle, so both fits see the same sums; L-BFGS's alpha is divided by the weight sum."""
    X, y = regression()
    counts = np.random.default_rng(0).integers(0, 3, size=len(X))
    repeated = np.repeat(np.arange(len(X)), counts)
    settings = {"hidden_layer_sizes": (8,), "solver": solver, "max_iter": 30, "alpha": 1e-2,
                "random_state": 0, "shuffle": False, "batch_size": 10**6}
    weighted = fp.MLPRegressor(**settings).fit(X, y, sample_weight=counts)
    repeats = fp.MLPRegressor(**settings).fit(X[repeated], y[repeated])
    np.testing.assert_allclose(weighted.predict(X), repeats.predict(X), rtol=1e-6, atol=1e-8)
    # scikit-learn's own MLP has the same property (the behaviour matched here).
    theirs = neural_network.MLPRegressor(**settings)
    np.testing.assert_allclose(clone(theirs).fit(X, y, sample_weight=counts).predict(X),
                               clone(theirs).fit(X[repeated], y[repeated]).predict(X),
                               rtol=1e-6, atol=1e-8)


def test_sample_weight_through_a_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = digits()
    weights = np.where(y == 3, 5.0, 1.0)
    pipeline = make_pipeline(StandardScaler(), fp.MLPClassifier((16,), max_iter=20,
                                                                random_state=0))
    pipeline.fit(X, y, mlpclassifier__sample_weight=weights)
    alone = fp.MLPClassifier((16,), max_iter=20, random_state=0).fit(
        StandardScaler().fit_transform(X), y, sample_weight=weights)
    np.testing.assert_array_equal(pipeline[-1].params_, alone.params_)
    unweighted = fp.MLPClassifier((16,), max_iter=20, random_state=0).fit(
        StandardScaler().fit_transform(X), y)
    assert not np.array_equal(unweighted.params_, alone.params_)


def test_bad_sample_weight_is_a_clear_error():
    X, y = digits()
    model = fp.MLPClassifier((8,), max_iter=2)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(600,\)"):
        model.fit(X, y, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="non-negative"):
        model.fit(X, y, sample_weight=-np.ones(600))
    with pytest.raises(ValueError, match="positive sum"):
        model.fit(X, y, sample_weight=np.zeros(600))
