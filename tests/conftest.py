"""Shared test helpers: random problems for a network, and the relative difference used
throughout (max |a - b| over max |b|)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# Without a GPU, the CUDA tests run on numba's simulator. Set before anything imports numba.cuda
# (fastprop never does at import), whichever test module is collected first.
if shutil.which("nvidia-smi") is None and "NUMBA_ENABLE_CUDASIM" not in os.environ:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    if "numba" in sys.modules:  # numba reads its settings when it is imported
        sys.modules["numba"].core.config.reload_config()

import numpy as np
from hypothesis import settings

import fastprop as fp


def _numba_cache_is_empty() -> bool:
    """Whether numba's disk cache holds nothing of fastprop's yet (a fresh checkout or CI)."""
    folder = os.environ.get("NUMBA_CACHE_DIR")
    root = Path(folder) if folder else Path(fp.__file__).parent
    return not any(root.rglob("*.nbi"))


#: Read before any test compiles: the first-call test then fills this cache from empty itself
#: (it runs first), instead of compiling everything a second time in a cache of its own.
FRESH_NUMBA_CACHE = _numba_cache_is_empty()


def pytest_collection_modifyitems(items: list) -> None:
    """Run the first-call tests first (see :data:`FRESH_NUMBA_CACHE`)."""
    items.sort(key=lambda item: item.path.name != "test_first_call.py")

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

DTYPES = (np.float32, np.float64)
BACKENDS = ("matrix", "naive")


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
