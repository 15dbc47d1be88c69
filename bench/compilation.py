"""The first call: what a new process spends before its first gradient, tracked apart from every
timing of a warm call.

Every measurement runs a script in a new interpreter, whose clock starts before anything is
imported, with one of two numba caches:

- **empty**: ``NUMBA_CACHE_DIR`` is a new, empty directory, as after a fresh install: every
  kernel the process calls compiles;
- **warm**: the same directory after a process made the same calls: every kernel loads.

For each backend and dtype:

- with the empty cache, ``import fastprop`` plus the first ``value_and_grad`` (float target
  rows), minus a second call: the compile time, and of it the time numba held LLVM's lock (LLVM
  optimising and emitting machine code; the rest is numba's own typing and lowering); then a
  call with a read-only ``X`` (a memory map's type) and one with integer labels, each minus a
  warm call: what each new kind of argument compiles;
- with the warm cache, each in new processes (the median of :data:`WARM_RUNS`): the first
  ``value_and_grad`` (``import fastprop`` apart), the first ``fastprop.train(..., epochs=1)``,
  and the first ``fit`` of an ``MLPRegressor`` (the import of the estimators and of
  scikit-learn apart: any scikit-learn estimator pays the latter);
- what numba itself spends before it can load anything: its import and its CPU target's set-up
  (the registries of its NumPy support, which import SciPy's linear algebra where SciPy is
  installed), in new processes too; every first call above includes it.

``python -m bench.compilation`` (from the repository root) prints the table, and with
``--markdown PATH`` writes it for the performance page. asv tracks each figure
(``CompileTime``); its ``setup_cache`` measures every backend and dtype once.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .common import BACKENDS, DTYPES, Shape, skip_reason

#: New processes per figure with the warm cache (their median is the figure): a process's first
#: call varies by tenths of a second on a busy machine. The empty cache's figures are one
#: process each (each compiles everything).
WARM_RUNS = 3
#: The network compiled for. Kernels are compiled per dtype and kind of argument, not per size,
#: so any case compiles the same code; a small one keeps the calls themselves negligible.
COMPILE_CASE = "16x32x4"
#: Softmax outputs and cross-entropy: a network that takes float target rows and integer labels.
NETWORK = {"activation": "tanh", "output": "softmax", "loss": "cross_entropy"}

_HEADER = """\
import time
start = time.perf_counter()
import json, warnings
import numpy as np
import fastprop as fp
imported = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.standard_normal(({batch}, {width})).astype(np.{dtype})
labels = rng.integers(0, {n_out}, {batch})
Y = np.eye({n_out}, dtype=np.{dtype})[labels]
"""

_GRADIENT = _HEADER + """\
net = fp.MLP({sizes!r}, dtype=np.{dtype}, **{network!r})
params = net.init(seed=0)

def seconds(X, Y):
    start = time.perf_counter()
    net.value_and_grad(params, X, Y, backend={backend!r})
    return time.perf_counter() - start

start_first = time.perf_counter()
from numba.core import event  # (numba's import: part of the first call, as in any process)

llvm = []
with event.install_timer("numba:llvm_lock", llvm.append):
    seconds(X, Y)
first = time.perf_counter() - start_first
second = seconds(X, Y)
X_read_only = X.copy()
X_read_only.flags.writeable = False
print(json.dumps({{"import": imported - start, "first": first, "llvm": llvm[0],
                  "second": second,
                  "read_only": seconds(X_read_only, Y), "labels": seconds(X, labels)}}))
"""

_TRAIN = _HEADER + """\
net = fp.MLP({sizes!r}, dtype=np.{dtype}, **{network!r})
params = net.init(seed=0)
start = time.perf_counter()
fp.train(net, params, X, Y, epochs=1, progress=False, backend={backend!r})
print(json.dumps({{"train": time.perf_counter() - start}}))
"""

_FIT = _HEADER + """\
MLPRegressor = fp.MLPRegressor  # (imports scikit-learn)
start = time.perf_counter()
model = MLPRegressor(hidden_layer_sizes={hidden!r}, max_iter=1, backend={backend!r},
                     dtype={dtype!r})
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # (one epoch does not converge)
    model.fit(X, Y)
