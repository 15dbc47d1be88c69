"""The public API around the gradient: layout, init, forward, predict, out=, determinism."""

from __future__ import annotations

import contextlib
import pickle

import numpy as np
import pytest
from helpers import BACKENDS, DTYPES, make_problem, rel_diff
from reference import reference_forward, reference_loss, reference_loss_and_grad

import fastprop as fp
from fastprop._validate import check_targets
from fastprop.cpu import blas, matrix, naive


def test_layout_and_unpack_views():
    net = fp.MLP([3, 4, 2], "tanh")
    assert net.n_params == 4 * 3 + 4 + 2 * 4 + 2
    assert net.layer_shapes == [((4, 3), (4,)), ((2, 4), (2,))]
    params = np.arange(net.n_params, dtype=np.float64)
    (W1, b1), (W2, b2) = net.unpack(params)
    assert W1.shape == (4, 3) and b1.shape == (4,) and W2.shape == (2, 4) and b2.shape == (2,)
    assert W1[1, 0] == 3 and b1[0] == 12 and W2[0, 0] == 16 and b2[-1] == net.n_params - 1
    W2[1, 3] = -1.0
    assert params[16 + 7] == -1.0, "unpack returns writable views"
    assert (net.pack(net.unpack(params)) == params).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_init(dtype):
    net = fp.MLP([30, 20, 10], ["relu"], dtype=dtype)
    params = net.init(seed=0)
    assert params.dtype == dtype and params.shape == (net.n_params,)
    assert (params == net.init(seed=0)).all() and not (params == net.init(seed=1)).all()
    (W1, b1), (W2, b2) = net.unpack(params)
    assert (b1 == 0).all() and (b2 == 0).all()
    assert np.abs(W1).max() <= np.sqrt(6 / 30)  # He range before relu
    assert np.abs(W2).max() <= np.sqrt(6 / 30)  # Glorot range before the identity output
    assert W1.std() > 0.5 * np.sqrt(6 / 30) / np.sqrt(3)


def test_repr_equality_pickle_and_dtype():
    net = fp.MLP([784, 256, 256, 10], activation="relu", output="softmax",
                 loss="cross_entropy", l2=1e-4, dtype=np.float32)
    assert repr(net) == ("MLP([784, 256, 256, 10], activation='relu', output='softmax', "
                         "loss='cross_entropy', l2=0.0001, dtype=np.float32)")
    assert eval(repr(net), {"MLP": fp.MLP, "np": np}) == net
    mixed = fp.MLP([2, 3, 3, 1], ["tanh", "relu"])
    assert "activation=['tanh', 'relu']" in repr(mixed)
    assert net != mixed and hash(net) == hash(pickle.loads(pickle.dumps(net)))
    assert net.with_dtype(np.float64).dtype == np.float64
    assert net.n_inputs == 784 and net.n_outputs == 10 and net.n_layers == 3
    assert net.is_classifier and not mixed.is_classifier


def test_pickled_network_computes():
    net = fp.MLP([3, 4, 2], "tanh")
    params, X, Y = make_problem(net, 5, "rows")
    loss, grad = net.value_and_grad(params, X, Y)
    clone = pickle.loads(pickle.dumps(net))
    clone_loss, clone_grad = clone.value_and_grad(params, X, Y)
    assert clone_loss == loss and (clone_grad == grad).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("output", ["identity", "sigmoid", "softmax"])
def test_forward_matches_reference(backend, output):
    net = fp.MLP([5, 7, 4], "softplus", output=output)
    params, X, _ = make_problem(net, 9, "rows")
    out = net.forward(params, X, backend=backend)
    assert out.shape == (9, 4)
    assert rel_diff(out, reference_forward(net.sizes, net.activations, output, params, X)) < 1e-13


@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_matches_reference(backend):
    net = fp.MLP([5, 7, 4], "tanh", output="softmax", loss="cross_entropy", l2=0.1)
    params, X, Y = make_problem(net, 9, "labels")
    expected = reference_loss(net.sizes, net.activations, "softmax", "cross_entropy", 0.1,
                              params, X, Y)
    assert rel_diff(net.loss(params, X, Y, backend=backend), expected) < 1e-13


