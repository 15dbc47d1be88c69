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

What a run writes: the table and a note on the machine, on stdout; with ``--json``, every
number; with ``--plot``, time and speedup curves; with ``--markdown``, a page for the
documentation (:func:`markdown_page`: where and when it ran, the command, the table, the plot);
with ``--readme``, a summary table between a README's markers (:func:`readme_summary`). All come
from the same timings (:func:`write_outputs`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
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
#: Environment variables that change which kernels, cache sizes or threads the BLAS, numba or the
#: matrix backend use. The machine note and the Markdown stamps say which are set, and to what.
ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
               "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "MKL_ENABLE_INSTRUCTIONS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER",
               "FASTPROP_LARGE_PRODUCTS", "FASTPROP_NUMPY_DOT")
#: The lines of a README between which ``--readme`` writes its summary.
SUMMARY_START, SUMMARY_END = "<!-- summary:start -->", "<!-- summary:end -->"
#: The multiplication sign of the speedups in Markdown.
TIMES = "\u00d7"


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


@dataclass(frozen=True)
class Machine:
    """Where and when a run ran: what the machine note prints and the Markdown stamps show.

    ``blas`` holds threadpoolctl's record of every loaded BLAS (``internal_api``, ``version``,
    ``architecture``: the kernels it runs, ``num_threads``, ``prefix``, ``filepath``);
    ``environment`` maps each of :data:`ENVIRONMENT` to its value, None where it is unset.
    """

    date: str
    cpu: str
    cores: int
    python: str
    numpy: str
    numba: str
    threading_layer: str
    numba_threads: int
    blas: tuple[dict, ...]
    products: str
    large_products: str
    environment: dict[str, str | None]


def machine() -> Machine:
    """The machine, its libraries and the environment, now (UTC)."""
    from threadpoolctl import threadpool_info

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
    return Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), cpu=cpu,
        cores=os.cpu_count() or 0, python=platform.python_version(), numpy=np.__version__,
        numba=numba.__version__, threading_layer=layer,
        numba_threads=threads.get_num_threads()["numba"],
        blas=tuple(info for info in threadpool_info() if info.get("user_api") == "blas"),
        products=blas.PRODUCTS, large_products=blas.LARGE_PRODUCTS,
        environment={name: os.environ.get(name) for name in ENVIRONMENT})


def _blas_text(info: dict) -> str:
    """One BLAS of :attr:`Machine.blas`: library, version, kernels and threads."""
    return (f"{info.get('internal_api')} {info.get('version')} "
            f"({info.get('architecture') or '?'} kernels, {info.get('num_threads')} threads)")


def _environment_text(environment: dict[str, str | None], code: str = "") -> str:
    """``A=1, B=2; unset: C, D``, each name between ``code`` marks."""
    set_ = [f"{code}{name}={value}{code}" for name, value in environment.items()
            if value is not None]
    unset = [f"{code}{name}{code}" for name, value in environment.items() if value is None]
    parts = [", ".join(set_) or "none set"]
    if unset:
        parts.append("unset: " + ", ".join(unset))
    return "; ".join(parts)


def machine_note(where: Machine | None = None) -> list[str]:
    """Cores, CPU, numba and its threading layer, the BLAS libraries, the environment.

    Parameters
    ----------
    where : Machine, optional
        The machine to describe (default: :func:`machine`, now).

    Returns
    -------
    list of str
        One line each.
    """
    where = where or machine()
    return [f"cpu: {where.cpu}, {where.cores} cores",
            f"environment: {_environment_text(where.environment)}",
            f"python {where.python}, numpy {where.numpy}, numba {where.numba} (threading layer "
            f"{where.threading_layer}, {where.numba_threads} threads)",
            *(f"blas: {_blas_text(info)}: {info.get('prefix')}" for info in where.blas),
            f"matrix backend's BLAS products: {where.products}",
            f"matrix backend's large products on threads: {where.large_products}"]


def _rows(results: Sequence[Result],
          baseline: str) -> list[tuple[Case, dict[str, Result], float]]:
    """Per case, in run order: the case, its results by contender and the baseline's median."""
    rows = []
    for case in dict.fromkeys(result.case for result in results):
        row = {r.name: r for r in results if r.case == case}
        rows.append((case, row, row[baseline].seconds if baseline in row else math.nan))
    return rows


def table(results: Sequence[Result], names: Sequence[str], baseline: str) -> str:
    """Medians per call, the baseline's GFLOP/s, and its speedup over every other contender."""
    others = [name for name in names if name != baseline]
    header = (f"{'case':>20} | " + " ".join(f"{name:>10}" for name in names)
              + f" | {'GFLOP/s':>8} | " + " ".join(f"{'vs ' + name:>10}" for name in others))
    lines = [f"median time per gradient (us); GFLOP/s and speedups of {baseline} "
             f"(other's time / {baseline}'s)", header, "-" * len(header)]
    for case, row, base in _rows(results, baseline):
        cells = [_cell(row.get(name)) for name in names]
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


def _markdown_row(cells: Sequence[str]) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(cells) + " |"