print(json.dumps({{"fit": time.perf_counter() - start}}))
"""

_NUMBA_START = """\
import json, time
import numpy as np
import fastprop  # (both imported before the clock of every first call)
start = time.perf_counter()
import numba
from numba.core.registry import cpu_target
cpu_target.target_context.refresh()
print(json.dumps({{"numba_start": time.perf_counter() - start}}))
"""

#: The table's columns: key, heading.
COLUMNS = (
    ("compile", "empty cache: import + first gradient"),
    ("compile_llvm", "of which LLVM"),
    ("read_only", "+ read-only X"),
    ("labels", "+ integer labels"),
    ("warm_import", "warm cache: import"),
    ("warm_first", "first gradient"),
    ("warm_train", "first train epoch"),
    ("warm_fit", "first fit"),
    ("numba_start", "numba's import and set-up"),
)


def _run(template: str, backend: str, dtype: str, cache_dir: str) -> dict[str, float]:
    """Run ``template`` for ``backend`` and ``dtype`` in a new interpreter with the numba cache
    ``cache_dir``; what it printed."""
    batch, width, depth = Shape.parse(COMPILE_CASE)
    n_out = 4
    script = template.format(sizes=[width] * depth + [n_out], hidden=(width,) * (depth - 1),
                             dtype=dtype, network=NETWORK, batch=batch, width=width,
                             n_out=n_out, backend=backend)
    # Run in the cache's directory: a fastprop/ folder in the current directory would shadow
    # the installed fastprop.
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=cache_dir,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the first-call script failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


def first_call_seconds(backend: str, dtype: str) -> dict[str, float]:
    """Every figure of :data:`COLUMNS` for ``backend`` and ``dtype``, in seconds.

    Parameters
    ----------
    backend : str
        A CPU backend of fastprop.
    dtype : {"float32", "float64"}
        The network's dtype.

    Returns
    -------
    dict
        ``compile``, ``compile_llvm``, ``read_only`` and ``labels`` with an empty cache;
        ``warm_import``, ``warm_first``, ``warm_train`` and ``warm_fit`` with a warm one; and
        ``numba_start`` (see the module notes). ``warm_fit`` is NaN where scikit-learn is not
        installed.
    """
    with tempfile.TemporaryDirectory(prefix="fastprop-first-call-") as cache_dir:
        def warm(template: str, key: str) -> float:
            """The median of :data:`WARM_RUNS` new processes' ``key``."""
            return statistics.median(_run(template, backend, dtype, cache_dir)[key]
                                     for _ in range(WARM_RUNS))

        empty = _run(_GRADIENT, backend, dtype, cache_dir)
        seconds = {"warm_import": warm(_GRADIENT, "import"),
                   "warm_first": warm(_GRADIENT, "first")}
        _run(_TRAIN, backend, dtype, cache_dir)  # (compiles the training epoch)
        seconds["warm_train"] = warm(_TRAIN, "train")
        seconds["warm_fit"] = math.nan
        if importlib.util.find_spec("sklearn") is not None:
            _run(_FIT, backend, dtype, cache_dir)
            seconds["warm_fit"] = warm(_FIT, "fit")
        seconds["numba_start"] = warm(_NUMBA_START, "numba_start")
    base = empty["second"]
    return {"compile": empty["import"] + empty["first"] - base, "compile_llvm": empty["llvm"],
            "read_only": empty["read_only"] - base, "labels": empty["labels"] - base,
            **seconds}


