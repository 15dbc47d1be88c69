"""``fastprop compare``: fastprop's backends and their peers, side by side, in one process.

The network is the one of ``ANCHORS.md``: ``depth`` tanh layers of width ``width`` (input and
output ``width`` too), identity output, squared loss, batch ``batch``. For each case every
contender is built, warmed up (compilation is never timed) and checked: its loss and gradient
must match a float64 NumPy backprop to 1e-10 (float64) or 1e-4 (float32), relative to the
largest entry, or it is reported as WRONG and not timed. Then all are timed together, in
interleaved rounds (:mod:`fastprop.timing`), and medians are reported.

Contenders: fastprop's backends (``fastprop.BACKENDS``; the GPU ones only where a GPU is, not on
numba's CUDA simulator) and the peers of :mod:`fastprop.peers` (a hand-written NumPy backprop,
PyTorch eager, ``jax.jit(jax.value_and_grad)``, ``gemm``: the matrix products alone, done back to
back by NumPy, the floor of the matrix form, and on a GPU PyTorch CUDA eager and replaying a CUDA
graph).
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numba
import numpy as np

from . import peers, threads
from .backends import BACKENDS, unavailable_reason
from .cpu import blas
from .cuda import runtime as cuda_runtime
from .network import MLP
from .timing import Timings, interleaved, time_once

#: (batch, width, depth) cases of a default run: about a minute on two cores.
DEFAULT_CASES = ((1, 32, 4), (16, 32, 4), (64, 64, 4), (64, 128, 4), (256, 256, 4), (1, 256, 4),
                 (1024, 1024, 4))
QUICK_CASES = ((1, 32, 4), (16, 32, 4), (64, 64, 4), (256, 256, 4))
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}


@dataclass(frozen=True)
class Case:
    """``depth`` tanh layers of width ``width`` at batch ``batch``, in ``dtype``."""

    batch: int
    width: int
    depth: int
    dtype: str

    @property
    def sizes(self) -> list[int]:
        """The network's layer widths."""
        return [self.width] * (self.depth + 1)

    @property
    def label(self) -> str:
        """``batch x width x depth dtype``."""
        return f"{self.batch}x{self.width}x{self.depth} {self.dtype}"

    @property
    def gemm_flops(self) -> int:
        """Floating-point operations of the matrix form's products: one per layer forward, one
        weight-gradient product per layer and one delta product per layer but the first."""
        return 2 * self.batch * self.width ** 2 * (3 * self.depth - 1)


@dataclass
class Result:
    """What one contender did in one case.

    ``status`` is ``ok``, ``slow`` (one call took longer than the limit: that call is the
    time), ``WRONG`` (its gradient disagreed; not timed) or ``error: ...``.
    """

    case: Case
    name: str
    status: str
    error: float
    timings: Timings

    @property
    def seconds(self) -> float:
        """Median seconds per call; NaN if not timed."""
        return self.timings.median if self.status in ("ok", "slow") else math.nan


def _problem(case: Case, seed: int) -> tuple[MLP, np.ndarray, np.ndarray, np.ndarray]:
    net = MLP(case.sizes, "tanh", output="identity", loss="squared", dtype=case.dtype)
    rng = np.random.default_rng(seed)
    params = net.init(seed=rng)
    for _, b in net.unpack(params):
        b[:] = rng.normal(scale=0.1, size=b.shape)
    X = rng.normal(size=(case.batch, case.width)).astype(case.dtype)
    Y = rng.normal(size=(case.batch, case.width)).astype(case.dtype)
    return net, params, X, Y


def _backend_call(net: MLP, name: str, params: np.ndarray, X: np.ndarray,
                  Y: np.ndarray) -> Callable[[], object]:
    """One gradient of backend ``name`` into a buffer of its own, called as a user would (the
    GPU backends on GPU arrays)."""
    arrays = (params, X, Y, np.empty_like(params))
    if BACKENDS[name].device:
        arrays = tuple(cuda_runtime.to_device(a) for a in arrays)
    params, X, Y, out = arrays

    def call() -> object:
        return net.value_and_grad(params, X, Y, backend=name, out=out)

    return call


