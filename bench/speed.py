"""Time fastprop's gradient backends side by side with their peers, in one process.

For every case (batch ``B``, width ``H``, ``M`` dense layers, dtype) the network is ``[H] * (M+1)``
with tanh hidden layers, identity output and mean squared loss. Contenders are fastprop's
``matrix`` and ``naive`` backends (called with ``out=`` a preallocated gradient) and the peers of
``peers.py`` (numpy, torch, jax and the ``gemm`` floor).

Method, per case: build everything; warm up every contender (compilation is never timed); check
every gradient against the NumPy peer run in float64 (a contender that disagrees is reported as
WRONG and not timed); then time in interleaved rounds, each round calling every contender once (or
``k`` calls in a row for sub-100 us contenders, divided by ``k``), in a fresh random order each
round so that machine noise falls on all of them alike. Medians (and minima) of the per-call times
are reported, with the ratios and the targets of the issue. See :func:`run_rounds` and
``bench/README.md`` for what keeps the libraries' thread pools from slowing each other down.

Run from the repository root: ``python bench/speed.py [--quick] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from peers import PEERS, available_peers, init_params, make_numpy

REPO_ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("matrix", "naive")
CONTENDERS = (*BACKENDS, *PEERS)
DEFAULT_CASES = "1x32x4,16x32x4,64x64x4,64x128x4,256x256x4,1x256x4,1024x1024x4"
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
#: Contenders faster than this are called ``k`` times in a row per round (time divided by ``k``).
INNER_TARGET_S = 100e-6
MAX_INNER = 50
#: ((B, H, M, dtype), numerator, denominator, largest passing ratio of the medians)
TARGETS = (
    ((1, 32, 4, "float64"), "matrix", "jax", 0.2),
    ((1, 32, 4, "float64"), "matrix", "numpy", 0.2),
    ((1024, 1024, 4, "float64"), "matrix", "gemm", 1.10),
    ((1, 32, 4, "float64"), "naive", "matrix", 3.0),
    ((1, 256, 4, "float64"), "naive", "matrix", 3.0),
)
#: OpenBLAS worker threads otherwise busy-wait long after each call and, on a small machine, slow
#: down whichever contender runs next by up to 10x; 2**18 cycles (~0.1 ms) keeps them hot between
#: the GEMMs of one gradient. Applies to numpy's and scipy's (numba's np.dot) OpenBLAS alike.
OPENBLAS_TIMEOUT = 18
#: The rounds of a case stop after this many times ``--budget`` (after a complete round).
DEADLINE_FACTOR = 3.0
#: Contenders faster than this get untimed settle calls before their timed calls in each round.
SETTLE_UP_TO_S = 0.05
#: Above this fraction of all CPUs used by other processes, a case's timings are flagged.
BUSY_FRACTION = 0.05
RATIOS = (("matrix", "jax"), ("matrix", "numpy"), ("matrix", "gemm"), ("naive", "matrix"))


@dataclass(frozen=True)
class Case:
    """One benchmark case: batch ``B``, width ``H``, ``M`` dense layers, dtype name."""

    B: int
    H: int
    M: int
    dtype: str

    @property
    def key(self) -> tuple[int, int, int, str]:
        """``(B, H, M, dtype)``, as used in :data:`TARGETS`."""
        return (self.B, self.H, self.M, self.dtype)

    @property
    def label(self) -> str:
        """Short printable name, e.g. ``1x32x4 float64``."""
        return f"{self.B}x{self.H}x{self.M} {self.dtype}"


@dataclass
class Contender:
    """One timed callable and everything measured about it in one case.

    Attributes
    ----------
    name : str
        ``matrix``, ``naive`` or a peer name.
    fn : callable or None
        Zero-argument call of one gradient (arguments bound); ``None`` if it could not be built.
    status : str
        ``ok``, ``slow`` (one call exceeds ``--max-call``: timed once, not in the rounds),
        ``WRONG`` (gradient disagrees; not timed) or ``error: ...``.
    error : float
        Relative max error of gradient and loss against the float64 NumPy reference
        (NaN for the ``gemm`` floor, which computes no gradient).
    k : int
        Timed calls per round (inner loop for fast contenders).
    settle : int
        Untimed calls just before them in each round (see :func:`run_rounds`).
    times : list of float
        Seconds per call, one entry per round.
    """

    name: str
    fn: Callable[[], Any] | None
    status: str = "ok"
    error: float = math.nan
    k: int = 1
    settle: int = 0
    times: list[float] = field(default_factory=list)

    def median_us(self) -> float:
        """Median microseconds per call, NaN when not timed."""
        return 1e6 * statistics.median(self.times) if self.times else math.nan

    def min_us(self) -> float:
        """Minimum microseconds per call, NaN when not timed."""
        return 1e6 * min(self.times) if self.times else math.nan


class CaseResult(NamedTuple):
    """The contenders of one case after timing, and the CPU share others used meanwhile."""

    case: Case
    contenders: list[Contender]
    others_busy: float | None


@dataclass
class Settings:
    """How long to warm up and time each case (see :func:`parse_args`)."""

    warmup: int
    budget_s: float
    min_rounds: int
    max_rounds: int
    max_call_s: float
    settle_s: float


def parse_cases(text: str) -> list[tuple[int, int, int]]:
    """Parse ``"1x32x4,16x32x4"`` into ``[(1, 32, 4), (16, 32, 4)]``."""
    cases = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(f"case {item!r} is not BxHxM, e.g. 64x128x4")
        cases.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return cases


def parse_names(text: str, allowed: Sequence[str], what: str) -> list[str]:
    """Parse a comma-separated list of names, each one of ``allowed``."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown {what} {unknown}; choose from {list(allowed)}")
    return names


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Settings]:
    """Command-line options, and the timing settings they imply."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases",
        type=parse_cases,
        default=parse_cases(DEFAULT_CASES),
        help=f"comma-separated BxHxM (default {DEFAULT_CASES})",
    )
    parser.add_argument(
        "--dtype",
        default="float64",
        type=lambda s: parse_names(s, tuple(TOLERANCE), "dtype"),
        help="comma-separated dtypes: float64 (default), float32",
    )
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        type=lambda s: parse_names(s, CONTENDERS, "contender"),
        help=f"subset of {','.join(CONTENDERS)} (default: all available)",
    )
    parser.add_argument("--quick", action="store_true", help="short run (~20 s) for a smoke test")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timed rounds per case (default 6, --quick 1)",
    )
    parser.add_argument(
        "--max-call",
        type=float,
        default=None,
        help="a contender slower than this many seconds per call is timed once, "
        "outside the rounds (default 2, --quick 0.5)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=0.005,
        help="seconds of untimed calls a contender makes before its timed calls in each round, "
        f"so other libraries' spinning threads have quieted (default 0.005; none for calls over "
        f"{SETTLE_UP_TO_S} s; 0 disables)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    parser.add_argument("--seed", type=int, default=0, help="seed of params, data and orders")
    parser.add_argument(
        "--openblas-timeout",
        type=int,
        default=OPENBLAS_TIMEOUT,
        help="OPENBLAS_THREAD_TIMEOUT (log2 cycles OpenBLAS threads spin after a "
        f"call) to re-run under when unset (default {OPENBLAS_TIMEOUT}; 0: leave "
        "OpenBLAS's default, whose long spinning slows whatever runs next)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        settings = Settings(
            warmup=2, budget_s=1.0, min_rounds=3, max_rounds=200, max_call_s=0.5, settle_s=0
        )
    else:
        settings = Settings(
            warmup=3, budget_s=6.0, min_rounds=7, max_rounds=1000, max_call_s=2.0, settle_s=0
        )
    if args.budget is not None:
        settings.budget_s = args.budget
    settings.settle_s = args.settle
    if args.max_call is not None:
        settings.max_call_s = args.max_call
    return args, settings


def load_fastprop() -> tuple[ModuleType | None, str]:
    """Import fastprop from this working tree; return ``(module or None, where or why not)``."""
    sys.path.insert(0, str(REPO_ROOT))
    try:
        import fastprop
    except Exception as exc:  # report any import failure and go on without it
        return None, f"{type(exc).__name__}: {exc}"
    if not hasattr(fastprop, "MLP"):  # e.g. a namespace package while __init__.py is missing
        return None, f"fastprop at {list(fastprop.__path__)} has no MLP"
    return fastprop, f"{fastprop.__path__[0]} (version {getattr(fastprop, '__version__', '?')})"


def build(
    case: Case, names: Sequence[str], fp: ModuleType | None, seed: int
) -> tuple[list[Contender], tuple[float, NDArray]]:
    """Data, parameters and one bound callable per contender for ``case``.

    Returns
    -------
    contenders : list of Contender
        In ``names`` order; those that cannot be built carry an ``error`` status.
    reference : (float, ndarray)
        Loss and gradient of the NumPy peer, computed in float64 from the same inputs.
    """
    dtype = np.dtype(case.dtype)
    sizes = [case.H] * (case.M + 1)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((case.B, case.H)).astype(dtype)
    Y = rng.standard_normal((case.B, case.H)).astype(dtype)
    net = None
    net_error = "fastprop not importable"
    if fp is not None:
        try:
            net = fp.MLP(
                sizes, activation="tanh", output="identity", loss="squared", l2=0.0, dtype=dtype
            )
            params = np.ascontiguousarray(net.init(seed=seed), dtype=dtype)
        except Exception as exc:  # report, keep timing the peers
            net, net_error = None, f"{type(exc).__name__}: {exc}"
    if net is None:
        params = init_params(sizes, dtype, seed)
    f64 = np.float64
    reference = make_numpy(sizes, f64)(params.astype(f64), X.astype(f64), Y.astype(f64))

    contenders = []
    for name in names:
        if name in BACKENDS:
            if net is None:
                contenders.append(Contender(name, None, status=f"error: {net_error}"))
                continue
            out = np.empty_like(params)
            fn = functools.partial(net.value_and_grad, params, X, Y, backend=name, out=out)
        else:
            fn = functools.partial(PEERS[name][0](sizes, dtype), params, X, Y)
        contenders.append(Contender(name, fn))
    return contenders, reference


def relative_error(result: Any, reference: tuple[float, NDArray]) -> float:
    """Max of the relative errors of loss and gradient (max-norm), computed in float64."""
    loss, grad = result
    ref_loss, ref_grad = reference
    grad = np.asarray(grad, dtype=np.float64)
    if grad.shape != ref_grad.shape:
        return math.inf
    grad_err = np.max(np.abs(grad - ref_grad)) / max(np.max(np.abs(ref_grad)), 1e-300)
    loss_err = abs(float(loss) - ref_loss) / max(abs(ref_loss), 1e-300)
    return float(max(grad_err, loss_err))


def warm_up_and_check(
    c: Contender, reference: tuple[float, NDArray], tol: float, settings: Settings, compiled: bool
) -> float:
    """Call ``c`` up to ``settings.warmup`` times, check its last result, return that call's time.

    Warm-up stops early once a call that cannot include compilation (not the first call, or
    ``compiled`` already in an earlier case) takes longer than ``settings.max_call_s``.
    Sets ``c.status`` and ``c.error``.
    """
    seconds = math.nan
    try:
        for i in range(settings.warmup):
            t0 = time.perf_counter()
            result = c.fn()
            seconds = time.perf_counter() - t0
            if seconds > settings.max_call_s and (i > 0 or compiled):
                break
    except Exception as exc:  # a failing contender is reported, not fatal
        c.status = f"error: {type(exc).__name__}: {exc}"
        return seconds
    if c.name != "gemm":  # the floor computes no gradient
        c.error = relative_error(result, reference)
        if not c.error <= tol:
            c.status = "WRONG"
    if c.status == "ok" and seconds > settings.max_call_s:
        c.status, c.times = "slow", [seconds]
    return seconds


def plan_rounds(timed: list[Contender], estimates: dict[str, float], settings: Settings) -> int:
    """Choose each contender's ``k`` and ``settle`` calls, and the rounds for the time budget."""
    for c in timed:
        est = max(estimates[c.name], 1e-9)
        c.k = max(1, min(MAX_INNER, math.ceil(INNER_TARGET_S / est)))
        c.settle = math.ceil(settings.settle_s / est) if est < SETTLE_UP_TO_S else 0
    round_s = sum((c.k + c.settle) * estimates[c.name] for c in timed)
    rounds = math.ceil(settings.budget_s / max(round_s, 1e-9))
    return max(settings.min_rounds, min(settings.max_rounds, rounds))