def test_predict():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 3))
    softmax = fp.MLP([3, 5, 4], "tanh", output="softmax", loss="cross_entropy")
    params = softmax.init(seed=0)
    labels = softmax.predict(params, X)
    assert labels.dtype == np.int64 and (labels == softmax.forward(params, X).argmax(1)).all()
    binary = fp.MLP([3, 1], (), output="sigmoid", loss="binary_cross_entropy")
    params = binary.init(seed=0)
    assert (binary.predict(params, X) == (binary.forward(params, X)[:, 0] >= 0.5)).all()
    assert binary.predict(params, X).shape == (8,)
    multilabel = fp.MLP([3, 2], (), output="sigmoid", loss="binary_cross_entropy")
    assert multilabel.predict(multilabel.init(seed=0), X).shape == (8, 2)
    regressor = fp.MLP([3, 2], ())
    params = regressor.init(seed=0)
    assert (regressor.predict(params, X) == regressor.forward(params, X)).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_is_filled_and_returned(backend):
    net = fp.MLP([6, 5, 3], "tanh", l2=0.01)
    params, X, Y = make_problem(net, 7, "rows")
    loss, grad = net.value_and_grad(params, X, Y, backend=backend)
    out = np.full(net.n_params, np.nan)
    loss_out, returned = net.value_and_grad(params, X, Y, backend=backend, out=out)
    assert returned is out and loss_out == loss and (out == grad).all()


def test_single_output_targets_may_be_one_dimensional():
    net = fp.MLP([3, 4, 1], "tanh")
    params, X, Y = make_problem(net, 5, "rows")
    assert net.value_and_grad(params, X, Y[:, 0])[0] == net.value_and_grad(params, X, Y)[0]


def test_labels_of_any_integer_dtype():
    net = fp.MLP([3, 4, 3], "tanh", output="softmax", loss="cross_entropy")
    params, X, Y = make_problem(net, 5, "labels")
    onehot = np.eye(3)[Y]
    expected_loss, expected_grad = net.value_and_grad(params, X, onehot)
    for labels in (Y, Y.astype(np.int32), Y.astype(np.uint8), np.repeat(Y, 2)[::2]):
        loss, grad = net.value_and_grad(params, X, labels)
        assert rel_diff(loss, expected_loss) < 1e-15 and rel_diff(grad, expected_grad) < 1e-15


@pytest.mark.parametrize("backend", BACKENDS)
def test_bitwise_deterministic(backend):
    """The same inputs and thread count give bitwise the same result on every call."""
    net = fp.MLP([20, 33, 17, 5], "tanh", l2=1e-3)
    params, X, Y = make_problem(net, 37, "rows")
    first_loss, first = net.value_and_grad(params, X, Y, backend=backend)
    for _ in range(5):
        loss, grad = net.value_and_grad(params, X, Y, backend=backend)
        assert loss == first_loss and grad.tobytes() == first.tobytes()


@contextlib.contextmanager
def large_products(compiled: bool):
    """Large products of a split batch packed and compiled (``True``) or left to BLAS, whatever
    this machine's BLAS: for fresh networks only, since a network sizes its workspace under the
    setting of its first call (the setting is fixed at import outside tests)."""
    before = blas._packs_large_products_flag.value
    blas._packs_large_products_flag.value = int(compiled)
    try:
        yield
    finally:
        blas._packs_large_products_flag.value = before


def _check_split_gradients(net, batch, targets):
    """The matrix kernel with 1, 2 and 3 threads' worth of row blocks (run on however many
    threads numba has): the float64 reference's numbers, each bitwise the same on every call."""
    params, X, Y = make_problem(net, batch, targets)
    backend = fp.BACKENDS["matrix"].kernels
    Y_rows, labels = check_targets(Y, net.loss_name, net.dtype, batch, net.n_outputs)
    expected_loss, expected = reference_loss_and_grad(net.sizes, net.activations, net.output,
                                                      net.loss_name, net.l2, params, X, Y)
    for n_threads in (1, 2, 3):
        assert matrix._chunk_count(net.spec.layout, batch, n_threads) == n_threads
        work = np.empty(backend.workspace_size(net.spec.layout, batch, n_threads))
        results = []
        for _ in range(2):
            grad = np.empty_like(params)
            status, loss = backend.value_and_grad(net.spec.layout, net.spec.loss_id, params, X,
                                                  Y_rows, labels, np.ones(batch), net.spec.l2,
                                                  True, grad, work, n_threads)
            assert status == 0
            assert rel_diff(loss, expected_loss) < 1e-13 and rel_diff(grad, expected) < 1e-13
            results.append((loss, grad.tobytes()))
        assert results[0] == results[1]