def _calls(case: Case, names: Sequence[str],
           seed: int) -> tuple[dict[str, Callable[[], object]], tuple[float, np.ndarray]]:
    """Zero-argument calls of every contender, and the float64 reference (loss, gradient)."""
    net, params, X, Y = _problem(case, seed)
    calls: dict[str, Callable[[], object]] = {}
    for name in names:
        if name in BACKENDS:
            calls[name] = _backend_call(net, name, params, X, Y)
        else:
            peer = peers.PEERS[name][0](case.sizes, case.dtype)
            calls[name] = lambda peer=peer: peer(params, X, Y)
    as64 = [a.astype(np.float64) for a in (params, X, Y)]
    return calls, peers.make_numpy(case.sizes, np.float64)(*as64)


def _relative_error(result: object, reference: tuple[float, np.ndarray]) -> float:
    loss, grad = result
    if hasattr(grad, "copy_to_host"):  # a numba device array
        grad = grad.copy_to_host()
    elif hasattr(grad, "cpu"):  # a PyTorch tensor
        grad = grad.detach().cpu().numpy()
    ref_loss, ref_grad = reference
    grad_error = np.abs(np.asarray(grad, np.float64) - ref_grad).max() / np.abs(ref_grad).max()
    return float(max(grad_error, abs(loss - ref_loss) / abs(ref_loss)))


def run_case(case: Case, names: Sequence[str], budget_s: float, max_call_s: float,
             seed: int = 0) -> list[Result]:
    """Build, warm up, check and time every contender of one case."""
    calls, reference = _calls(case, names, seed)
    results, estimates = {}, {}
    for name, call in calls.items():
        status, error, seconds = "ok", math.nan, math.nan
        try:
            for _ in range(2):  # the first call may compile
                seconds = time_once(call)
            if name != "gemm":  # the floor computes no gradient
                error = _relative_error(call(), reference)
                if not error <= TOLERANCE[case.dtype]:
                    status = "WRONG"
        except Exception as exc:  # a failing contender is reported, not fatal
            status = f"error: {type(exc).__name__}: {exc}"
        if status == "ok" and seconds > max_call_s:
            status = "slow"
        results[name] = Result(case, name, status, error,
                               Timings(times=[seconds] if status == "slow" else []))
        estimates[name] = seconds
    timed = {name: calls[name] for name, result in results.items() if result.status == "ok"}
    for name, timings in interleaved(timed, estimates, budget_s, seed=seed).items():
        results[name].timings = timings
    return list(results.values())


def machine_note() -> list[str]:
    """Cores, CPU, numba and its threading layer, the BLAS libraries."""
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not started"
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    counts = threads.get_num_threads()
    settings = ", ".join(f"{name}={os.environ.get(name, '(unset)')}"
                         for name in ("OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_CORETYPE"))
    return [f"cpu: {cpu}, {os.cpu_count()} cores",
            f"environment: {settings}",
            f"python {platform.python_version()}, numpy {np.__version__}, numba "
            f"{numba.__version__} (threading layer {layer}, {counts['numba']} threads)",
            *(f"blas: {line}" for line in threads.blas_description()),
            f"matrix backend's BLAS products: {blas.PRODUCTS}"]


def table(results: Sequence[Result], names: Sequence[str], baseline: str) -> str:
    """Medians per call, the baseline's GFLOP/s, and its speedup over every other contender."""
    others = [name for name in names if name != baseline]
    header = (f"{'case':>20} | " + " ".join(f"{name:>10}" for name in names)
              + f" | {'GFLOP/s':>8} | " + " ".join(f"{'vs ' + name:>10}" for name in others))
    lines = [f"median time per gradient (us); GFLOP/s and speedups of {baseline} "
             f"(other's time / {baseline}'s)", header, "-" * len(header)]
    for case in dict.fromkeys(result.case for result in results):
        row = {r.name: r for r in results if r.case == case}
        cells = [_cell(row.get(name)) for name in names]
        base = row[baseline].seconds if baseline in row else math.nan
        speedups = [f"{row[name].seconds / base:10.2f}" if name in row else f"{'':10}"
                    for name in others]
        lines.append(f"{case.label:>20} | " + " ".join(cells)
                     + f" | {case.gemm_flops / base / 1e9:8.1f} | " + " ".join(speedups))
    return "\n".join(lines)


