"""fastprop.dask's gradient against one process, as asv benchmarks and as a side-by-side script.

1. The full-batch gradient of a 784-256-256-10 relu network (softmax, cross-entropy, float32)
   over 200,000 samples, the data persisted on the workers in two chunks: one process on one
   thread (``net.value_and_grad``, ``fp.set_num_threads(1)``) against
   ``fastprop.dask.value_and_grad`` on a local cluster of one and of two worker processes of one
   thread each.
2. The cost of one distributed call on a tiny problem (a 8-16-2 network, two chunks of 16
   samples), against the same gradient in one process; and with 32 chunks, for the cost of each
   further task.

``python -m bench.distributed`` (from the repository root) times the contenders in interleaved
rounds, prints their medians and ratios, measures the bandwidth between two workers, and fits
the scaling model of docs/distributed.md to the figures; ``--markdown PATH`` also writes them as
the Markdown that docs/distributed.md includes. asv runs the same calls (``time_gradient``,
``time_call``); without Dask installed they are skipped.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import fastprop as fp

try:
    import dask.array as da
    from distributed import Client

    import fastprop.dask as fd
except ImportError:  # Dask is optional: the benchmarks are skipped without it
    da = fd = None

SIZES = (784, 256, 256, 10)
SAMPLES = 200_000
#: Chunks of the large problem: one per worker of the two-worker cluster.
CHUNKS = 2
TINY_SIZES = (8, 16, 2)
TINY_CHUNK = 16
#: The chunk counts of the tiny problem: the fixed cost of a call, then the cost per task.
TINY_CHUNKS = (2, 32)
CONTENDERS = ("one-process", "dask-1", "dask-2")
#: Parameters of the second network of the scaling model.
LARGE_MODEL_PARAMS = 10_000_000


def _require() -> None:
    """Skip (asv's way: ``NotImplementedError`` from setup) where Dask or fastprop.dask is
    missing."""
    if fd is None:
        raise NotImplementedError('Dask is not installed: pip install "fastprop[dask]"')


@functools.cache
def cluster(workers: int) -> Client:
    """A local cluster of ``workers`` single-threaded worker processes, set up as the embedded
    one (:func:`fastprop.dask.local_cluster`)."""
    return fd.get_client(Client(fd.local_cluster(workers), set_as_default=False))


def network(sizes: tuple[int, ...]) -> fp.MLP:
    return fp.MLP(list(sizes), activation="relu", output="softmax", loss="cross_entropy",
                  dtype=np.float32)


@functools.cache
def data(workers: int, sizes: tuple[int, ...], samples: int, chunks: int) -> tuple:
    """``(X, Y)`` made and persisted on the cluster's workers, the chunks spread over them."""
    client = cluster(workers)
    rows = math.ceil(samples / chunks)
    generator = da.random.default_rng(0)
    X = generator.standard_normal((samples, sizes[0]), dtype=np.float32, chunks=(rows, -1))
    Y = generator.integers(0, sizes[-1], size=samples, chunks=rows)
    X, Y = client.persist([X, Y])
    client.wait_for_workers(workers)
    client.rebalance()
    return X, Y


@functools.cache
def call(contender: str, sizes: tuple[int, ...] = SIZES, samples: int = SAMPLES,
         chunks: int = CHUNKS) -> Callable[[], Any]:
    """One gradient of ``contender``, warmed up (kernels loaded on every process).

    Each call takes new parameters (the first ones plus 1e-7 more per call), as in training: a
    call that repeated the last one's parameters could be served by Dask from results still held
    on the workers.
    """
    _require()
    net = network(sizes)
    first = net.init(seed=0)
    steps = itertools.count()

    def params() -> np.ndarray:
        return first + net.dtype.type(1e-7) * next(steps)

    if contender == "one-process":
        fp.set_num_threads(1)
        X, Y = cluster(1).compute(list(data(1, sizes, samples, chunks)), sync=True)
        grad = np.empty_like(first)

        def gradient() -> Any:
            return net.value_and_grad(params(), X, Y, out=grad)
    else:
        workers = int(contender.split("-")[1])
        X, Y = data(workers, sizes, samples, chunks)
        client = cluster(workers)

        def gradient() -> Any:
            return fd.value_and_grad(net, params(), X, Y, client=client)
    gradient()
    return gradient


class DistributedGradient:
    """Target 1: one full-batch gradient of the 784-256-256-10 network over 200,000 samples."""

    params = (CONTENDERS,)
    param_names = ("contender",)
    timeout = 900.0
    number = 1
    repeat = (3, 5, 120.0)

    def setup(self, contender: str) -> None:
        """Start the cluster, persist the data on it, warm every process up (once per
        process)."""
        self.call = call(contender)

    def time_gradient(self, contender: str) -> None:
        """Seconds per gradient."""
        self.call()


class DistributedCall:
    """Target 2: one distributed call on a tiny problem, against the same call in one
    process."""

    params = (("one-process", "dask-2"), TINY_CHUNKS)
    param_names = ("contender", "chunks")
    timeout = 300.0

    def setup(self, contender: str, chunks: int) -> None:
        """Start the cluster and warm up (once per process)."""
        self.call = call(contender, TINY_SIZES, TINY_CHUNK * chunks, chunks)

    def time_call(self, contender: str, chunks: int) -> None:
        """Seconds per call."""
        self.call()


def seconds(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """The median seconds of each call, timed in turn ``rounds`` times (so a busy moment of the
    machine slows every contender alike)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, function in calls.items():
            times[name].append(seconds(function))
    return {name: statistics.median(found) for name, found in times.items()}


def chunk_seconds(workers: int, rounds: int, samples: int) -> float:
    """The median time that the workers spent computing one chunk of the full-batch gradient,
    over ``rounds`` more calls (Dask's task stream): about ``C / 2`` when each worker has a core
    to itself, more when other processes compete for the cores."""
    from distributed import get_task_stream

    gradient = call(f"dask-{workers}", SIZES, samples)
    with get_task_stream(client=cluster(workers)) as stream:
        for _ in range(rounds):
            gradient()
    return statistics.median(
        part["stop"] - part["start"] for record in stream.data
        if "chunk_value_and_grad" in str(record["key"])
        for part in record["startstops"] if part["action"] == "compute")


def bandwidth(client: Client, sizes: tuple[int, ...] = (2**20, 2**26)) -> float:
    """Bytes per second from one worker to another: the difference of two transfer sizes over
    the difference of their times (medians of five), which leaves the tasks' cost out."""
    first, second = list(client.scheduler_info()["workers"])[:2]
    medians = []
    for size in sizes:
        times = []
        for _ in range(5):
            held = client.submit(np.ones, size, np.uint8, workers=[first], pure=False)
            held.result()
            start = time.perf_counter()
            client.submit(len, held, workers=[second], pure=False).result()
            times.append(time.perf_counter() - start)
            held.release()
        medians.append(statistics.median(times))
    return (sizes[1] - sizes[0]) / max(medians[1] - medians[0], 1e-9)


def tasks(chunks: int) -> int:
    """Tasks of one distributed gradient over ``chunks`` chunks: one per chunk, and the
    additions of the reduction tree (``split_every`` 4) below its root, which the driver adds."""
    count = parts = chunks
    while parts > 4:
        parts = math.ceil(parts / 4)
        count += parts
    return count


def model(compute: float, fixed: float, per_task: float, param_bytes: int, rate: float,
          workers: int) -> float:
    """Seconds of one distributed gradient on ``workers`` workers, one chunk each: the compute
    split; the cost of a call of two chunks (two tasks) on a tiny problem; each further task,
    counted as serial (an upper bound: the chunks' tasks run in parallel, only the scheduler's
    share of them does not); the parameters' spread to the workers (a tree that doubles its
    holders at best, ``ceil(log2 N)`` levels) and the gradient's reduction (3 transfers per
    level of ``ceil(log4 N)``), of the flat vector each."""
    spread = math.ceil(math.log2(workers)) if workers > 1 else 0
    reduction = 3 * math.ceil(math.log(workers, 4)) if workers > 1 else 0
    return (compute / workers + fixed + per_task * max(tasks(workers) - tasks(2), 0)
            + (spread + reduction) * param_bytes / rate)


def scaling_limit(compute: float, fixed: float, per_task: float, param_bytes: int,
                  rate: float) -> int:
    """The largest power of two of workers at which the model keeps half of perfect scaling."""
    workers = 1
    while compute / (2 * workers * model(compute, fixed, per_task, param_bytes, rate,
                                         2 * workers)) >= 0.5:
        workers *= 2
    return workers


def measure(rounds: int, samples: int = SAMPLES) -> dict[str, Any]:
    """Every figure of docs/distributed.md: the medians, the bandwidth, the model's fit, and the
    machine's load average over the last minute before and after (other processes' work
    slows the two-worker case most on two cores)."""
    load = os.getloadavg()[0]
    gradient = interleaved({name: call(name, SIZES, samples) for name in CONTENDERS}, rounds)
    chunk = {f"dask-{n}": chunk_seconds(n, rounds, samples) for n in (1, 2)}
    tiny = {}
    for chunks in TINY_CHUNKS:
        calls = {name: call(name, TINY_SIZES, TINY_CHUNK * chunks, chunks)
                 for name in ("one-process", "dask-2")}
        tiny[chunks] = interleaved(calls, 20 * rounds)
    rate = bandwidth(cluster(2))
    few, many = TINY_CHUNKS
    per_task = (max(tiny[many]["dask-2"] - tiny[few]["dask-2"], 0.0)
                / (tasks(many) - tasks(few)))
    fixed = tiny[few]["dask-2"]
    compute = gradient["one-process"]
    n_params = network(SIZES).n_params
    return {"load": (load, os.getloadavg()[0]), "samples": samples, "gradient": gradient,
            "chunk": chunk,
            "tiny": tiny, "bandwidth": rate, "per_task": per_task, "fixed": fixed,
            "n_params": n_params,
            "predicted": {n: model(compute, fixed, per_task, 4 * n_params, rate, n)
                          for n in (1, 2)},
            "limits": {n: scaling_limit(compute * n / n_params, fixed, per_task, 4 * n, rate)
                       for n in (n_params, LARGE_MODEL_PARAMS)},
            "limits_10gbe": {n: scaling_limit(compute * n / n_params, fixed, per_task, 4 * n,
                                              1.25e9)
                             for n in (n_params, LARGE_MODEL_PARAMS)}}


def report(found: dict[str, Any], rounds: int) -> str:
    """The figures as Markdown."""
    gradient, tiny = found["gradient"], found["tiny"]
    few, many = TINY_CHUNKS
    lines = [
        f"Measured with `python -m bench.distributed --rounds {rounds}` on {_machine()}, "
        f"Python {platform.python_version()}, NumPy {np.__version__}, Dask "
        f"{_version('dask')}, distributed {_version('distributed')}; medians of {rounds} "
        f"interleaved rounds (the tiny calls: {20 * rounds}); the machine's load average was "
        f"{found['load'][0]:.1f} before and {found['load'][1]:.1f} after.",
        "",
        f"| full-batch gradient, 784-256-256-10, {found['samples']:,} samples in {CHUNKS} "
        f"chunks, float32 | median | vs one process | one chunk on its worker |",
        "|---|---:|---:|---:|",
    ]
    for name in CONTENDERS:
        on_worker = f"{found['chunk'][name]:.3f} s" if name in found["chunk"] else ""
        lines.append(f"| {name} | {gradient[name]:.3f} s | "
                     f"{gradient['one-process'] / gradient[name]:.2f}x | {on_worker} |")
    lines += [
        "",
        "| one call, 8-16-2 network, 16 samples per chunk | one process | dask-2 |",
        "|---|---:|---:|",
    ]
    for chunks in TINY_CHUNKS:
        lines.append(f"| {chunks} chunks | {tiny[chunks]['one-process'] * 1e3:.3f} ms | "
                     f"{tiny[chunks]['dask-2'] * 1e3:.1f} ms |")
    lines += [
        "",
        f"Model inputs: compute `C` = {gradient['one-process']:.3f} s (one process), cost of "
        f"a call `o` = {found['fixed'] * 1e3:.1f} ms (the {few}-chunk call) and of each "
        f"further task `t` = {found['per_task'] * 1e3:.2f} ms (from the {few}- and "
        f"{many}-chunk calls), "
        f"bandwidth between two workers `B` = {found['bandwidth'] / 1e9:.2f} GB/s, "
        f"{found['n_params']:,} parameters (4 bytes each).",
        "",
        "| workers | model | measured |",
        "|---:|---:|---:|",
    ]
    for n in (1, 2):
        lines.append(f"| {n} | {found['predicted'][n]:.3f} s | {gradient[f'dask-{n}']:.3f} s |")
    limits, slower = found["limits"], found["limits_10gbe"]
    small, large = found["n_params"], LARGE_MODEL_PARAMS
    lines += [
        "",
        f"Workers up to which the model keeps half of perfect scaling ({found['samples']:,} "
        f"samples, one chunk per worker):",
        "",
        "| network | at the measured `B` | at 1.25 GB/s (10 Gb Ethernet) |",
        "|---|---:|---:|",
        f"| 784-256-256-10 ({small:,} parameters) | {limits[small]} | {slower[small]} |",
        f"| 10,000,000 parameters | {limits[large]} | {slower[large]} |",
        "",
    ]
    return "\n".join(lines)


def _machine() -> str:
    """The CPU's name and the cores this process may use."""
    from fastprop.dask.cluster import cores

    names = [line.split(":", 1)[1].strip() for line in
             Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
    return f"{names[0] if names else platform.machine()}, {cores()} cores"


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--samples", type=int, default=SAMPLES,
                        help=f"samples of the full-batch gradient (default {SAMPLES:,})")
    parser.add_argument("--markdown", type=Path, help="also write the figures to this file")
    arguments = parser.parse_args(argv)
    _require()
    text = report(measure(arguments.rounds, arguments.samples), arguments.rounds)
    print(text)
    if arguments.markdown is not None:
        arguments.markdown.write_text(text)


if __name__ == "__main__":
    main()
