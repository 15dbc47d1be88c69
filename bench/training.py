"""Training benchmarks: two training targets, as asv benchmarks and as a side-by-side script.

1. One epoch of minibatch SGD (no momentum, learning rate 0.01, shuffled) on a 4-32-16-4 tanh
   network with identity output and squared loss, 10,000 samples, batch 32, float32:
   ``fastprop.train`` (each backend) against scikit-learn's ``MLPRegressor(solver="sgd")``
   (``partial_fit``: one epoch), a PyTorch eager loop, and an epoch that JAX compiles whole
   (``jax.jit`` over a ``jax.lax.scan`` of the steps). Each call is one epoch that goes on from
   the previous one. Beside them, what a one-epoch ``fastprop.train`` call costs beyond the
   epoch: its time against the time per epoch of a 10-epoch call (``track_overhead``).
2. Digits (scikit-learn's, scaled to [0, 1], a fixed stratified 25% test split), one hidden layer
   of 64 relu units, Adam, 50 epochs, batch 32, and no stopping before the 50th epoch
   (``n_iter_no_change=50``): the fit time of ``fastprop.MLPClassifier`` (float32) against
   scikit-learn's ``MLPClassifier`` with the same settings, and their test accuracy.
3. The same digits network with ``solver="lbfgs"`` and ``max_iter=200`` (scikit-learn's other
   settings): fit time and test accuracy of ``fastprop.MLPClassifier`` in float64 and float32
   against scikit-learn's, and the floor that no implementation passes: the matrix products of
   one full-batch gradient (NumPy's BLAS) times the number of gradients the fit evaluated.

``python -m bench.training`` (from the repository root) times the contenders together in
interleaved rounds (``timing.interleaved``, as ``fastprop compare``), prints medians and ratios,
and the digits accuracy over five seeds. asv runs the same calls: ``time_epoch``,
``track_overhead``, ``time_fit`` and ``track_test_accuracy``; a contender whose library is
missing is skipped.

Every contender runs on one thread (numba, the BLAS, PyTorch) unless ``--threads`` says
otherwise: these networks are too small for a second thread to help, and on a shared two-core
machine a busy core stalls every multithreaded contender (PyTorch's eager epoch took seconds
instead of tens of milliseconds with two threads while another process ran).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import itertools
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

import fastprop as fp

from .common import timing

#: Target 1's network, data size, batch size, learning rate.
EPOCH_SIZES = (4, 32, 16, 4)
EPOCH_SAMPLES = 10_000
BATCH_SIZE = 32
SGD_RATE = 0.01
EPOCH_CONTENDERS = ("fastprop-matrix", "fastprop-naive", "sklearn", "torch", "jax")
DIGITS_CONTENDERS = ("fastprop", "sklearn")
LBFGS_CONTENDERS = ("fastprop", "fastprop-float32", "sklearn")
DIGITS_EPOCHS = 50
LBFGS_ITERATIONS = 200
ACCURACY_SEEDS = (0, 1, 2, 3, 4)
#: The library each contender needs.
_NEEDS = {"sklearn": "sklearn", "torch": "torch", "jax": "jax", "fastprop": "sklearn",
          "fastprop-float32": "sklearn"}


def _require(name: str) -> None:
    """Skip (asv's way: ``NotImplementedError`` from setup) when ``name``'s library is missing,
    or when this fastprop has no training."""
    if not hasattr(fp, "train"):
        raise NotImplementedError("this fastprop has no fastprop.train")
    module = _NEEDS.get(name)
    if module is not None and importlib.util.find_spec(module) is None:
        raise NotImplementedError(f"{module} is not installed")


def set_threads(n: int) -> None:
    """Use ``n`` threads in numba, every loaded BLAS (fastprop's and NumPy's, which
    scikit-learn uses), PyTorch where it is installed, and JAX if it is not imported yet (XLA
    reads its thread count once, at import)."""
    fp.set_num_threads(n)
    if "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = (f"--xla_cpu_multi_thread_eigen={str(n > 1).lower()} "
                                   f"intra_op_parallelism_threads={n}")
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(n)


@functools.cache
def epoch_data() -> tuple[np.ndarray, np.ndarray]:
    """Target 1's inputs (standard normal) and targets (a smooth function of them), float32."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((EPOCH_SAMPLES, EPOCH_SIZES[0])).astype(np.float32)
    Y = np.tanh(X @ rng.standard_normal((EPOCH_SIZES[0], EPOCH_SIZES[-1]))).astype(np.float32)
    return X, Y


def _fastprop_epoch(backend: str, epochs: int = 1) -> Callable[[], Any]:
    X, Y = epoch_data()
    net = fp.MLP(EPOCH_SIZES, "tanh", dtype=np.float32)
    params = net.init(seed=0)
    rng = np.random.default_rng(0)
    return functools.partial(fp.train, net, params, X, Y, optimizer=fp.SGD(SGD_RATE), epochs=epochs,
                             batch_size=BATCH_SIZE, seed=rng, progress=False, backend=backend)


def _sklearn_epoch() -> Callable[[], Any]:
    from sklearn.neural_network import MLPRegressor

    X, Y = epoch_data()
    model = MLPRegressor(hidden_layer_sizes=EPOCH_SIZES[1:-1], activation="tanh", solver="sgd",
                         batch_size=BATCH_SIZE, learning_rate_init=SGD_RATE, momentum=0.0,
                         alpha=0.0, random_state=0)
    return functools.partial(model.partial_fit, X, Y)


def _torch_epoch() -> Callable[[], Any]:
    import torch

    X, Y = (torch.from_numpy(a) for a in epoch_data())
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for n_in, n_out in itertools.pairwise(EPOCH_SIZES):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.SGD(model.parameters(), lr=SGD_RATE)
    generator = torch.Generator().manual_seed(0)

    def epoch() -> None:
        order = torch.randperm(EPOCH_SAMPLES, generator=generator)
        for start in range(0, EPOCH_SAMPLES, BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = 0.5 * ((model(X[batch]) - Y[batch]) ** 2).sum(dim=1).mean()
            loss.backward()
            optimizer.step()

    return epoch


def _jax_epoch() -> Callable[[], Any]:
    """An epoch compiled whole by ``jax.jit``: the shuffle, the full minibatches as one
    ``jax.lax.scan`` of SGD steps, then the last, smaller minibatch."""
    import jax
    import jax.numpy as jnp

    X, Y = (jnp.asarray(a) for a in epoch_data())
    rng = np.random.default_rng(0)
    params = [(jnp.asarray(rng.normal(scale=n_in ** -0.5, size=(n_out, n_in)), jnp.float32),
               jnp.zeros(n_out, jnp.float32))
              for n_in, n_out in itertools.pairwise(EPOCH_SIZES)]
    full = EPOCH_SAMPLES // BATCH_SIZE * BATCH_SIZE

    def loss(params: Any, x: Any, y: Any) -> Any:
        for layer, (W, b) in enumerate(params):
            x = x @ W.T + b
            if layer < len(params) - 1:
                x = jnp.tanh(x)
        return 0.5 * jnp.mean(jnp.sum((x - y) ** 2, axis=1))

    def step(params: Any, batch: tuple[Any, Any]) -> tuple[Any, None]:
        grads = jax.grad(loss)(params, *batch)
        return jax.tree.map(lambda p, g: p - SGD_RATE * g, params, grads), None

    @jax.jit
    def epoch(params: Any, key: Any) -> tuple[Any, Any]:
        key, shuffle = jax.random.split(key)
        order = jax.random.permutation(shuffle, EPOCH_SAMPLES)
        Xs, Ys = X[order], Y[order]
        batches = (Xs[:full].reshape(-1, BATCH_SIZE, X.shape[1]),
                   Ys[:full].reshape(-1, BATCH_SIZE, Y.shape[1]))
        params, _ = jax.lax.scan(step, params, batches)
        if full < EPOCH_SAMPLES:
            params, _ = step(params, (Xs[full:], Ys[full:]))
        return params, key

    state = [params, jax.random.key(0)]

    def call() -> None:
        state[0], state[1] = epoch(*state)
        jax.block_until_ready(state[0])

    return call


def epoch_call(name: str) -> Callable[[], Any]:
    """One epoch of contender ``name`` (from :data:`EPOCH_CONTENDERS`) per call, warmed up."""
    _require(name)
    if name.startswith("fastprop-"):
        call = _fastprop_epoch(name.removeprefix("fastprop-"))
    else:
        call = {"sklearn": _sklearn_epoch, "torch": _torch_epoch, "jax": _jax_epoch}[name]()
    call()
    return call


@functools.cache
def digits_data() -> tuple[np.ndarray, ...]:
    """``X_train, X_test, y_train, y_test``: digits scaled to [0, 1], stratified 25% split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    return tuple(train_test_split(digits.data / 16, digits.target, test_size=0.25,
                                  random_state=0, stratify=digits.target))


def digits_model(name: str, seed: int = 0, solver: str = "adam") -> Any:
    """The unfitted classifier of contender ``name``: target 2's (``"adam"``, from
    :data:`DIGITS_CONTENDERS`) or target 3's (``"lbfgs"``, from :data:`LBFGS_CONTENDERS`)."""
    _require(name)
    settings = {"hidden_layer_sizes": (64,), "activation": "relu", "solver": solver,
                "random_state": seed}
    if solver == "lbfgs":
        settings["max_iter"] = LBFGS_ITERATIONS
    else:
        settings.update(batch_size=BATCH_SIZE, max_iter=DIGITS_EPOCHS,
                        n_iter_no_change=DIGITS_EPOCHS)
    if name.startswith("fastprop"):
        dtype = "float64" if name == "fastprop" and solver == "lbfgs" else "float32"
        return fp.MLPClassifier(**settings, dtype=dtype)
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(**settings)


def digits_fit(model: Any) -> Any:
    """Fit ``model`` on the digits training split (without the max_iter ConvergenceWarning)."""
    X_train, _, y_train, _ = digits_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X_train, y_train)