def _cell(result: Result | None) -> str:
    if result is None:
        return f"{'':>10}"
    if result.status in ("ok", "slow"):
        return f"{result.seconds * 1e6:9.1f}" + ("*" if result.status == "slow" else " ")
    return f"{'WRONG' if result.status == 'WRONG' else 'error':>10}"


def plot(results: Sequence[Result], names: Sequence[str], baseline: str, path: Path) -> None:
    """Log-log time per gradient against the products' FLOPs, and the baseline's speedups."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install 'fastprop[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (times_axis, speedup_axis) = plt.subplots(1, 2, figsize=(13, 5.5))
    dtypes = sorted({r.case.dtype for r in results})
    for dtype, style in zip(dtypes, ("-o", "--s"), strict=False):
        for index, name in enumerate(names):
            color = f"C{index}"
            points = sorted((r.case.gemm_flops, r.seconds) for r in results
                            if r.name == name and r.case.dtype == dtype and r.seconds > 0)
            if points:
                times_axis.plot(*zip(*points, strict=True), style, color=color,
                                label=f"{name} {dtype}")
            base = {r.case: r.seconds for r in results if r.name == baseline}
            ratios = sorted((r.case.gemm_flops, r.seconds / base[r.case]) for r in results
                            if r.name == name and r.case.dtype == dtype and name != baseline
                            and r.case in base and r.seconds > 0)
            if ratios:
                speedup_axis.plot(*zip(*ratios, strict=True), style, color=color,
                                  label=f"{baseline} vs {name} {dtype}")
    times_axis.set(xscale="log", yscale="log", xlabel="FLOPs of the matrix products per gradient",
                   ylabel="median seconds per gradient", title="time per gradient")
    speedup_axis.set(xscale="log", yscale="log", xlabel="FLOPs of the matrix products per gradient",
                     ylabel=f"speedup of {baseline} (other's time / {baseline}'s)",
                     title=f"speedup of fastprop {baseline}")
    speedup_axis.axhline(1.0, color="gray", linewidth=0.8)
    for axis in (times_axis, speedup_axis):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def to_json(results: Sequence[Result], note: Sequence[str]) -> dict:
    """Every number of a run, raw per-call times included."""
    return {"machine": list(note), "results": [
        {**asdict(r.case), "name": r.name, "status": r.status,
         "error": None if math.isnan(r.error) else r.error,
         "median_s": None if math.isnan(r.seconds) else r.seconds,
         "times_s": r.timings.times, "inner_calls": r.timings.k} for r in results]}


def run(cases: Sequence[Case], names: Sequence[str], baseline: str, budget_s: float,
        max_call_s: float, json_path: Path | None, plot_path: Path | None,
        progress: bool = True) -> int:
    """The whole command: every case, the table, the machine note, the files asked for."""
    from tqdm import tqdm

    skipped = {name: why for name in names if name in BACKENDS
               and (why := unavailable_reason(name)) is not None}
    for name, why in skipped.items():
        print(f"not available, skipped: {name} ({why})")
    names = [name for name in names if name not in skipped]
    if baseline in skipped:
        baseline = names[0]
    results: list[Result] = []
    with tqdm(cases, desc="compare", unit="case", disable=not progress) as bar:
        for case in bar:
            bar.set_postfix_str(case.label)
            results.extend(run_case(case, names, budget_s, max_call_s))
    print(table(results, names, baseline))
    note = machine_note()
    print("\n" + "\n".join(note))
    problems = [f"{r.name} at {r.case.label}: {r.status}" for r in results
                if r.status not in ("ok", "slow")]
    for line in problems:
        print(f"WARNING: {line}")
    if json_path is not None:
        json_path.write_text(json.dumps(to_json(results, note), indent=1))
        print(f"raw numbers: {json_path}")
    if plot_path is not None:
        plot(results, names, baseline, plot_path)
        print(f"plot: {plot_path}")
    broken = [r for r in results if r.name in BACKENDS and r.status not in ("ok", "slow")]
    return 1 if broken else 0
