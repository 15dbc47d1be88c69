"""The first fastprop call of a fresh process, through every public entry point.

Each scenario runs in a new interpreter, as a user's script does, first from an empty numba cache
and then again with the cache those runs left. A warm test process hides what goes wrong here:
code loaded from numba's disk cache before anything in the process has started numba's parallel
runtime. The empty pass runs the scenarios one after another, each process loading what the
earlier ones compiled and compiling the rest, which is how a user's cache fills up. With the warm
cache, each process must load everything it runs: a function that numba compiles in every new
process (one that cannot be cached) delays every user's first call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from itertools import product

import pytest
from helpers import FRESH_NUMBA_CACHE, release_first_call_barrier

pytest.importorskip("sklearn")

#: Each scenario's process prints, at exit, the numba functions that it compiled rather than
#: loaded (those with a cache miss). A ``sitecustomize`` module registers the report as the
#: interpreter starts, in ``-c`` scripts and commands alike (``fastprop compare`` starts itself
#: again); numba is imported at exit only if the scenario imported it.
REPORT_COMPILED = """
import atexit, gc, json, sys

def _report_compiled():
    names = []
    if "numba" in sys.modules:
        from numba.core.dispatcher import Dispatcher
        names = sorted({f"{d.py_func.__module__}.{d.py_func.__qualname__}"
                        for d in gc.get_objects()
                        if isinstance(d, Dispatcher) and any(d.stats.cache_misses.values())})
    print("compiled:", json.dumps(names), flush=True)

atexit.register(_report_compiled)
"""
HEADER = """
import numpy as np
import fastprop as fp
rng = np.random.default_rng(0)
"""

#: ``(batch, width)`` of a 4-layer network, chosen to take each path of each backend. The
#: matrix backend: one sample; a small batch on the calling thread; a batch split among numba's
#: threads; large products on the BLAS (a batch too small to split); a large split batch. The
#: naive backend, which runs the same code at every size: one sample, on the calling thread, and
#: a batch, split among numba's threads.
CASES = {"matrix": ((1, 32), (16, 32), (64, 64), (16, 512), (256, 256)),
         "naive": ((1, 32), (16, 32))}

NETWORK_CALLS = {
    "value_and_grad": "loss, grad = net.value_and_grad(p, X, Y, backend={backend!r})\n"
                      "assert np.isfinite(loss) and np.isfinite(grad).all()",
    "loss": "assert np.isfinite(net.loss(p, X, Y, backend={backend!r}))",
    "forward": "assert np.isfinite(net.forward(p, X, backend={backend!r})).all()",
}  # predict is forward's compiled call and NumPy's argmax: nothing of its own to load


def _network_scenario(call: str, backend: str, dtype: str, batch: int, width: int) -> str:
    return HEADER + f"""
net = fp.MLP([{width}] * 4 + [4], activation="tanh", dtype=np.{dtype}); p = net.init(seed=0)
X = rng.standard_normal((batch := {batch}, {width})).astype(np.{dtype})
Y = rng.standard_normal((batch, 4)).astype(np.{dtype})
""" + NETWORK_CALLS[call].format(backend=backend)


def _train_scenario(backend: str, dtype: str, batch: int) -> str:
    return HEADER + f"""
X = rng.standard_normal((100, 2)).astype(np.{dtype})
Y = rng.standard_normal((100, 1)).astype(np.{dtype})
net = fp.MLP([2, 64, 64, 1], activation="tanh", dtype=np.{dtype}); p = net.init(seed=0)
history = fp.train(net, p, X, Y, epochs=1, batch_size={batch}, progress=False,
                   backend={backend!r})