def _markdown_cell(result: Result | None) -> str:
    """A median in microseconds (``*``: timed from one call), ``WRONG``, ``error`` or empty."""
    if result is None:
        return ""
    if result.status in ("ok", "slow"):
        return f"{result.seconds * 1e6:.1f}" + ("\\*" if result.status == "slow" else "")
    return "WRONG" if result.status == "WRONG" else "error"


def _ratio(value: float) -> str:
    """A ratio with two decimals and a multiplication sign; empty for NaN."""
    return "" if math.isnan(value) else f"{value:.2f}{TIMES}"


def markdown_table(results: Sequence[Result], names: Sequence[str], baseline: str) -> str:
    """:func:`table` in Markdown: medians in microseconds, the baseline's GFLOP/s and its
    speedups (other's time / baseline's), then what the marks mean."""
    others = [name for name in names if name != baseline]
    lines = [_markdown_row(["case", *names, f"{baseline} GFLOP/s",
                            *(f"{baseline} vs {name}" for name in others)]),
             _markdown_row(["---", *["---:"] * (len(names) + len(others) + 1)])]
    for case, row, base in _rows(results, baseline):
        lines.append(_markdown_row([
            case.label, *(_markdown_cell(row.get(name)) for name in names),
            "" if math.isnan(base) else f"{case.gemm_flops / base / 1e9:.1f}",
            *(_ratio(row[name].seconds / base) if name in row else "" for name in others)]))
    statuses = {r.status.split(":")[0] for r in results}
    notes = {"slow": "\\*: slower than `--max-call` per call, timed from one call.",
             "WRONG": "WRONG: its gradient disagreed with the reference; not timed.",
             "error": "error: it failed; not timed."}
    marks = [note for status, note in notes.items() if status in statuses]
    return "\n".join([*lines, *(["", "\n\n".join(marks)] if marks else [])])


def _file_names(text: str) -> str:
    """``text`` with every absolute path in it cut to its file name (no local folders in a
    published page)."""
    return " ".join(Path(word).name if os.path.isabs(word) else word for word in text.split(" "))


def _stamp(where: Machine) -> list[str]:
    """The Markdown page's list of where it ran: CPU, versions, threads, BLAS, environment."""
    return [f"- **CPU**: {where.cpu}, {where.cores} cores",
            f"- **Python** {where.python}, **NumPy** {where.numpy}, **Numba** {where.numba} "
            f"(threading layer `{where.threading_layer}`, {where.numba_threads} threads)",
            *(f"- **BLAS**: {_blas_text(info)}, `{_file_names(str(info.get('filepath')))}`"
              for info in where.blas),
            f"- **matrix backend's products**: `{_file_names(where.products)}`; large products "
            f"on threads: "
            f"`{where.large_products}`",
            f"- **Environment**: {_environment_text(where.environment, code='`')}"]


