"""Shared test helpers: random problems for a network, the relative difference used throughout
(max |a - b| over max |b|), the dtypes and backends the tests sweep, and whether numba's disk
cache started empty
(and the barrier that keeps pytest-xdist's other workers waiting while the first-call test fills
it).

Test modules import these with ``from helpers import ...`` (pytest puts ``tests/`` on
``sys.path``: ``pythonpath`` in pyproject.toml). The float64 oracle stays apart, in
``reference.py``, which shares no code with fastprop.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import fastprop as fp

DTYPES = (np.float32, np.float64)
BACKENDS = ("matrix", "naive")
#: How far apart two backends' losses and gradients may be (relative, see :func:`rel_diff`).
BACKEND_AGREEMENT_TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _numba_cache_is_empty() -> bool:
    """Whether numba's disk cache holds nothing of fastprop's yet (a fresh checkout or CI)."""
    folder = os.environ.get("NUMBA_CACHE_DIR")
    root = Path(folder) if folder else Path(fp.__file__).parent
    return not any(root.rglob("*.nbi"))


#: Read before any test compiles (``conftest.py`` imports this module before collection): the
#: first-call test then fills this cache from empty itself (it runs first), instead of compiling
#: everything a second time in a cache of its own.
FRESH_NUMBA_CACHE = _numba_cache_is_empty()

#: The test that fills a fresh cache (``tooling/test_first_call.py``).
FIRST_CALL_TEST = "test_first_call_of_a_fresh_process_with_an_empty_then_a_warm_cache"


def first_call_barrier() -> Path | None:
    """The file that holds the other pytest-xdist workers' tests while the first-call test fills
    a fresh cache; None without workers or with a warm cache.

    The first-call test must find the cache empty, and every other test then loads what it
    compiled: a worker running tests beside it would compile the same kernels a second time, and
    into the cache the test measures. Each worker creates the file after collecting the
    first-call test (all of them collect before any test runs), every other test waits while it
    exists (:func:`wait_for_first_calls`), and the first-call test removes it once the empty
    pass is done (:func:`release_first_call_barrier`).
    """
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not (FRESH_NUMBA_CACHE and run):
        return None
    return Path(tempfile.gettempdir()) / f"fastprop-tests-{run}.first-calls"


#: How long a worker waits for the first-call test at most (if its worker died, say), seconds.
FIRST_CALL_WAIT = 1800.0


def wait_for_first_calls() -> None:
    """Return once :func:`first_call_barrier` is gone (or after :data:`FIRST_CALL_WAIT`)."""
    barrier = first_call_barrier()
    deadline = time.monotonic() + FIRST_CALL_WAIT
    while barrier is not None and barrier.exists() and time.monotonic() < deadline:
        time.sleep(0.5)


def release_first_call_barrier() -> None:
    """Let the other workers' tests run (see :func:`first_call_barrier`)."""
    barrier = first_call_barrier()
    if barrier is not None:
        barrier.unlink(missing_ok=True)


def make_targets(net: fp.MLP, batch: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Targets for ``net``: ``labels`` (integers), ``onehot``, ``soft`` (any positive rows), or
    ``rows`` (suited to the loss: normal for identity outputs, in [0, 1] otherwise)."""
    n_out = net.n_outputs
    if kind == "labels":
        return rng.integers(0, n_out, size=batch)
    if kind == "onehot":
        return np.eye(n_out, dtype=net.dtype)[rng.integers(0, n_out, size=batch)]
    if kind == "soft" or net.output != "identity":
        return rng.uniform(0, 1, size=(batch, n_out)).astype(net.dtype)
    return rng.normal(size=(batch, n_out)).astype(net.dtype)


def make_problem(net: fp.MLP, batch: int, targets: str, seed: int = 0):
    """``(params, X, Y)``: initial weights, random nonzero biases, normal inputs."""
    rng = np.random.default_rng(seed)
    params = net.init(seed=rng)
    for _, b in net.unpack(params):
        b[:] = rng.normal(scale=0.3, size=b.shape)
    X = rng.normal(size=(batch, net.n_inputs)).astype(net.dtype)
    return params, X, make_targets(net, batch, targets, rng)


def rel_diff(a: np.ndarray | float, b: np.ndarray | float) -> float:
    """``max |a - b| / max |b|`` in float64 (``max |a - b|`` when ``b`` is all zeros)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / (scale if scale > 0 else 1.0))


# The architectures of the gradient tests (tests/numerics/test_gradients.py), also run on the
# GPU backends (tests/cuda/test_cuda.py): every activation, every output/loss pair, width 1, odd
# widths, depth 1 and depth 9, batch 1 and odd batches, l2 on and off.
@dataclass(frozen=True)
class Case:
    name: str
    sizes: tuple[int, ...]
    activation: str | tuple[str, ...]
    output: str
    loss: str
    l2: float
    batch: int
    targets: str

    def net(self, dtype) -> fp.MLP:
        return fp.MLP(self.sizes, self.activation, self.output, self.loss, self.l2, dtype)


CASES = [
    Case("width-1", (1, 1, 1), "tanh", "identity", "squared", 0.0, 3, "rows"),
    Case("depth-1-labels", (5, 3), (), "softmax", "cross_entropy", 0.0, 1, "labels"),
    Case("depth-1-bce", (4, 2), (), "sigmoid", "binary_cross_entropy", 0.1, 7, "rows"),
    Case("odd-widths", (7, 5, 3, 9, 2), ("sigmoid", "softplus", "leaky_relu"), "identity",
         "squared", 1e-3, 5, "rows"),
    Case("depth-9", (3, 4, 5, 4, 5, 4, 5, 4, 5, 3),
         ("tanh", "sigmoid", "relu", "leaky_relu", "softplus", "identity", "tanh", "softplus"),
         "softmax", "cross_entropy", 1e-2, 6, "soft"),
    Case("hinge", (6, 8, 8, 4), "relu", "identity", "hinge", 1e-2, 9, "labels"),
    Case("softmax-squared", (4, 6, 5), "tanh", "softmax", "squared", 0.0, 3, "rows"),
    Case("sigmoid-squared", (4, 6, 3), "identity", "sigmoid", "squared", 0.5, 2, "rows"),
    Case("onehot", (6, 10, 4), "softplus", "softmax", "cross_entropy", 0.0, 11, "onehot"),
    Case("wider", (33, 65, 17), "relu", "softmax", "cross_entropy", 1e-4, 13, "labels"),
    Case("bce-wide", (9, 31, 7), "leaky_relu", "sigmoid", "binary_cross_entropy", 0.0, 1,
         "soft"),
    # The compiled small products' every block kind (4 x 32, 4 x 16, 4 x 4, remainder rows)
    # and the transposed weight gradient of a layer with fewer inputs than outputs.
    Case("compiled-products", (4, 32, 16, 4), "tanh", "identity", "squared", 1e-3, 13, "rows"),
    # Big enough for the matrix backend to split the batch among two threads (47 rows each:
    # every block kind again), with integer labels sliced per thread.
    Case("split-batch", (16, 64, 64, 8), "tanh", "softmax", "cross_entropy", 1e-3, 94,
         "labels"),
    # A wide layer under narrow ones: the naive backward once wrote past a narrowed buffer here.
    Case("narrow-over-wide", (1, 2, 1, 1, 1), "identity", "identity", "squared", 0.0, 1, "rows"),
]
IDS = [case.name for case in CASES]
