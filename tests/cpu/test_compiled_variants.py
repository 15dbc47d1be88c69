"""What compiles at a first call: only the kernels that its batch runs, and for read-only inputs
nothing below the entry points."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from numba import types

import fastprop as fp
from fastprop.cpu import matrix, naive

# A fresh process: the test process's dispatchers may hold overloads of earlier tests.
_FIRST_CALLS = """
import json
import numpy as np
import fastprop as fp
from fastprop.cpu import matrix, naive
net = fp.MLP([32] * 5, "tanh")
params = net.init(seed=0)
grad = np.empty_like(params)
for backend, batch in (("matrix", 16), ("naive", 1)):
    X = np.ones((batch, 32))
    for _ in range(3):  # the checked path, then the direct path
        loss, _ = net.value_and_grad(params, X, X, out=grad, backend=backend)
    assert np.isfinite(loss) and np.isfinite(grad).all()
print(json.dumps({f"{kernels.__name__}.{name}": len(getattr(kernels, name).signatures)
                  for kernels, names in ((matrix, ("_split_gradient",)),
                                         (naive, ("_parallel_samples", "_parallel_gradient_rows")))
                  for name in ("serial_value_and_grad", "value_and_grad", *names)}))
"""


def test_a_batch_that_does_not_split_compiles_no_parallel_code():
    """16 rows on the matrix backend, one sample on the naive one, never split among threads: the
    first gradient runs (and compiles) the serial entry point alone, not the one that can split,
    nor the parallel code."""
    out = subprocess.run([sys.executable, "-c", _FIRST_CALLS], capture_output=True, text=True,
                         check=True).stdout
    counts = json.loads(out.strip().splitlines()[-1])
    assert {name: count for name, count in counts.items() if count} == {
        "fastprop.cpu.matrix.serial_value_and_grad": 1,
        "fastprop.cpu.naive.serial_value_and_grad": 1}, counts


def test_splits_is_whether_value_and_grad_splits():
    layout = fp.MLP([256] * 3).spec.layout
    for batch, n_threads in ((256, 2), (256, 1), (16, 2)):
        assert matrix.splits(layout, batch, n_threads) == (
            matrix._chunk_count(layout, batch, n_threads) > 1) == (n_threads == 2 and batch == 256)
    assert [naive.splits(layout, batch, n_threads) for batch, n_threads in
            ((2, 2), (1, 2), (64, 1))] == [True, False, False]


@pytest.mark.parametrize(("backend", "body"), [("matrix", "_gradient"), ("naive", "_all_groups")])
def test_read_only_inputs_compile_no_new_variant_of_the_kernels(backend, body):
    """The entry points type their input arrays as writeable: read-only inputs (a memory map, say)
    compile the entry points again, and nothing below them; the results are bitwise the same.

    Checked on the types the kernel below the entry points has overloads for (an entry point
    loaded from numba's disk cache leaves its callees' dispatchers empty, so their count of
    signatures says nothing): none takes a read-only float array."""
    kernels = fp.BACKENDS[backend].kernels
    net = fp.MLP([6, 8, 3], "tanh", dtype=np.float32, l2=1e-3)
    params = net.init(seed=0)
    X = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    Y = np.ones((5, 3), np.float32)
    expected = net.value_and_grad(params, X, Y, backend=backend)
    expected_loss = net.loss(params, X, Y, backend=backend)
    expected_out = net.forward(params, X, backend=backend)
    frozen = [array.copy() for array in (params, X, Y)]
    for array in frozen:
        array.flags.writeable = False
    loss, grad = net.value_and_grad(*frozen, backend=backend)
    assert loss == expected[0] and grad.tobytes() == expected[1].tobytes()
    assert net.loss(*frozen, backend=backend) == expected_loss
    assert net.forward(*frozen[:2], backend=backend).tobytes() == expected_out.tobytes()
    read_only = [argument for signature in getattr(kernels, body).signatures
                 for argument in signature if isinstance(argument, types.Array)
                 and argument.dtype == types.float32 and not argument.mutable]
    assert read_only == []
