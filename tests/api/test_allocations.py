"""With ``out=`` and a batch size seen before, a gradient allocates nothing.

Counted two ways, in a fresh process (numba's allocation statistics must be switched on before
numba loads). Numba's runtime: its only allocations per call must be the wrappers it makes for
array arguments (the same count as a compiled no-op taking the same arguments). Python's
tracemalloc must see no buffer (the gradient alone is over 100 kB here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, sys, tracemalloc
import numpy as np
from numba import njit
from numba.core.runtime import rtsys
import fastprop as fp

@njit
def no_op(layout, loss_id, params, X, Y, labels, weights, l2, check_finite, grad, work, n_threads):
    return 0, l2

backend = fp.BACKENDS[sys.argv[1]]
batch = int(sys.argv[2])
net = fp.MLP([64, 128, 128, 10], "tanh", l2=1e-3)
params = net.init(seed=0)
X, Y = np.random.rand(batch, 64), np.random.rand(batch, 10)
grad = np.empty_like(params)
work, n_threads = backend.workspace(net.spec, batch)
spec = net.spec
args = (spec.layout, spec.loss_id, params, X, Y, np.empty(0, np.int64), np.ones(batch), spec.l2,
        True, grad, work, n_threads)

def allocations(call, calls=50):
    call()
    before = rtsys.get_allocation_stats().alloc
    for _ in range(calls):
        call()
    return rtsys.get_allocation_stats().alloc - before

kernel = allocations(lambda: backend.kernels.value_and_grad(*args))
wrappers = allocations(lambda: no_op(*args))
net.value_and_grad(params, X, Y, out=grad, backend=sys.argv[1])
tracemalloc.start()
for _ in range(50):
    net.value_and_grad(params, X, Y, out=grad, backend=sys.argv[1])
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"per_call": (kernel - wrappers) / 50, "peak": peak,
                  "grad_bytes": grad.nbytes, "threads": n_threads}))
"""


@pytest.mark.parametrize(("backend", "batch"), [("matrix", 32), ("matrix", 1), ("naive", 32),
                                               ("naive", 1)])
def test_no_allocation_per_call(backend, batch):
    env = os.environ | {"NUMBA_NRT_STATS": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE, backend, str(batch)], env=env,
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["per_call"] == 0, result
    assert result["peak"] < 2048 < result["grad_bytes"], result
