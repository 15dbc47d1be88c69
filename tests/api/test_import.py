"""``import fastprop`` loads no compiler and no GPU runtime, and cannot fail on a bad setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(script: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600, check=False)


def test_import_loads_no_compiler_and_no_gpu_runtime():
    done = _run(
        "import sys, fastprop as fp\n"
        "loaded = [m for m in ('numba', 'numba.cuda', 'llvmlite', 'threadpoolctl', 'sklearn',"
        " 'fastprop.cpu.matrix', 'fastprop.training', 'fastprop.benchmarking')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "assert fp.train.__module__ == 'fastprop.training' and 'numba' in sys.modules\n"
        "assert 'train' in dir(fp) and fp.SGD.__name__ == 'SGD'\n")
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_bad_setting_fails_where_it_is_used_and_names_the_variable():
    done = _run(
        "import numpy as np, fastprop as fp\n"
        "net = fp.MLP([2, 3, 1]); p = net.init(seed=0)\n"
        "for _ in range(2):  # the same clear error on every call, not a half-loaded backend\n"
        "    try:\n"
        "        net.value_and_grad(p, np.ones((4, 2)), np.ones((4, 1)))\n"
        "    except ValueError as error:\n"
        "        assert 'FASTPROP_LARGE_PRODUCTS must be auto, compiled or blas' in str(error)\n"
        "    else:\n"
        "        raise AssertionError('no error')\n", FASTPROP_LARGE_PRODUCTS="fast")
    assert done.returncode == 0, done.stderr[-2000:]



@pytest.mark.parametrize("call", ["net.forward(p, X, backend=b)", "net.loss(p, X, Y, backend=b)",
                                  "net.value_and_grad(p, X, Y, backend=b)"])
def test_any_entry_point_can_be_the_first_call_of_a_process(call):
    done = _run(
        "import numpy as np, fastprop as fp\n"
        "net = fp.MLP([2, 3, 1]); p = net.init(seed=0); X, Y = np.ones((4, 2)), np.ones((4, 1))\n"
        f"for b in ('matrix', 'naive'):\n    {call}\n")
    assert done.returncode == 0, done.stderr[-2000:]