def markdown_page(results: Sequence[Result], names: Sequence[str], baseline: str,
                  where: Machine, command: Sequence[str], plot_ref: str | None = None) -> str:
    """The page of ``--markdown``: the stamp, the command, the table and the plot.

    Parameters
    ----------
    results, names, baseline
        As for :func:`table`.
    where : Machine
        The machine of the run.
    command : sequence of str
        The command line that produced it, program name first.
    plot_ref : str, optional
        The plot's path relative to the page, if there is one.

    Returns
    -------
    str
        MyST-compatible Markdown, with no heading, to be included in a page.
    """
    lines = [f"Generated on {where.date} by:", "", "```bash", shlex.join(command), "```", "",
             "on this machine:", "", *_stamp(where), "",
             f"Median time per gradient in microseconds, `{baseline}`'s GFLOP/s, and "
             f"`{baseline}`'s speedups: the other contender's time over `{baseline}`'s "
             f"(against `gemm`, the ratio to the GEMM floor).", "",
             markdown_table(results, names, baseline)]
    if plot_ref is not None:
        lines += ["", f"![Time per gradient and speedups of {baseline}]({plot_ref})"]
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    """A time in microseconds, milliseconds or seconds, whichever is below a thousand; empty
    for NaN."""
    if math.isnan(seconds):
        return ""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} \u00b5s"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def key_cases(cases: Sequence[Case]) -> list[Case]:
    """The smallest, a middle and the largest case by FLOPs, per dtype (all, if fewer)."""
    chosen = []
    for dtype in dict.fromkeys(case.dtype for case in cases):
        ranked = sorted((c for c in cases if c.dtype == dtype), key=lambda c: c.gemm_flops)
        chosen += [ranked[i] for i in dict.fromkeys((0, len(ranked) // 2, len(ranked) - 1))]
    return chosen


def _summary_cell(result: Result | None, base: float) -> str:
    """A median (:func:`_duration`) and, in brackets, its ratio to ``base`` unless that is NaN;
    ``WRONG``, ``error`` or empty for a result that was not timed."""
    if result is None or result.status not in ("ok", "slow"):
        return _markdown_cell(result)
    ratio = _ratio(result.seconds / base)
    return _duration(result.seconds) + (f" ({ratio})" if ratio else "")


def readme_summary(results: Sequence[Result], names: Sequence[str], baseline: str,
                   where: Machine, command: Sequence[str]) -> str:
    """The README's summary: medians of the baseline and the peers in a few cases
    (:func:`key_cases`), the baseline's speedup over each peer, and a one-line stamp."""
    shown = [baseline, *(name for name in names if name not in BACKENDS)]
    rows = {case: (row, base) for case, row, base in _rows(results, baseline)}
    lines = [f"Median time per gradient; in brackets, the peer's time over `{baseline}`'s "
             f"(against `gemm`, the ratio to the GEMM floor).", "",
             _markdown_row(["case", *shown]), _markdown_row(["---", *["---:"] * len(shown)])]
    for case in key_cases(list(rows)):
        row, base = rows[case]
        cells = [_summary_cell(row.get(name), math.nan if name == baseline else base)
                 for name in shown]
        lines.append(_markdown_row([case.label, *cells]))
    kernels = " and ".join(f"{info.get('internal_api')} {info.get('version')} "
                           f"({info.get('architecture') or '?'} kernels)" for info in where.blas)
    lines += ["", f"_Generated on {where.date} on {where.cpu} ({where.cores} cores), BLAS "
                  f"{kernels or 'none'}, by `{shlex.join(command)}`._"]
    return "\n".join(lines)


def summary_problem(text: str) -> str | None:
    """Why ``--readme`` cannot write its summary into ``text``; None when it can."""
    if text.count(SUMMARY_START) != 1 or text.count(SUMMARY_END) != 1 \
            or text.index(SUMMARY_START) > text.index(SUMMARY_END):
        return f"expected the markers {SUMMARY_START} and {SUMMARY_END}, once each, in that order"
    return None


def replace_summary(text: str, summary: str) -> str:
    """``text`` with what lies between its summary markers replaced by ``summary``, in the line
    endings that follow the start marker; the rest of ``text`` is left as it is.

    Raises
    ------
    ValueError
        When the markers are not there once each, in order (:func:`summary_problem`).
    """
    problem = summary_problem(text)
    if problem is not None:
        raise ValueError(problem)
    head, rest = text.split(SUMMARY_START)
    tail = rest.split(SUMMARY_END)[1]
    newline = "\r\n" if rest.startswith("\r\n") else "\n"  # the file's own line endings
    inside = newline.join([*summary.splitlines(), ""])
    return f"{head}{SUMMARY_START}{newline}{inside}{SUMMARY_END}{tail}"


@dataclass(frozen=True)
class Outputs:
    """The files a run writes (None: not asked for) and the command line that asked for them."""

    json: Path | None = None
    plot: Path | None = None
    markdown: Path | None = None
    readme: Path | None = None
    command: tuple[str, ...] = ("fastprop", "compare")

    def plot_ref(self) -> str | None:
        """The plot's path relative to the Markdown page's folder (its name when beside it)."""
        if self.plot is None or self.markdown is None:
            return None
        try:
            return Path(os.path.relpath(self.plot.resolve(),
                                        self.markdown.resolve().parent)).as_posix()
        except ValueError:  # another drive
            return self.plot.resolve().as_posix()


def write_outputs(results: Sequence[Result], names: Sequence[str], baseline: str,
                  where: Machine, outputs: Outputs) -> None:
    """Write the files of ``outputs`` from one run's results; nothing is timed again."""
    if outputs.json is not None:
        outputs.json.write_text(json.dumps(to_json(results, machine_note(where)), indent=1))
        print(f"raw numbers: {outputs.json}")
    if outputs.plot is not None:
        plot(results, names, baseline, outputs.plot)
        print(f"plot: {outputs.plot}")
    if outputs.markdown is not None:
        outputs.markdown.write_text(markdown_page(results, names, baseline, where,
                                                  outputs.command, outputs.plot_ref()),
                                    encoding="utf-8")
        print(f"page: {outputs.markdown}")
    if outputs.readme is not None:
        text = outputs.readme.read_bytes().decode("utf-8")  # line endings kept as they are
        try:
            text = replace_summary(text, readme_summary(results, names, baseline, where,
                                                        outputs.command))
        except ValueError as error:
            raise SystemExit(f"--readme {outputs.readme}: {error}") from None
        outputs.readme.write_bytes(text.encode("utf-8"))
        print(f"summary: {outputs.readme}")


def run(cases: Sequence[Case], names: Sequence[str], baseline: str, budget_s: float,
        max_call_s: float, outputs: Outputs | None = None, progress: bool = True) -> int:
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
    where = machine()
    print("\n" + "\n".join(machine_note(where)))
    problems = [f"{r.name} at {r.case.label}: {r.status}" for r in results
                if r.status not in ("ok", "slow")]
    for line in problems:
        print(f"WARNING: {line}")
    write_outputs(results, names, baseline, where, outputs or Outputs())
    broken = [r for r in results if r.name in BACKENDS and r.status not in ("ok", "slow")]
    return 1 if broken else 0