def digits_accuracy(name: str, seed: int, solver: str = "adam") -> float:
    """Test accuracy of contender ``name`` trained from ``seed``."""
    _, X_test, _, y_test = digits_data()
    return float(digits_fit(digits_model(name, seed, solver)).score(X_test, y_test))


def lbfgs_floor(evaluations: int) -> float:
    """Seconds of the matrix products of ``evaluations`` full-batch digits gradients (forward,
    weight gradients and the hidden delta) with NumPy's BLAS in float64: a floor for target 3."""
    X_train = np.ascontiguousarray(digits_data()[0])
    n, n_in = X_train.shape
    rng = np.random.default_rng(0)
    W1, W2 = rng.normal(size=(64, n_in)), rng.normal(size=(10, 64))
    A1, D2 = np.empty((n, 64)), rng.normal(size=(n, 10))

    def products() -> None:
        np.dot(X_train, W1.T, out=A1)
        A1 @ W2.T
        D2.T @ A1
        D1 = D2 @ W2
        D1.T @ X_train

    products()
    best = min(timing.time_once(products) for _ in range(20))
    return best * evaluations


class TrainingEpoch:
    """Target 1: seconds per epoch of minibatch SGD (see the module notes)."""

    params = (EPOCH_CONTENDERS,)
    param_names = ("contender",)
    timeout = 300.0

    def setup(self, name: str) -> None:
        """One thread; build and warm up the contender (cached per process)."""
        set_threads(1)
        self.call = _cached_epoch_call(name)

    def time_epoch(self, name: str) -> None:
        """One epoch."""
        self.call()