@pytest.mark.parametrize(("width", "targets"), [(64, "rows"), (64, "labels"), (256, "rows")])
def test_matrix_batch_split_among_threads(width, targets):
    """At width 256 the products of a thread's rows are larger than SMALL_GEMM: compiled only
    when split."""
    net = fp.MLP([16, width, width, 8], "tanh", output="softmax", loss="cross_entropy", l2=1e-3)
    _check_split_gradients(net, 100, targets)


def test_matrix_packed_products_in_a_split_batch():
    """Weights past SPLIT_WEIGHTS in a split batch: packed products, 233 or 234 rows per thread
    on three (rows past the last 4-row block; enough for the weight gradients' packed path),
    layers of 300, 276 and 260 units (32-column blocks, then a 16-wide block and 4-wide ones);
    left to BLAS, the batch is not split."""
    sizes = [300, 276, 260, 8]
    with large_products(True):
        net = fp.MLP(sizes, "tanh", output="softmax", loss="cross_entropy", l2=1e-3)
        _check_split_gradients(net, 700, "labels")
    with large_products(False):
        assert matrix._chunk_count(fp.MLP(sizes).spec.layout, 200, 2) == 1


def test_matrix_splits_only_gradients_of_compiled_products():
    layout = fp.MLP([16, 64, 64, 8]).spec.layout
    assert matrix._chunk_count(layout, 100, 4) == 4  # 25 rows each
    assert matrix._chunk_count(layout, 100, 8) == 6  # at least MIN_CHUNK_ROWS each
    assert matrix._chunk_count(layout, 100, 1) == 1
    assert matrix._chunk_count(layout, 31, 2) == 1  # too few rows for two
    assert matrix._chunk_count(fp.MLP([32, 32, 32, 32, 32]).spec.layout, 64, 2) == 1  # too little
    assert matrix._chunk_count(fp.MLP([16, 64, 6]).spec.layout, 100, 2) == 1  # 6 columns: BLAS
    assert matrix._chunk_count(fp.MLP([256, 256, 256]).spec.layout, 256, 2) == 2
    wide = fp.MLP([256, 512, 256]).spec.layout
    with large_products(False):
        assert matrix._chunk_count(wide, 256, 2) == 1  # BLAS-sized
    with large_products(True):
        assert matrix._chunk_count(wide, 256, 2) == 2  # packed
        assert matrix._chunk_count(wide, 64, 2) == 1  # fewer than PACKED_ROWS rows each


def test_naive_is_bitwise_the_same_on_any_thread_count():
    """The naive kernel with 1 to 4 threads' worth of samples and gradient rows (run on however
    many threads numba has): the float64 reference's numbers, bitwise the same for every count.
    Three groups of samples, the last of 22 (not a multiple of four); 300 inputs make bands of
    four rows, the last of a 17-row layer one row; and the one-sample batch. The loss and the
    forward pass over the same groups match the reference too."""
    net = fp.MLP([300, 17, 9, 5], "tanh", output="softmax", loss="cross_entropy", l2=1e-3)
    batch = 2 * naive.GROUP + 22
    params, X, Y = make_problem(net, batch, "labels")
    backend = fp.BACKENDS["naive"].kernels
    Y_rows, labels = check_targets(Y, net.loss_name, net.dtype, batch, net.n_outputs)
    for rows in (slice(0, batch), slice(7, 8)):
        expected_loss, expected = reference_loss_and_grad(
            net.sizes, net.activations, net.output, net.loss_name, net.l2, params, X[rows],
            Y[rows])
        results = set()
        for n_threads in (1, 2, 3, 4):
            work = np.empty(backend.workspace_size(net.spec.layout, len(X[rows]), n_threads))
            grad = np.empty_like(params)
            status, loss = backend.value_and_grad(net.spec.layout, net.spec.loss_id, params,
                                                  X[rows], Y_rows, labels[rows],
                                                  np.ones(len(X[rows])), net.spec.l2, True, grad,
                                                  work, n_threads)
            assert status == 0
            assert rel_diff(loss, expected_loss) < 1e-13 and rel_diff(grad, expected) < 1e-13
            results.add((loss, grad.tobytes()))
        assert len(results) == 1
    # The loss alone and the forward pass go through the same groups.
    assert rel_diff(net.loss(params, X, Y, backend="naive"),
                    reference_loss(net.sizes, net.activations, net.output, net.loss_name, net.l2,
                                   params, X, Y)) < 1e-13
    assert rel_diff(net.forward(params, X, backend="naive"),
                    reference_forward(net.sizes, net.activations, net.output, params, X)) < 1e-13