assert np.isfinite(history.loss).all()
"""


def _train_both_dtypes_scenario(backend: str) -> str:
    """Both dtypes' training in one process: with a warm cache, it loads two variants of the
    epoch that processes of different lanes wrote (the naive backend's call parallel code)."""
    return "\n".join(_train_scenario(backend, dtype, 16) for dtype in ("float32", "float64"))


def _estimator_scenario(estimator: str, backend: str, n: int) -> str:
    y = "rng.integers(0, 3, {n})" if estimator == "MLPClassifier" else "rng.standard_normal({n})"
    return HEADER + f"""
X = rng.standard_normal(({n}, 3)); y = {y.format(n=n)}
model = fp.{estimator}(hidden_layer_sizes=(16,), max_iter=3, backend={backend!r}).fit(X, y)
assert model.predict(X).shape == ({n},)
"""


def _load_scenario(dtype: str, path: str) -> str:
    return HEADER + f"""
net, p = fp.load({path!r}); assert net.dtype == np.{dtype}
assert np.isfinite(net.value_and_grad(p, rng.standard_normal((3, 2)).astype(np.{dtype}),
                                      rng.standard_normal((3, 1)).astype(np.{dtype}))[0])
"""


def _scenarios(model_files: dict[str, str]) -> dict[str, list[str]]:
    """Name -> the command line after ``python``, one fresh process each."""
    scenarios: dict[str, list[str]] = {}
    for call, backend, dtype in product(NETWORK_CALLS, CASES, ("float32", "float64")):
        for batch, width in CASES[backend]:
            scenarios[f"{call}-{backend}-{dtype}-{batch}x{width}"] = [
                "-c", _network_scenario(call, backend, dtype, batch, width)]
    for backend, dtype, batch in product(("matrix", "naive"), ("float32", "float64"), (16, 64)):
        scenarios[f"train-{backend}-{dtype}-{batch}"] = [
            "-c", _train_scenario(backend, dtype, batch)]
    for backend in ("matrix", "naive"):
        scenarios[f"train-{backend}-both-dtypes"] = ["-c", _train_both_dtypes_scenario(backend)]
    for estimator, backend, n in product(("MLPRegressor", "MLPClassifier"),
                                         ("matrix", "naive"), (10, 100)):
        scenarios[f"{estimator}-{backend}-{n}"] = ["-c", _estimator_scenario(estimator, backend, n)]
    for dtype in ("float32", "float64"):
        scenarios[f"load-{dtype}"] = ["-c", _load_scenario(dtype, model_files[dtype])]
    scenarios["cli-train"] = ["-m", "fastprop", "train", "--epochs", "1", "--hidden", "8",
                              "--quiet"]
    scenarios["cli-compare"] = ["-m", "fastprop", "compare", "--quick", "--no-progress",
                                "--cases", "1x8x2", "--peers", "numpy", "--seconds", "0.05"]
    return scenarios


def _run(name: str, args: list[str], env: dict[str, str]) -> tuple[str, int, str, list[str]]:
    """Run one scenario: its name, exit code, the end of its stderr and what it compiled."""
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    reports = [line for line in done.stdout.splitlines() if line.startswith("compiled: ")]
    compiled = json.loads(reports[-1].removeprefix("compiled: ")) if reports else ["(no report)"]
    return name, done.returncode, done.stderr[-2000:], compiled


def _run_all(scenarios: dict[str, list[str]], env: dict[str, str],
             lanes: list[list[str]]) -> list[tuple[str, int, str, list[str]]]:
    """Run each lane's scenarios in order, the lanes side by side."""
    def lane(names: list[str]) -> list[tuple[str, int, str, list[str]]]:
        return [_run(name, scenarios[name], env) for name in names]

    with ThreadPoolExecutor(len(lanes)) as pool:
        return [result for done in pool.map(lane, lanes) for result in done]


def _failures(results: list[tuple[str, int, str, list[str]]]) -> list[str]:
    return [f"{name}: exit {code}\n{err}" for name, code, err, _ in results if code != 0]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, str]:
    """A saved small network per dtype, written by this process."""
    import numpy as np

    import fastprop as fp

    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for dtype in ("float32", "float64"):
        net = fp.MLP([2, 8, 1], activation="tanh", dtype=np.dtype(dtype))
        paths[dtype] = str(folder / f"{dtype}.npz")
        fp.save(paths[dtype], net, net.init(seed=0))
    return paths


