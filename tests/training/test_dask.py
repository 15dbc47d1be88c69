"""fastprop.dask on a two-worker local cluster (worker processes, one thread each), started once
for this module: the distributed loss, gradient and outputs against one machine's for every
loss, both dtypes and odd chunkings; sample weights; both training methods; the checks of the
arguments; a worker killed during a gradient; a chunk's error; the embedded default cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from helpers import make_problem, rel_diff

import fastprop as fp

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
fd = pytest.importorskip("fastprop.dask")
from scipy.optimize import minimize  # noqa: E402

#: (loss, output, kind of targets): every loss, with rows and labels where it takes both.
LOSSES = [
    ("squared", "identity", "rows"),
    ("squared", "sigmoid", "rows"),
    ("cross_entropy", "softmax", "labels"),
    ("cross_entropy", "softmax", "soft"),
    ("binary_cross_entropy", "sigmoid", "rows"),
    ("hinge", "identity", "labels"),
]
#: Sample counts per chunk, for 23 samples: one chunk, uneven ones with a chunk of one sample,
#: and more chunks than one node of the reduction tree adds up.
CHUNKINGS = [(23,), (1, 10, 12), (3, 3, 3, 3, 3, 3, 4, 1)]
#: The largest relative difference from one machine's result, per dtype.
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, for the whole module."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            yield client


def chunked(array: np.ndarray, chunks: tuple[int, ...]):
    """``array`` as a Dask array split along the samples into ``chunks``."""
    return da.from_array(array, chunks=(chunks, *array.shape[1:]))


def network(loss: str = "cross_entropy", output: str = "softmax", dtype=np.float64,
            sizes=(5, 7, 3), l2: float = 0.1) -> fp.MLP:
    return fp.MLP(list(sizes), activation="tanh", output=output, loss=loss, l2=l2, dtype=dtype)


# -- the loss, the gradient and the outputs ---------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("loss", "output", "targets"), LOSSES)
def test_gradient_and_loss_equal_one_machines(client, loss, output, targets, dtype):
    net = network(loss, output, dtype)
    params, X, Y = make_problem(net, 23, targets)
    expected_loss, expected_grad = net.value_and_grad(params, X, Y)
    for chunks in CHUNKINGS:
        value, grad = fd.value_and_grad(net, params, chunked(X, chunks), chunked(Y, chunks),
                                        client=client)
        assert isinstance(grad, np.ndarray) and grad.dtype == net.dtype
        assert rel_diff(value, expected_loss) <= TOLERANCE[dtype], chunks
        assert rel_diff(grad, expected_grad) <= TOLERANCE[dtype], chunks
        assert rel_diff(fd.loss(net, params, chunked(X, chunks), chunked(Y, chunks),
                                client=client), expected_loss) <= TOLERANCE[dtype], chunks


@pytest.mark.parametrize("split_every", [2, 3])
def test_any_fan_in_gives_the_same_gradient(client, split_every):
    net = network(loss="squared", output="identity", sizes=(4, 6, 1))
    params, X, Y = make_problem(net, 23, "rows")
    Y = Y[:, 0].copy()  # one output: targets of shape (n,)
    chunks = CHUNKINGS[-1]
    value, grad = fd.value_and_grad(net, params, chunked(X, chunks), chunked(Y, chunks),
                                    client=client, split_every=split_every)
    expected_loss, expected_grad = net.value_and_grad(params, X, Y)
    assert rel_diff(value, expected_loss) <= 1e-12 and rel_diff(grad, expected_grad) <= 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sample_weights_give_the_weighted_mean(client, dtype):
    net = network(dtype=dtype)
    params, X, Y = make_problem(net, 23, "labels")
    weights = np.random.default_rng(3).uniform(0, 2, size=23)
    weights[1:11] = 0.0  # a chunk whose weights are all zero adds nothing
    chunks = (1, 10, 12)
    expected_loss, expected_grad = net.value_and_grad(params, X, Y, sample_weight=weights)
    value, grad = fd.value_and_grad(net, params, chunked(X, chunks), chunked(Y, chunks),
                                    sample_weight=chunked(weights, chunks), client=client)
    assert rel_diff(value, expected_loss) <= TOLERANCE[dtype]
    assert rel_diff(grad, expected_grad) <= TOLERANCE[dtype]
    value = fd.loss(net, params, chunked(X, chunks), chunked(Y, chunks),
                    sample_weight=chunked(weights, chunks), client=client)
    assert rel_diff(value, net.loss(params, X, Y, sample_weight=weights)) <= TOLERANCE[dtype]


def test_weights_that_sum_to_zero_are_refused(client):
    net = network()
    params, X, Y = make_problem(net, 6, "labels")
    with pytest.raises(ValueError, match="sample_weight sums to 0"):
        fd.value_and_grad(net, params, chunked(X, (3, 3)), chunked(Y, (3, 3)),
                          sample_weight=da.zeros(6, chunks=3), client=client)


def test_forward_is_a_dask_array_of_the_outputs(client):
    net = network(dtype=np.float32)
    params, X, _ = make_problem(net, 23, "labels")
    outputs = fd.forward(net, params, chunked(X, (1, 10, 12)))
    assert isinstance(outputs, da.Array) and outputs.chunks == ((1, 10, 12), (3,))
    assert outputs.dtype == np.float32
    np.testing.assert_array_equal(client.compute(outputs).result(), net.forward(params, X))


def test_workers_are_warmed_up_once(client):
    fd.get_client(client)

    def state() -> tuple[int, bool]:
        return max(fp.get_num_threads().values()), "fastprop.training" in sys.modules

    assert [tuple(found) for found in client.run(state).values()] == [(1, True)] * 2


# -- training ---------------------------------------------------------------------------------


def test_lbfgs_reaches_one_machines_minimum(client):
    net = network(loss="squared", output="identity", sizes=(3, 8, 2), l2=1e-3)
    params, X, Y = make_problem(net, 60, "rows")
    start = params.copy()

    def objective(x):
        value, grad = net.value_and_grad(x, X, Y)
        return value, grad

    expected = minimize(objective, start, method="L-BFGS-B", jac=True,
                        options={"maxiter": 40, "gtol": 1e-5})
    history = fd.train(net, params, chunked(X, (25, 25, 10)), chunked(Y, (25, 25, 10)),
                       max_iter=40, progress=False, client=client)
    assert history.method == "lbfgs" and history.stopped in ("converged", "max_iter")
    assert history.loss[-1] < history.loss[0] and history.evaluations >= len(history.loss)
    assert rel_diff(net.loss(params, X, Y), expected.fun) <= 1e-8
    assert rel_diff(params, expected.x) <= 1e-5


def test_lbfgs_callback_stops(client):
    net = network(loss="squared", output="identity", sizes=(3, 4, 1))
    params, X, Y = make_problem(net, 20, "rows")
    history = fd.train(net, params, chunked(X, (10, 10)), chunked(Y, (10, 10)),
                       callback=lambda h: h.epochs == 3, progress=False, client=client)
    assert history.stopped == "callback" and history.epochs == 3


def test_local_sgd_of_one_group_is_fp_train(client):
    net = network(dtype=np.float32)
    params, X, Y = make_problem(net, 40, "labels")
    expected = params.copy()
    reference = fp.train(net, expected, X, Y, optimizer=fp.Adam(learning_rate=0.01), epochs=4,
                         batch_size=8, seed=np.random.default_rng(5).spawn(1)[0],
                         progress=False)
    history = fd.train(net, params, chunked(X, (13, 27)), chunked(Y, (13, 27)),
                       method="local-sgd", optimizer=fp.Adam(learning_rate=0.01), epochs=4,
                       batch_size=8, seed=5, groups=1, average_every=2, progress=False,
                       client=client)
    np.testing.assert_array_equal(params, expected)
    np.testing.assert_allclose(history.loss, reference.loss, rtol=1e-6)
    assert history.stopped == "epochs" and history.groups == 1


def test_weighted_local_sgd_of_one_group_is_weighted_fp_train(client):
    net = network()
    params, X, Y = make_problem(net, 30, "labels")
    weights = np.random.default_rng(6).uniform(0.5, 2.0, size=30)
    expected = params.copy()
    fp.train(net, expected, X, Y, optimizer=fp.SGD(0.1), epochs=2, batch_size=5,
             sample_weight=weights, seed=np.random.default_rng(2).spawn(1)[0], progress=False)
    fd.train(net, params, chunked(X, (12, 18)), chunked(Y, (12, 18)), method="local-sgd",
             sample_weight=chunked(weights, (12, 18)), optimizer=fp.SGD(0.1), epochs=2,
             batch_size=5, seed=2, groups=1, progress=False, client=client)
    # (the average over one group divides by its weight sum after multiplying by it)
    np.testing.assert_allclose(params, expected, rtol=1e-14, atol=1e-15)


def test_local_sgd_converges_and_repeats_itself(client):
    net = network(sizes=(5, 16, 3), l2=1e-4)
    params, X, _ = make_problem(net, 200, "labels")
    Y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)  # a rule the network can learn
    chunks = (50, 70, 80)
    before = net.loss(params, X, Y)
    runs = []
    for _ in range(2):
        trained = params.copy()
        history = fd.train(net, trained, chunked(X, chunks), chunked(Y, chunks),
                           method="local-sgd", optimizer=fp.Adam(learning_rate=0.02),
                           epochs=6, seed=1,
                           progress=False, client=client)
        runs.append(trained)
    assert history.groups == 2 and history.epochs == 6
    assert history.loss[-1] < history.loss[0]
    assert net.loss(runs[0], X, Y) < 0.7 * before
    np.testing.assert_array_equal(runs[0], runs[1])


def test_local_sgd_callback_sees_the_average(client):
    net = network()
    params, X, Y = make_problem(net, 40, "labels")
    seen = []

    def callback(history):
        seen.append(params.copy())
        return history.epochs >= 2

    history = fd.train(net, params, chunked(X, (20, 20)), chunked(Y, (20, 20)),
                       method="local-sgd", epochs=5, seed=0, callback=callback, progress=False,
                       client=client)
    assert history.stopped == "callback" and history.epochs == 2 and len(seen) == 2
    assert not np.array_equal(seen[0], seen[1])


# -- bad input --------------------------------------------------------------------------------


def test_bad_chunking_and_data_are_refused_before_computing(client):
    net = network()
    params, X, Y = make_problem(net, 20, "labels")
    dX, dY = chunked(X, (10, 10)), chunked(Y, (10, 10))
    cases = [
        ((da.from_array(X, chunks=(10, 2)), dY), ValueError, "X must be chunked along the "
         "samples only"),
        ((dX, chunked(Y, (5, 15))), ValueError, "Y must be chunked along the samples as X"),
        ((X, dY), TypeError, "X must be a dask array"),
        ((dX, Y), TypeError, "Y must be a dask array"),
        ((dX.astype(np.float32), dY), TypeError, "X has dtype float32"),
        ((dX[:, :4], dY), ValueError, "X must have shape"),
        ((dX, dY[:15]), ValueError, "Y must hold one integer label per sample"),
        ((dX[dX[:, 0] > 0], dY), ValueError, "X has chunks of unknown size"),
    ]
    for (bad_X, bad_Y), error, message in cases:
        with pytest.raises(error, match=message):
            fd.value_and_grad(net, params, bad_X, bad_Y, client=client)
    with pytest.raises(ValueError, match="sample_weight must be chunked along the samples"):
        fd.value_and_grad(net, params, dX, dY, sample_weight=da.ones(20, chunks=5),
                          client=client)
    with pytest.raises(TypeError, match="params has dtype float32"):
        fd.loss(net, params.astype(np.float32), dX, dY, client=client)
    with pytest.raises(ValueError, match="split_every"):
        fd.value_and_grad(net, params, dX, dY, client=client, split_every=1)
    with pytest.raises(ValueError, match="backend must be one of"):
        fd.forward(net, params, dX, backend="gpu")


def test_bad_training_options_are_refused(client):
    net = network()
    params, X, Y = make_problem(net, 20, "labels")
    dX, dY = chunked(X, (10, 10)), chunked(Y, (10, 10))
    cases = [
        ({"method": "sgd"}, "method must be one of"),
        ({"optimizer": "adam"}, "optimizer: option\\(s\\) of method='local-sgd'"),
        ({"method": "local-sgd", "max_iter": 5}, "max_iter: option\\(s\\) of method='lbfgs'"),
        ({"method": "local-sgd", "batch_size": 11},
         "batch_size must be from 1 to the samples of the smallest of 2 groups"),
        ({"method": "local-sgd", "groups": 21}, "groups must be"),
        ({"method": "local-sgd", "backend": "cuda"}, "on the CPU backends"),
        ({"method": "local-sgd", "split_every": 2}, "split_every: an option of method='lbfgs'"),
        ({"max_iter": 0}, "max_iter must be"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            fd.train(net, params, dX, dY, progress=False, client=client, **options)
    with pytest.raises(ValueError, match="params is read-only"):
        frozen = params.copy()
        frozen.flags.writeable = False
        fd.train(net, frozen, dX, dY, client=client)


# -- errors and faults ------------------------------------------------------------------------


def test_a_chunks_error_names_the_chunk(client):
    net = network()
    params, X, Y = make_problem(net, 40, "labels")
    X[25, 1] = np.nan
    with pytest.raises(ValueError, match=r"^chunk 2 of 4 \(samples 20 to 29\): X holds NaN"):
        fd.value_and_grad(net, params, chunked(X, (10, 10, 10, 10)),
                          chunked(Y, (10, 10, 10, 10)), client=client)
    with pytest.raises(ValueError, match=r"^chunk 2 of 4 \(samples 20 to 29\): X holds NaN"):
        client.compute(fd.forward(net, params, chunked(X, (10, 10, 10, 10)))).result()
    with pytest.raises(ValueError, match=r"^group 1 of 2 \(samples 20 to 39\): X holds NaN"):
        fd.train(net, params, chunked(X, (10, 30)), chunked(Y, (10, 30)), method="local-sgd",
                 progress=False, client=client)


def test_a_worker_killed_during_a_gradient_loses_nothing(client):
    net = network(loss="squared", output="identity", sizes=(64, 64, 8))
    params = net.init(seed=0)
    # Made on the workers, so the chunks that the killed worker held are computed again.
    generator = da.random.default_rng(0)
    dX, dY = client.persist([generator.normal(size=(48_000, 64), chunks=(1_000, 64)),
                             generator.normal(size=(48_000, 8), chunks=(1_000, 8))])
    X, Y = client.compute([dX, dY], sync=True)
    pids = client.run(os.getpid)
    while any(client.processing().values()):  # (tasks of an earlier test that failed early)
        time.sleep(0.01)
    result: dict[str, object] = {}
    computing = threading.Thread(target=lambda: result.update(
        value=fd.value_and_grad(net, params, dX, dY, client=client)))
    computing.start()
    deadline = time.monotonic() + 60
    busy = None
    while busy is None and time.monotonic() < deadline:
        time.sleep(0.005)
        # One look at the scheduler per pass: a worker that runs a chunk's task right now.
        busy = next((address for address, held in client.processing().items()
                     if any("chunk_value_and_grad" in str(key) for key in held)), None)
    assert busy is not None, "no task ran"
    os.kill(pids[busy], signal.SIGKILL)
    computing.join(timeout=300)
    assert "value" in result, "the gradient did not come back"
    value, grad = result["value"]
    expected_loss, expected_grad = net.value_and_grad(params, X, Y)
    assert rel_diff(value, expected_loss) <= 1e-12 and rel_diff(grad, expected_grad) <= 1e-12
    client.wait_for_workers(2, timeout=300)
    assert pids[busy] not in client.run(os.getpid).values()


# -- the embedded cluster ---------------------------------------------------------------------

EMBEDDED = """
import sys
import numpy as np, fastprop as fp
assert "dask" not in sys.modules and "distributed" not in sys.modules
import dask.array as da, fastprop.dask as fd
from fastprop.dask.cluster import cores
net = fp.MLP([3, 4, 2], loss="squared")
params = net.init(seed=0)
X, Y = np.ones((6, 3)), np.ones((6, 2))
value, grad = fd.value_and_grad(net, params, da.from_array(X, chunks=3),
                                da.from_array(Y, chunks=3))