def table(results: dict[tuple[str, str], dict[str, float]]) -> str:
    """A Markdown table of :func:`first_call_seconds` results, keyed by backend and dtype."""
    lines = ["| backend | dtype | " + " | ".join(heading for _, heading in COLUMNS) + " |",
             "|---|---|" + "---:|" * len(COLUMNS)]
    for (backend, dtype), seconds in results.items():
        # (+ 0.0: a difference that rounds to zero prints as 0.00, not -0.00)
        cells = " | ".join("n/a" if math.isnan(seconds[key]) else
                           f"{round(seconds[key], 2) + 0.0:.2f} s"
                           for key, _ in COLUMNS)
        lines.append(f"| {backend} | {dtype} | {cells} |")
    return "\n".join(lines) + "\n"


class CompileTime:
    """What the first call costs a new user, per backend and dtype (see the module notes)."""

    params = (BACKENDS, DTYPES)
    param_names = ("backend", "dtype")
    timeout = 1800.0

    def setup_cache(self) -> dict[str, dict[str, float]]:
        """Measure every CPU backend and dtype once, for all the track methods."""
        return {f"{backend}-{dtype}": first_call_seconds(backend, dtype)
                for backend in BACKENDS for dtype in DTYPES
                if skip_reason(backend, COMPILE_CASE) is None}

    def setup(self, results: dict, backend: str, dtype: str) -> None:
        """Skip backends that this fastprop lacks."""
        reason = skip_reason(backend, COMPILE_CASE)
        if reason is not None:
            raise NotImplementedError(reason)

    def track_first_call_compile(self, results: dict, backend: str, dtype: str) -> float:
        """Empty cache: import plus the first gradient, minus a second call."""
        return results[f"{backend}-{dtype}"]["compile"]

    def track_first_call_llvm(self, results: dict, backend: str, dtype: str) -> float:
        """Empty cache: of the first gradient's compile time, LLVM's share."""
        return results[f"{backend}-{dtype}"]["compile_llvm"]

    def track_read_only_compile(self, results: dict, backend: str, dtype: str) -> float:
        """Empty cache, after the first call: a read-only ``X``, minus a warm call."""
        return results[f"{backend}-{dtype}"]["read_only"]

    def track_labels_compile(self, results: dict, backend: str, dtype: str) -> float:
        """Empty cache, after the first call: integer labels, minus a warm call."""
        return results[f"{backend}-{dtype}"]["labels"]

    def track_warm_first_gradient(self, results: dict, backend: str, dtype: str) -> float:
        """Warm cache: the first gradient of a new process (``import fastprop`` apart)."""
        return results[f"{backend}-{dtype}"]["warm_first"]

    def track_warm_first_train(self, results: dict, backend: str, dtype: str) -> float:
        """Warm cache: the first one-epoch ``fastprop.train`` of a new process."""
        return results[f"{backend}-{dtype}"]["warm_train"]

    def track_warm_first_fit(self, results: dict, backend: str, dtype: str) -> float:
        """Warm cache: the first ``MLPRegressor.fit`` of a new process (its module imported);
        NaN, which asv shows as missing, without scikit-learn."""
        return results[f"{backend}-{dtype}"]["warm_fit"]

    def track_numba_start(self, results: dict, backend: str, dtype: str) -> float:
        """numba's import and CPU target set-up in a new process, part of every first call."""
        return results[f"{backend}-{dtype}"]["numba_start"]

    for _track in (track_first_call_compile, track_first_call_llvm, track_read_only_compile,
                   track_labels_compile, track_warm_first_gradient, track_warm_first_train,
                   track_warm_first_fit, track_numba_start):
        _track.unit = "s"
    del _track


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every CPU backend and dtype, print the table, and write it where asked."""
    parser = argparse.ArgumentParser(prog="python -m bench.compilation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["matrix", "naive"],
                        choices=[b for b in BACKENDS if skip_reason(b, COMPILE_CASE) is None])
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    results = {}
    for backend in args.backends:
        for dtype in args.dtypes:
            results[backend, dtype] = first_call_seconds(backend, dtype)
            print(f"{backend} {dtype}: done", file=sys.stderr)
    text = table(results)
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
