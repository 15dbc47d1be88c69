"""What compiles at a first call: only the kernels that its batch runs, and nothing new for
read-only inputs or integer labels."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

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


ENTRY_POINTS = ("value_and_grad", "serial_value_and_grad", "loss", "forward")


def _entry_signatures(backend: str) -> dict[str, set]:
    kernels = fp.BACKENDS[backend].kernels
    return {name: set(getattr(kernels, name).signatures) for name in ENTRY_POINTS}


@pytest.mark.parametrize("backend", ["matrix", "naive"])
def test_read_only_inputs_and_labels_run_the_variant_of_writable_rows(backend):
    """Read-only inputs (a memory map, a Dask chunk) reach the kernels as writable aliases,
    misaligned ones as aligned copies, and float rows and integer labels share one variant: after
    a call with writable float rows, the same call with read-only or misaligned arrays, or with
    labels, adds no overload to any entry point (a compiled or a cached one), so nothing compiles
    again. The results are the same (bitwise, for the same targets)."""
    net = fp.MLP([6, 8, 3], "tanh", "softmax", loss="cross_entropy", dtype=np.float32, l2=1e-3)
    params = net.init(seed=0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 6)).astype(np.float32)
    labels = rng.integers(0, 3, size=5)
    Y = np.eye(3, dtype=np.float32)[labels]
    expected = net.value_and_grad(params, X, Y, backend=backend)
    expected_loss = net.loss(params, X, Y, backend=backend)
    expected_out = net.forward(params, X, backend=backend)
    before = _entry_signatures(backend)
    frozen = [array.copy() for array in (params, X, Y, labels)]
    for array in frozen:
        array.flags.writeable = False
    for targets in (frozen[2], labels, frozen[3]):
        loss, grad = net.value_and_grad(*frozen[:2], targets, backend=backend)
        assert loss == pytest.approx(expected[0], rel=1e-6)
        np.testing.assert_allclose(grad, expected[1], rtol=1e-5, atol=1e-7)
        assert net.loss(*frozen[:2], targets, backend=backend) == pytest.approx(expected_loss,
                                                                              rel=1e-6)
    loss, grad = net.value_and_grad(*frozen[:3], backend=backend)
    assert loss == expected[0] and grad.tobytes() == expected[1].tobytes()
    misaligned = np.frombuffer(bytearray(X.nbytes + 1), np.float32, X.size, 1).reshape(X.shape)
    misaligned[:] = X
    assert not misaligned.flags.aligned
    loss, grad = net.value_and_grad(params, misaligned, Y, backend=backend)
    assert loss == expected[0] and grad.tobytes() == expected[1].tobytes()
    assert net.forward(*frozen[:2], backend=backend).tobytes() == expected_out.tobytes()
    assert _entry_signatures(backend) == before