def run_rounds(
    timed: list[Contender], rounds: int, seed: int = 0, deadline_s: float = math.inf
) -> None:
    """The timing loop: every round calls every contender of ``timed``, in a new random order.

    Appends one per-call time (seconds, the round's ``k`` calls divided by ``k``) per round to
    each contender's ``times``. The libraries' thread pools (OpenBLAS, torch's and numba's
    OpenMP, XLA) keep spinning for a while after a call returns and, on a small machine, slow
    whatever runs next, so each contender's timed calls follow ``settle`` untimed calls of its own
    (about ``--settle`` seconds' worth), and the order is shuffled each round (not rotated, which
    would keep the same neighbours) so every contender follows every other equally often.
    Stops early, after a complete round, once ``deadline_s`` seconds have passed (e.g. when
    another process slows everything down). The garbage collector is off while timing.
    """
    timer = time.perf_counter
    orders = np.random.default_rng(seed).permuted(
        np.tile(np.arange(len(timed)), (rounds, 1)), axis=1
    )
    gc.collect()
    gc.disable()
    end = timer() + deadline_s
    try:
        for order in orders:
            if timer() > end:
                break
            for c in (timed[i] for i in order):
                fn, k = c.fn, c.k
                for _ in range(c.settle):
                    fn()
                t0 = timer()
                for _ in range(k):
                    fn()
                c.times.append((timer() - t0) / k)
    finally:
        gc.enable()