#: Epochs of the longer run that :func:`train_call_overhead` compares one-epoch calls with.
RUN_EPOCHS = 10


def train_call_overhead(budget_s: float) -> tuple[float, float]:
    """Seconds of one ``fastprop.train(..., epochs=1)`` call (matrix backend, target 1's epoch)
    and seconds per epoch of a ``RUN_EPOCHS``-epoch call, medians of interleaved rounds: the
    first over the second is what a call costs beyond its epoch (its checks, buffers and
    compiled-code dispatch)."""
    _require("fastprop-matrix")
    calls = {"one": _fastprop_epoch("matrix"), "run": _fastprop_epoch("matrix", RUN_EPOCHS)}
    medians = _medians(calls, budget_s)
    return medians["one"], medians["run"] / RUN_EPOCHS


@functools.cache
def _cached_epoch_call(name: str) -> Callable[[], Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return epoch_call(name)


class TrainCallOverhead:
    """Target 1's last point: what a ``fastprop.train(..., epochs=1)`` call costs beyond its
    epoch (see :func:`train_call_overhead`)."""

    timeout = 300.0

    def setup(self) -> None:
        """One thread."""
        set_threads(1)
        _require("fastprop-matrix")

    def track_overhead(self) -> float:
        """Percent more time per epoch in one-epoch calls than in a longer run."""
        one, per_epoch = train_call_overhead(budget_s=5.0)
        return 100.0 * (one / per_epoch - 1.0)

    track_overhead.unit = "%"


class DigitsFit:
    """Target 2: fit time and test accuracy on digits (see the module notes)."""

    params = (DIGITS_CONTENDERS,)
    param_names = ("contender",)
    timeout = 300.0

    def setup(self, name: str) -> None:
        """One thread; a new model (the first fit in the process compiles or loads fastprop's
        kernels)."""
        set_threads(1)
        digits_fit(digits_model(name))
        self.model = digits_model(name)

    def time_fit(self, name: str) -> None:
        """Seconds per fit (50 epochs)."""
        digits_fit(self.model)

    def track_test_accuracy(self, name: str) -> float:
        """Test accuracy from seed 0."""
        return digits_accuracy(name, 0)

    track_test_accuracy.unit = "accuracy"  # type: ignore[attr-defined]


class DigitsLbfgsFit:
    """Target 3: L-BFGS fit time and test accuracy on digits (see the module notes)."""

    params = (LBFGS_CONTENDERS,)
    param_names = ("contender",)
    timeout = 300.0

    def setup(self, name: str) -> None:
        """One thread; a new model (the first fit in the process compiles or loads fastprop's
        kernels)."""
        set_threads(1)
        digits_fit(digits_model(name, solver="lbfgs"))
        self.model = digits_model(name, solver="lbfgs")

    def time_fit(self, name: str) -> None:
        """Seconds per fit (up to 200 L-BFGS-B iterations)."""
        digits_fit(self.model)

    def track_test_accuracy(self, name: str) -> float:
        """Test accuracy from seed 0."""
        return digits_accuracy(name, 0, "lbfgs")

    track_test_accuracy.unit = "accuracy"  # type: ignore[attr-defined]


def _medians(calls: dict[str, Callable[[], Any]], budget_s: float) -> dict[str, float]:
    """Median seconds per call of each, timed together in interleaved rounds."""
    estimates = {}
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        estimates[name] = time.perf_counter() - start
    results = timing.interleaved(calls, estimates, budget_s)
    return {name: result.median for name, result in results.items()}


def main(argv: list[str] | None = None) -> None:
    """Print target 1's and target 2's side-by-side medians, ratios and accuracies."""
    parser = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for every contender: numba, the BLAS, PyTorch (default: "
                             "%(default)s; these networks are too small for more to help)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="timing budget per table (default: %(default)s)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    print(f"threads: {args.threads}; {fp.threads.blas_description()}")

    available = {}
    for name in EPOCH_CONTENDERS:
        try:
            available[name] = _cached_epoch_call(name)
        except NotImplementedError as reason:
            print(f"{name}: skipped ({reason})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epoch = _medians(available, args.seconds)
    print(f"\nTarget 1: one epoch of SGD, {'-'.join(map(str, EPOCH_SIZES))} tanh, "
          f"{EPOCH_SAMPLES} samples, batch {BATCH_SIZE}, float32 (median ms per epoch)")
    for name, seconds in epoch.items():
        print(f"  {name:<16} {seconds * 1e3:9.2f} ms   "
              f"{seconds / epoch['fastprop-matrix']:6.1f}x fastprop-matrix's time")
    one, per_epoch = train_call_overhead(args.seconds / 2)
    print(f"  fastprop.train(epochs=1): {one * 1e3:.3f} ms per call; epochs={RUN_EPOCHS}: "
          f"{per_epoch * 1e3:.3f} ms per epoch; a one-epoch call costs "
          f"{100 * (one / per_epoch - 1):.1f}% more")

    models = {name: digits_model(name) for name in DIGITS_CONTENDERS}
    for model in models.values():
        digits_fit(model)
    fit = _medians({name: functools.partial(digits_fit, model)
                    for name, model in models.items()}, args.seconds)
    print(f"\nTarget 2: digits, 64 relu, Adam, {DIGITS_EPOCHS} epochs, batch {BATCH_SIZE} "
          f"(median fit time; test accuracy over seeds {ACCURACY_SEEDS})")
    for name, seconds in fit.items():
        accuracies = [digits_accuracy(name, seed) for seed in ACCURACY_SEEDS]
        print(f"  {name:<16} {seconds * 1e3:9.1f} ms   "
              f"{seconds / fit['fastprop']:6.1f}x fastprop's time   accuracy "
              f"min {min(accuracies):.4f} mean {statistics.mean(accuracies):.4f} "
              f"max {max(accuracies):.4f}")

    models = {name: digits_model(name, solver="lbfgs") for name in LBFGS_CONTENDERS}
    fitted = {name: digits_fit(model) for name, model in models.items()}
    fit = _medians({name: functools.partial(digits_fit, model)
                    for name, model in models.items()}, args.seconds)
    print(f"\nTarget 3: digits, 64 relu, L-BFGS-B, max_iter {LBFGS_ITERATIONS} (median fit "
          f"time; test accuracy over seeds {ACCURACY_SEEDS})")
    for name, seconds in fit.items():
        accuracies = [digits_accuracy(name, seed, "lbfgs") for seed in ACCURACY_SEEDS]
        evaluations = getattr(fitted[name], "n_iter_", 0)
        print(f"  {name:<16} {seconds * 1e3:9.1f} ms   "
              f"{seconds / fit['sklearn']:6.2f}x sklearn's time   iterations {evaluations}   "
              f"accuracy min {min(accuracies):.4f} mean {statistics.mean(accuracies):.4f} "
              f"max {max(accuracies):.4f}")
    print(f"  products floor   {lbfgs_floor(fitted['fastprop'].n_iter_) * 1e3:9.1f} ms   "
          f"(the float64 products of one gradient per fastprop iteration, NumPy's BLAS)")


if __name__ == "__main__":
    main()
