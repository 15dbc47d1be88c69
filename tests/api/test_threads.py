"""One network shared by several Python threads: every call gives what it gives alone.

numba's parallel regions release the GIL, so calls from several threads really overlap; each
thread must use its own buffers. Every result is compared bit for bit with the same call made
serially. A subprocess repeats the check under numba's ``workqueue`` threading layer, which cannot
run parallel regions from two threads at once (fastprop serializes the calls there).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numba
import numpy as np
import pytest
from helpers import BACKENDS

import fastprop as fp

N_THREADS = 8
BATCHES = (1, 16, 64, 256)


def _problems(net: fp.MLP, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.random.default_rng(t).normal(size=(batch, net.n_inputs)),
             np.random.default_rng(100 + t).normal(size=(batch, net.n_outputs)))
            for t in range(N_THREADS)]


def _in_threads(work, n_threads: int = N_THREADS) -> list:
    """``work(t)`` in ``n_threads`` threads started together; their results, in order (an
    exception in any thread is raised here)."""
    results: list = [None] * n_threads
    errors: list = []
    start = threading.Barrier(n_threads)

    def run(t: int) -> None:
        try:
            start.wait()
            results[t] = work(t)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", BATCHES)
def test_threads_sharing_a_network_get_the_serial_results(backend, batch):
    net = fp.MLP([64, 64, 64, 4], activation="tanh", l2=1e-3)
    params = net.init(seed=0)
    data = _problems(net, batch)
    serial = [net.value_and_grad(params, X, Y, backend=backend) for X, Y in data]
    losses = [net.loss(params, X, Y, backend=backend) for X, Y in data]
    forward = [net.forward(params, X, backend=backend) for X, _ in data]

    def work(t: int) -> int:
        X, Y = data[t]
        out = np.empty_like(params)
        wrong = 0
        for call in range(200):
            if call % 2:  # the direct path (out=) and the checked path, interleaved
                loss, grad = net.value_and_grad(params, X, Y, backend=backend, out=out)
            else:
                loss, grad = net.value_and_grad(params, X, Y, backend=backend)
            wrong += loss != serial[t][0] or not np.array_equal(grad, serial[t][1])
            wrong += net.loss(params, X, Y, backend=backend) != losses[t]
        wrong += not np.array_equal(net.forward(params, X, backend=backend), forward[t])
        return wrong

    assert _in_threads(work) == [0] * N_THREADS


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_in_threads_gives_the_serial_parameters(backend):
    net = fp.MLP([8, 32, 32, 2], activation="tanh")
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(200, 8)), rng.normal(size=(200, 2))

    def trained(seed: int) -> np.ndarray:
        params = net.init(seed=seed)
        fp.train(net, params, X, Y, epochs=3, batch_size=64, seed=seed, progress=False,
                 backend=backend)
        return params

    serial = [trained(t) for t in range(4)]
    for got, expected in zip(_in_threads(trained, 4), serial, strict=True):
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_calls_release_the_gil(backend):
    """While a thread is inside long compiled calls, another thread keeps running Python code.

    The other thread wakes every half millisecond; had the calls held the GIL, its wake-ups
    would stop for each call's whole length."""
    net = fp.MLP([256, 256, 256, 4], activation="tanh")
    params = net.init(seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(1024, 256)), rng.normal(size=(1024, 4))
    calls = {
        "value_and_grad": lambda: net.value_and_grad(params, X, Y, backend=backend),
        "loss": lambda: net.loss(params, X, Y, backend=backend),
        "forward": lambda: net.forward(params, X, backend=backend),
        "train": lambda: fp.train(net, params.copy(), X, Y, epochs=1, batch_size=128,
                                  progress=False, backend=backend),
    }
    threads = fp.get_num_threads()["numba"]
    fp.set_num_threads(1)  # a core left for the waking thread
    try:
        for name, call in calls.items():
            call()  # compiled before it is timed
            span: list[float] = []

            def timed(call=call, span=span) -> None:
                span.append(time.perf_counter())
                for _ in range(4):
                    call()
                span.append(time.perf_counter())

            worker = threading.Thread(target=timed)
            wakes = []
            worker.start()
            while worker.is_alive():
                wakes.append(time.perf_counter())
                time.sleep(0.0005)
            worker.join()
            start, stop = span
            inside = [start] + [t for t in wakes if start < t < stop] + [stop]
            longest_wait = max(np.diff(inside))
            assert stop - start > 0.02, f"{name}: the calls are too short to tell"
            assert longest_wait < 0.2 * (stop - start), (
                f"{name}: no other thread ran for {longest_wait:.3f} s of four calls taking "
                f"{stop - start:.3f} s: they held the GIL")
    finally:
        fp.set_num_threads(threads)


def test_the_thread_count_set_holds_in_every_thread():
    before = fp.get_num_threads()["numba"]
    try:
        fp.set_num_threads(1)
        assert _in_threads(lambda t: fp.get_num_threads()["numba"], 3) == [1, 1, 1]
        fp.set_num_threads(np.int64(before))
        assert _in_threads(lambda t: fp.get_num_threads()["numba"], 3) == [before] * 3
    finally:
        fp.set_num_threads(before)
    assert numba.get_num_threads() == before


def test_set_num_threads_takes_integers_only():
    for bad in (1.5, True, "2", None):
        with pytest.raises(TypeError, match="n must be an integer"):
            fp.set_num_threads(bad)
    for bad in (0, -1, 10**6):
        with pytest.raises(ValueError, match="n must be an integer from 1 to"):
            fp.set_num_threads(bad)


def test_calls_are_serialized_under_the_workqueue_layer():
    script = """
import threading, numba, numpy as np, fastprop as fp
net = fp.MLP([32, 64, 64, 4], activation="tanh"); p = net.init(seed=0)
data = [(np.random.default_rng(t).normal(size=(128, 32)),
         np.random.default_rng(9 + t).normal(size=(128, 4))) for t in range(4)]
serial = {b: [net.value_and_grad(p, X, Y, backend=b)[1] for X, Y in data]
          for b in ("naive", "matrix")}
assert numba.threading_layer() == "workqueue"
wrong = []
def work(t):
    for b in ("naive", "matrix"):
        for _ in range(20):
            wrong.append(not np.array_equal(net.value_and_grad(p, *data[t], backend=b)[1],
                                            serial[b][t]))
    fp.train(net, p.copy(), *data[t], epochs=1, batch_size=64, progress=False, backend="naive")
threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
assert len(wrong) == 160 and not any(wrong), sum(wrong)
"""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