def run_case(
    case: Case,
    names: Sequence[str],
    fp: ModuleType | None,
    settings: Settings,
    seed: int,
    compiled: set[tuple[str, str]],
) -> CaseResult:
    """Build, warm up, check and time every contender of one case; print a progress line."""
    contenders, reference = build(case, names, fp, seed)
    estimates = {}
    for c in contenders:
        if c.fn is not None:
            key = (c.name, case.dtype)
            estimates[c.name] = warm_up_and_check(
                c, reference, TOLERANCE[case.dtype], settings, key in compiled
            )
            compiled.add(key)
    timed = [c for c in contenders if c.status == "ok"]
    rounds = plan_rounds(timed, estimates, settings) if timed else 0
    t0 = time.perf_counter()
    mark = cpu_mark()
    run_rounds(timed, rounds, seed, deadline_s=DEADLINE_FACTOR * settings.budget_s)
    busy = others_busy(mark)
    notes = ", ".join(
        f"{c.name} err={c.error:.1e} k={c.k}" + ("" if c.status == "ok" else f" [{c.status}]")
        for c in contenders
    )
    seconds = time.perf_counter() - t0
    rounds = min((len(c.times) for c in timed), default=0)
    others = "" if busy is None else f", others used {busy:.0%} CPU"
    print(f"  {case.label:>18}: {rounds} rounds in {seconds:.1f} s{others} | {notes}", flush=True)
    return CaseResult(case, contenders, busy)