assert value == net.loss(params, X, Y)
client = fd.get_client()
assert client is fd.get_client() and len(client.scheduler_info()["workers"]) == cores()
print("embedded", client.id)
"""


def test_the_embedded_cluster_starts_once_and_closes_at_exit():
    done = subprocess.run([sys.executable, "-c", EMBEDDED], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "embedded" in done.stdout
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


# -- the scikit-learn estimators on Dask arrays ---------------------------------------------


def _digits_on_dask(n: int = 300, chunks: tuple[int, ...] = (100, 120, 80)):
    from sklearn.datasets import load_digits

    data = load_digits()
    X, y = data.data[:n] / 16, data.target[:n]
    return X, y, chunked(X, chunks), chunked(y, chunks)


@pytest.mark.filterwarnings("ignore:lbfgs failed to converge")
def test_estimator_lbfgs_fit_on_dask_is_the_numpy_fit(client):
    X, y, dX, dy = _digits_on_dask()
    settings = {"hidden_layer_sizes": (16,), "solver": "lbfgs", "max_iter": 30,
                "random_state": 0}
    weights = np.random.default_rng(0).uniform(0.5, 2, size=len(X))
    for make in (fp.MLPClassifier, fp.MLPRegressor):
        target, d_target = (y, dy) if make is fp.MLPClassifier else (y / 9.0, dy / 9.0)
        ours = make(**settings).fit(dX, d_target, sample_weight=chunked(weights, dX.chunks[0]))
        expected = make(**settings).fit(X, target, sample_weight=weights)
        np.testing.assert_allclose(ours.params_, expected.params_, rtol=1e-6, atol=1e-8)
        predicted = ours.predict(dX)
        assert isinstance(predicted, da.Array)
        np.testing.assert_allclose(predicted.compute(), expected.predict(X), rtol=1e-9)
    proba = fp.MLPClassifier(**settings).fit(dX, dy)
    assert isinstance(proba.predict_proba(dX), da.Array)
    np.testing.assert_allclose(proba.predict_proba(dX).compute(), proba.predict_proba(X),
                               rtol=1e-12)
    assert list(proba.classes_) == list(range(10))


def test_estimator_adam_on_dask_trains_by_local_sgd(client):
    X, y, dX, dy = _digits_on_dask()
    model = fp.MLPClassifier((16,), max_iter=15, batch_size=32, learning_rate_init=0.01,
                             random_state=0).fit(dX, dy)
    assert model.n_iter_ == 15 and model.loss_curve_[-1] < model.loss_curve_[0]
    assert model.score(X, y) > 0.8


def test_dask_ml_incremental_uses_partial_fit(client):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, _, dX, dy = _digits_on_dask()
    model = wrappers.Incremental(fp.MLPClassifier((16,), random_state=0), scoring="accuracy")
    model.fit(dX, dy, classes=np.arange(10))
    assert model.estimator_.t_ == len(X)  # one partial_fit per chunk: every sample once
    assert isinstance(model.predict(dX), da.Array)


@pytest.mark.filterwarnings("ignore:lbfgs failed to converge")
def test_grid_search_on_the_joblib_dask_backend(client):
    joblib = pytest.importorskip("joblib")
    from sklearn.model_selection import GridSearchCV

    X, y, _, _ = _digits_on_dask()
    search = GridSearchCV(fp.MLPClassifier((8,), solver="lbfgs", max_iter=20, random_state=0),
                          {"alpha": [1e-4, 1e-1]}, cv=2)
    with joblib.parallel_backend("dask"):
        search.fit(X, y)
    assert set(search.cv_results_["param_alpha"]) == {1e-4, 1e-1}
    assert search.best_estimator_.score(X, y) > 0.8