@pytest.mark.parametrize(("backend", "sizes", "batch"), [
    ("naive", [8, 16, 4], 70), ("matrix", [8, 16, 4], 70), ("matrix", [16, 64, 64, 8], 100)])
def test_a_short_workspace_raises_and_writes_nothing_past_it(backend, sizes, batch):
    """A workspace shorter than workspace_size raises IndexError and is never written past its
    end: the naive kernel builds its views with bounds checks (its loss slots once were one
    element short); the matrix kernel checks the length first (a split batch's per-thread
    losses lie at the end). The matrix case at batch 100 splits among two threads."""
    net = fp.MLP(sizes, "tanh")
    params, X, Y = make_problem(net, batch, "rows")
    kernels = fp.BACKENDS[backend].kernels
    Y_rows, labels = check_targets(Y, net.loss_name, net.dtype, batch, net.n_outputs)
    need = kernels.workspace_size(net.spec.layout, batch, 2)
    for length in (need - 1, need // 2, 10):
        buffer = np.full(need + 64, 7.0)
        with pytest.raises(IndexError):
            kernels.value_and_grad(net.spec.layout, net.spec.loss_id, params, X, Y_rows, labels,
                                   np.ones(batch), 0.0, True, np.empty_like(params),
                                   buffer[:length], 2)
        assert (buffer[length:] == 7.0).all()


def test_workspace_is_reused_across_batch_sizes():
    net = fp.MLP([4, 6, 2], "tanh")
    params, X, Y = make_problem(net, 16, "rows")
    net.value_and_grad(params, X, Y)
    work = net.spec.per_thread.matrix.work
    for batch in (1, 5, 16):
        net.value_and_grad(params, X[:batch], Y[:batch])
        assert net.spec.per_thread.matrix.work is work


def test_workspace_grows_and_smaller_batches_move_to_the_grown_buffer():
    net = fp.MLP([4, 6, 2], "tanh")
    params, X, Y = make_problem(net, 32, "rows")
    first = net.value_and_grad(params, X[:4], Y[:4])
    net.value_and_grad(params, X, Y)
    grown = net.spec.per_thread.matrix.work
    again = net.value_and_grad(params, X[:4], Y[:4])
    assert net.spec.per_thread.matrix.workspaces[(4, 1)][0] is grown
    assert first[0] == again[0] and (first[1] == again[1]).all()


def test_a_network_cannot_change_and_replace_makes_a_new_one(tmp_path):
    net = fp.MLP([4, 6, 2], "tanh", l2=0.0)
    params, X, Y = make_problem(net, 8, "rows")
    for name, value in (("l2", 10.0), ("activations", ("relu",)), ("sizes", (4, 6, 3)),
                        ("spec", None), ("new_attribute", 1)):
        with pytest.raises(AttributeError, match="replace"):
            setattr(net, name, value)
    with pytest.raises(AttributeError):
        del net.l2
    heavier = net.replace(l2=10.0)
    assert heavier.l2 == 10.0 and heavier != net and net.l2 == 0.0
    assert heavier.loss(params, X, Y) > net.loss(params, X, Y)
    fp.save(tmp_path / "heavier.npz", heavier, params)
    loaded, loaded_params = fp.load(tmp_path / "heavier.npz")
    assert loaded == heavier and loaded.loss(loaded_params, X, Y) == heavier.loss(params, X, Y)
    wider = net.replace(sizes=[4, 6, 6, 2])
    assert wider.activations == ("tanh", "tanh") and wider.n_layers == 3
    with pytest.raises(TypeError, match="replace takes"):
        net.replace(activations="relu")