def cell(c: Contender | None, stat: str) -> str:
    """One table cell: the statistic in microseconds, or why there is none."""
    if c is None:
        return "-"
    if c.status in ("ok", "slow"):
        value = c.median_us() if stat == "median" else c.min_us()
        return f"{value:.1f}" + ("*" if c.status == "slow" else "")
    return "WRONG" if c.status == "WRONG" else "err"


def ratio(by_name: dict[str, Contender], num: str, den: str) -> float:
    """Median of ``num`` over median of ``den``, NaN unless both were timed."""
    a, b = by_name.get(num), by_name.get(den)
    if a is None or b is None or a.status not in ("ok", "slow") or b.status not in ("ok", "slow"):
        return math.nan
    return a.median_us() / b.median_us()


def print_tables(results: list[CaseResult], names: Sequence[str]) -> None:
    """Print the medians with ratios, then the minima."""
    head = f"{'B':>5} {'H':>5} {'M':>2} {'dtype':>7} |"
    for stat in ("median", "min"):
        print(
            f"\n{stat} us per call"
            + (" (* = one call, too slow for rounds)" if stat == "median" else "")
        )
        line = head + "".join(f"{n:>11}" for n in names)
        if stat == "median":
            line += " |" + "".join(f"{f'{a}/{b}':>14}" for a, b in RATIOS)
        print(line)
        for case, contenders, busy in results:
            by_name = {c.name: c for c in contenders}
            row = f"{case.B:>5} {case.H:>5} {case.M:>2} {case.dtype:>7} |"
            row += "".join(f"{cell(by_name.get(n), stat):>11}" for n in names)
            if stat == "median":
                row += " |" + "".join(f"{ratio(by_name, a, b):>14.3f}" for a, b in RATIOS)
            if busy is not None and busy > BUSY_FRACTION:
                row += f"  ! others used {busy:.0%} CPU"
            print(row)