def test_first_call_of_a_fresh_process_with_an_empty_then_a_warm_cache(tmp_path, model_files):
    scenarios = _scenarios(model_files)
    # One lane per dtype: the two never compile the same kernel at once, and within a lane
    # each process finds the cache as the processes before it left it.
    lanes = [[name for name in scenarios if "float64" not in name],
             [name for name in scenarios if "float64" in name]]
    # The test session's own cache where it started empty (this test runs first): the rest of
    # the suite then loads what the scenarios compiled. An empty one of its own otherwise.
    env = dict(os.environ) if FRESH_NUMBA_CACHE else dict(
        os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    (tmp_path / "sitecustomize.py").write_text(REPORT_COMPILED)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    try:
        empty = _failures(_run_all(scenarios, env, lanes))
    finally:
        release_first_call_barrier()  # the other workers' tests load what the pass compiled
    assert not empty, "with an empty cache:\n" + "\n".join(empty)
    warm = _run_all(scenarios, env, lanes)
    assert not _failures(warm), "with a warm cache:\n" + "\n".join(_failures(warm))
    compiled = {name: names for name, _, _, names in warm if names}
    assert not compiled, f"compiled again with a warm cache: {compiled}"


def test_a_process_forked_after_import_runs_parallel_code(tmp_path):
    # Importing fastprop starts nothing that a forked child cannot use: with GNU OpenMP as
    # numba's threading layer, a child forked after the runtime started is terminated when it
    # runs parallel code (asv's benchmark runner and multiprocessing's default on Linux fork).
    script = HEADER + f"""
import multiprocessing
net = fp.MLP([64, 64, 64, 4], activation="tanh"); p = net.init(seed=0)
X = rng.standard_normal((256, 64)); Y = rng.standard_normal((256, 4))
BACKENDS = ("naive", "matrix")

def child():
    np.save({str(tmp_path / "grads.npy")!r},
            [net.value_and_grad(p, X, Y, backend=b)[1] for b in BACKENDS])

process = multiprocessing.get_context("fork").Process(target=child); process.start()
process.join()
assert process.exitcode == 0, f"the forked process exited with {{process.exitcode}}"
for got, backend in zip(np.load({str(tmp_path / "grads.npy")!r}), BACKENDS):
    assert np.array_equal(got, net.value_and_grad(p, X, Y, backend=backend)[1]), backend
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


#: A cached function of its own, so that the test below starts from an empty cache of it.
RACING_MODULE = """
from fastprop._jit import jit

@jit
def double(x):
    return x * 2
"""

#: Compiles ``double`` for the dtype in ``sys.argv[1]``, with half a second between reading the
#: function's cache index and anything else (writing it back included): the window in which
#: another process's save can interleave.
RACING_SCRIPT = """
import sys, time
import numpy as np
from numba.core import caching

read_index = caching.IndexDataCacheFile._load_index

def slow_read_index(self):
    index = read_index(self)
    time.sleep(0.5)
    return index

caching.IndexDataCacheFile._load_index = slow_read_index
import racing
assert racing.double(np.ones(3, dtype=sys.argv[1]))[0] == 2
"""

LOADING_SCRIPT = """
import numpy as np
import racing
for dtype in (np.float32, np.float64):
    assert (racing.double(np.arange(3, dtype=dtype)) == [0, 2, 4]).all(), dtype
assert not any(racing.double.stats.cache_misses.values()), racing.double.stats
print(sorted(str(sig) for sig in racing.double.stats.cache_hits))
"""


def test_processes_compiling_variants_of_one_function_at_once_keep_both(tmp_path):
    # Without fastprop's cache lock, both processes read the empty index, both write their
    # variant to the first data file, and the index ends up naming one variant's code for the
    # other's types (or losing one).
    (tmp_path / "racing.py").write_text(RACING_MODULE)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=os.pathsep.join(
        filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    racing = [subprocess.Popen([sys.executable, "-c", RACING_SCRIPT, dtype], env=env,
                               stderr=subprocess.PIPE, text=True)
              for dtype in ("float32", "float64")]
    for process in racing:
        assert process.wait(timeout=300) == 0, process.stderr.read()[-2000:]
    done = subprocess.run([sys.executable, "-c", LOADING_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "float32" in done.stdout and "float64" in done.stdout, done.stdout
