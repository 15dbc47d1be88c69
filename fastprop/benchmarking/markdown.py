"""The Markdown of a comparison: the documentation's page and the README's summary.

Both are generated, never typed by hand: ``fastprop compare --markdown`` writes the page (where
and when it ran, the command, the table, the plot) and ``--readme`` rewrites the summary between
a README's markers, from the same timings.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from ..backends import BACKENDS
from .cases import Case
from .machine import Machine, blas_text, environment_text
from .results import TIMED, Result, rows

__all__ = [
    "SUMMARY_END",
    "SUMMARY_START",
    "key_cases",
    "markdown_page",
    "markdown_table",
    "readme_summary",
    "replace_summary",
    "summary_problem",
]

#: The lines of a README between which ``--readme`` writes its summary.
SUMMARY_START, SUMMARY_END = "<!-- summary:start -->", "<!-- summary:end -->"
#: The multiplication sign of the speedups in Markdown.
TIMES = "\u00d7"


def _row(cells: Sequence[str]) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(cells) + " |"


def _cell(result: Result | None) -> str:
    """A median in microseconds (``*``: timed from one call), ``WRONG``, ``error`` or empty."""
    if result is None:
        return ""
    if result.status in TIMED:
        return f"{result.seconds * 1e6:.1f}" + ("\\*" if result.status == "slow" else "")
    return "WRONG" if result.status == "WRONG" else "error"


def _ratio(value: float) -> str:
    """A ratio with two decimals and a multiplication sign; empty for NaN."""
    return "" if math.isnan(value) else f"{value:.2f}{TIMES}"


def markdown_table(results: Sequence[Result], names: Sequence[str], baseline: str) -> str:
    """The table of stdout in Markdown: medians in microseconds, the baseline's GFLOP/s and its
    speedups (other's time / baseline's), then what the marks mean."""
    others = [name for name in names if name != baseline]
    lines = [_row(["case", *names, f"{baseline} GFLOP/s",
                   *(f"{baseline} vs {name}" for name in others)]),
             _row(["---", *["---:"] * (len(names) + len(others) + 1)])]
    for case, row, base in rows(results, baseline):
        lines.append(_row([
            case.label, *(_cell(row.get(name)) for name in names),
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
    """The page's list of where it ran: CPU, GPU, versions, threads, BLAS, environment."""
    return [f"- **CPU**: {where.cpu}, {where.cores} cores",
            *([f"- **GPU**: {where.gpu}"] if where.gpu is not None else []),
            f"- **Python** {where.python}, **NumPy** {where.numpy}, **Numba** {where.numba} "
            f"(threading layer `{where.threading_layer}`, {where.numba_threads} threads)",
            *(f"- **BLAS**: {blas_text(info)}, `{_file_names(str(info.get('filepath')))}`"
              for info in where.blas),
            f"- **matrix backend's products**: `{_file_names(where.products)}`; large products "
            f"on threads: `{where.large_products}`",
            f"- **Environment**: {environment_text(where.environment, code='`')}"]


def markdown_page(results: Sequence[Result], names: Sequence[str], baseline: str,
                  where: Machine, command: Sequence[str], plot_ref: str | None = None) -> str:
    """The page of ``--markdown``: the stamp, the command, the table and the plot.

    Parameters
    ----------
    results, names, baseline
        As for :func:`markdown_table`.
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
    if result is None or result.status not in TIMED:
        return _cell(result)
    ratio = _ratio(result.seconds / base)
    return _duration(result.seconds) + (f" ({ratio})" if ratio else "")


def readme_summary(results: Sequence[Result], names: Sequence[str], baseline: str,
                   where: Machine, command: Sequence[str]) -> str:
    """The README's summary: medians of the baseline and the peers in a few cases
    (:func:`key_cases`), the baseline's speedup over each peer, and a one-line stamp."""
    shown = [baseline, *(name for name in names if name not in BACKENDS)]
    by_case = {case: (row, base) for case, row, base in rows(results, baseline)}
    lines = [f"Median time per gradient; in brackets, the peer's time over `{baseline}`'s "
             f"(against `gemm`, the ratio to the GEMM floor).", "",
             _row(["case", *shown]), _row(["---", *["---:"] * len(shown)])]
    for case in key_cases(list(by_case)):
        row, base = by_case[case]
        cells = [_summary_cell(row.get(name), math.nan if name == baseline else base)
                 for name in shown]
        lines.append(_row([case.label, *cells]))
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