def check_targets(results: list[CaseResult]) -> list[dict[str, Any]]:
    """Print PASS/FAIL/SKIP for each target of :data:`TARGETS` and return them."""
    by_key = {r.case.key: {c.name: c for c in r.contenders} for r in results}
    print("\ntargets")
    outcomes = []
    for key, num, den, limit in TARGETS:
        label = f"{key[0]}x{key[1]}x{key[2]} {key[3]}"
        value = ratio(by_key[key], num, den) if key in by_key else math.nan
        verdict = "SKIP" if math.isnan(value) else ("PASS" if value <= limit else "FAIL")
        shown = "not measured" if math.isnan(value) else f"{value:.3f}"
        print(f"  {verdict}  {num}/{den} at {label:<20} = {shown:<12} (target <= {limit})")
        outcomes.append(
            {
                "case": key,
                "ratio": f"{num}/{den}",
                "value": value,
                "limit": limit,
                "verdict": verdict,
            }
        )
    return outcomes


def cpu_mark() -> tuple[float, float, float] | None:
    """``(wall, machine busy CPU-s, this process's CPU-s)`` now; ``None`` without /proc/stat."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    own = os.times()
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    return time.perf_counter(), busy, own.user + own.system


def others_busy(mark: tuple[float, float, float] | None) -> float | None:
    """Fraction of all CPUs that other processes used since ``mark`` (from :func:`cpu_mark`)."""
    now = cpu_mark()
    if mark is None or now is None:
        return None
    wall, busy, own = (b - a for a, b in zip(mark, now, strict=True))
    return max(0.0, (busy - own) / (max(wall, 1e-9) * (os.cpu_count() or 1)))


def machine_note(fp_where: str) -> list[str]:
    """CPU, threading and BLAS facts that the timings depend on."""
    import numba

    @numba.njit(parallel=True)
    def _parallel_sum(n: int) -> float:
        total = 0.0
        for i in numba.prange(n):
            total += i
        return total

    _parallel_sum(1000)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    lines = [
        f"cpu: {cpu}; os.cpu_count()={os.cpu_count()}, usable={affinity}",
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}",
        f"numba threading layer {numba.threading_layer()}, threads {numba.get_num_threads()}",
        f"fastprop: {fp_where}",
    ]
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            lines.append(
                f"threadpool: {pool.get('internal_api')} {pool.get('version')} "
                f"num_threads={pool.get('num_threads')} "
                f"({Path(pool.get('filepath', '?')).name})"
            )
    except ImportError:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        lines.append(
            f"numpy BLAS: {blas.get('name')} {blas.get('version')} "
            "(threadpoolctl not installed: no thread counts)"
        )
    env = {
        k: v
        for k, v in os.environ.items()
        if k.endswith(("_NUM_THREADS", "_THREAD_TIMEOUT", "_WAIT_POLICY", "_SPINCOUNT"))
    }
    lines.append(f"thread env: {env or 'none set'}")
    if "torch" in available_peers():
        import torch

        lines.append(f"torch {torch.__version__}: get_num_threads()={torch.get_num_threads()}")
    if "jax" in available_peers():
        import jax

        lines.append(f"jax {jax.__version__}: devices {jax.devices()}")
    return lines


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN/inf float replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    args, settings = parse_args(argv)
    if args.openblas_timeout and "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
        # OpenBLAS reads it when loaded, and numpy is loaded: run again in a fresh process.
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(args.openblas_timeout)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    t_start = time.perf_counter()
    fp, fp_where = load_fastprop()
    available = set(available_peers()) | (set(BACKENDS) if fp is not None else set())
    names = [n for n in args.contenders if n in available]
    missing = [n for n in args.contenders if n not in available]
    print(f"fastprop: {fp_where}")
    print(
        f"contenders: {', '.join(names)}"
        + (f" (unavailable: {', '.join(missing)})" if missing else "")
    )
    print(f"settings: {settings}")
    mark = cpu_mark()
    time.sleep(0.3)
    busy = others_busy(mark)
    if busy is not None and busy > BUSY_FRACTION:
        print(f"WARNING: other processes use {busy:.0%} of the CPUs: timings will suffer")
    cases = [Case(B, H, M, d) for d in args.dtype for B, H, M in args.cases]
    compiled: set[tuple[str, str]] = set()
    results = []
    for case in cases:
        results.append(run_case(case, names, fp, settings, args.seed, compiled))
    print_tables(results, names)
    targets = check_targets(results)
    print("\nmachine")
    note = machine_note(fp_where)
    shown = "?" if busy is None else f"{busy:.0%}"
    note.append(f"CPU used by other processes just before the run: {shown}")
    for line in note:
        print(f"  {line}")
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s")
    if args.json is not None:
        dump = {
            "argv": sys.argv[1:],
            "settings": asdict(settings),
            "machine": note,
            "targets": targets,
            "cases": [
                {
                    **asdict(case),
                    "others_busy": busy,
                    "contenders": {
                        c.name: {
                            "status": c.status,
                            "error": c.error,
                            "k": c.k,
                            "settle": c.settle,
                            "median_us": c.median_us(),
                            "min_us": c.min_us(),
                            "times_s": c.times,
                        }
                        for c in contenders
                    },
                }
                for case, contenders, busy in results
            ],
        }
        args.json.write_text(json.dumps(_finite(dump), indent=1))
        print(f"raw numbers written to {args.json}")
    # Timing targets are reported, not enforced (timings are noisy); a wrong or failing
    # fastprop backend is an error.
    broken = [f"{c.name} at {case.label()}: {c.status}" for case, contenders, _ in results
              for c in contenders if c.name in BACKENDS and c.status not in ("ok", "slow")]
    for line in broken:
        print(f"ERROR: {line}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
