"""The first call's compile time, tracked apart from every timing of a warm call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from .common import BACKENDS, DTYPES, NETWORK, Shape, skip_reason

#: The network compiled for. Kernels are compiled per dtype and array layout, not per size, so
#: any case compiles the same code; a small one keeps the calls themselves negligible.
COMPILE_CASE = "16x32x4"

# Runs in a fresh interpreter: the clock starts before anything is imported.
_SCRIPT = """\
import time
start = time.perf_counter()
import json
import numpy as np
import fastprop as fp
net = fp.MLP({sizes!r}, dtype=np.{dtype}, **{network!r})
params = net.init(seed=0)
X = np.ones(({batch}, {width}), dtype=np.{dtype})
net.value_and_grad(params, X, X, backend={backend!r})
first = time.perf_counter() - start
start = time.perf_counter()
net.value_and_grad(params, X, X, backend={backend!r})
second = time.perf_counter() - start
X_read_only = X.copy()
X_read_only.flags.writeable = False
start = time.perf_counter()
net.value_and_grad(params, X_read_only, X, backend={backend!r})
read_only = time.perf_counter() - start
print(json.dumps({{"first": first, "second": second, "read_only": read_only}}))
"""


def first_call_seconds(backend: str, dtype: str) -> dict[str, float]:
    """Time a new process's import of fastprop and first gradient, with no numba cache.

    Parameters
    ----------
    backend : str
        A fastprop backend.
    dtype : {"float32", "float64"}
        The network's dtype.

    Returns
    -------
    dict
        ``first``: seconds from before ``import numpy`` to the end of the first
        ``value_and_grad`` call; ``second``: seconds of the second call; ``read_only``: seconds
        of a third call, with a read-only ``X`` (a memory map's type: what numba compiles again).
    """
    batch, width, depth = Shape.parse(COMPILE_CASE)
    script = _SCRIPT.format(sizes=[width] * (depth + 1), dtype=dtype, network=NETWORK,
                            batch=batch, width=width, backend=backend)
    with tempfile.TemporaryDirectory(prefix="fastprop-compile-") as cache_dir:
        # An empty cache makes numba compile every kernel; running in the empty directory keeps
        # a fastprop/ folder in the current directory from shadowing the installed one.
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
        result = subprocess.run([sys.executable, "-c", script], env=env, cwd=cache_dir,
                                capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the compile-time script failed:\n{result.stderr}")
    return json.loads(result.stdout.splitlines()[-1])


class CompileTime:
    """Compile time of a backend's kernels: what the first call costs a new user."""

    params = (BACKENDS, DTYPES)
    param_names = ("backend", "dtype")
    timeout = 600.0

    def setup(self, backend: str, dtype: str) -> None:
        """Skip backends that this fastprop lacks."""
        reason = skip_reason(backend, COMPILE_CASE)
        if reason is not None:
            raise NotImplementedError(reason)

    def track_first_call_compile(self, backend: str, dtype: str) -> float:
        """Import plus first call, minus a warm call: the seconds spent compiling (and loading).

        Measured in a fresh process whose ``NUMBA_CACHE_DIR`` is an empty directory, so that
        nothing is loaded from numba's on-disk cache.
        """
        seconds = first_call_seconds(backend, dtype)
        return seconds["first"] - seconds["second"]

    track_first_call_compile.unit = "s"

    def track_read_only_compile(self, backend: str, dtype: str) -> float:
        """After the first call, a call with a read-only ``X`` minus a warm call: the seconds
        spent compiling for the read-only array type, in the same kind of fresh process."""
        seconds = first_call_seconds(backend, dtype)
        return seconds["read_only"] - seconds["second"]

    track_read_only_compile.unit = "s"
