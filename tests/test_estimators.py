"""fastprop.MLPRegressor and fastprop.MLPClassifier: scikit-learn's own estimator checks, and
what those checks do not cover (parity with scikit-learn's MLPs, partial_fit, early stopping,
parameter errors, pickling, import without scikit-learn)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn import neural_network
from sklearn.base import clone
from sklearn.datasets import load_digits, make_regression
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastprop as fp

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: Defaults (Adam, matrix backend, float64), and SGD on the naive backend in float32.
ESTIMATORS = [fp.MLPRegressor(), fp.MLPClassifier(),
              fp.MLPRegressor(solver="sgd", backend="naive", dtype="float32"),
              fp.MLPClassifier((8, 8), "tanh", solver="sgd", backend="naive", dtype="float32")]


@parametrize_with_checks(ESTIMATORS)
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
    ({"solver": "lbfgs"}, ValueError, "solver must be one of .* no 'lbfgs'"),
    ({"learning_rate": "adaptive", "solver": "sgd"}, ValueError, "no 'adaptive'"),
    ({"hidden_layer_sizes": (10, 0)}, ValueError, "hidden_layer_sizes must be"),
    ({"activation": "gelu"}, ValueError, "activation must be one of"),
    ({"alpha": -1.0}, ValueError, "alpha must lie in"),
    ({"max_iter": 0}, ValueError, "max_iter must be an integer >= 1"),
    ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
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
