"""What a comparison reports: the table on stdout, the speed targets' verdicts, and the files
asked for (JSON, plot, Markdown page, README summary), all from the same timings."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .cases import Target
from .machine import Machine, machine_note
from .markdown import markdown_page, readme_summary, replace_summary
from .plot import plot
from .results import TIMED, Result, rows

__all__ = ["Outputs", "table", "to_json", "verdicts", "write_outputs"]


def _cell(result: Result | None) -> str:
    """A median in microseconds (``*``: timed from one call), ``WRONG``, ``error`` or blank."""
    if result is None:
        return f"{'':>10}"
    if result.status in TIMED:
        return f"{result.seconds * 1e6:9.1f}" + ("*" if result.status == "slow" else " ")
    return f"{'WRONG' if result.status == 'WRONG' else 'error':>10}"


def table(results: Sequence[Result], names: Sequence[str], baseline: str) -> str:
    """Medians per call, the baseline's GFLOP/s, and its speedup over every other contender."""
    others = [name for name in names if name != baseline]
    header = (f"{'case':>20} | " + " ".join(f"{name:>10}" for name in names)
              + f" | {'GFLOP/s':>8} | " + " ".join(f"{'vs ' + name:>10}" for name in others))
    lines = [f"median time per gradient (us); GFLOP/s and speedups of {baseline} "
             f"(other's time / {baseline}'s)", header, "-" * len(header)]
    for case, row, base in rows(results, baseline):
        cells = [_cell(row.get(name)) for name in names]
        speedups = [f"{row[name].seconds / base:10.2f}" if name in row else f"{'':10}"
                    for name in others]
        lines.append(f"{case.label:>20} | " + " ".join(cells)
                     + f" | {case.gemm_flops / base / 1e9:8.1f} | " + " ".join(speedups))
    return "\n".join(lines)


def verdicts(results: Sequence[Result], baseline: str, targets: Sequence[Target]) -> list[str]:
    """One line per target and case of its shape that was run: the baseline's speedup over the
    target's peer and PASS or MISS, or ``not measured`` where either was not timed."""
    lines = []
    for target in targets:
        for case, row, base in rows(results, baseline):
            if case.shape != target.shape:
                continue
            speedup = row[target.peer].seconds / base if target.peer in row else math.nan
            found = "not measured" if math.isnan(speedup) else f"{speedup:.2f}x"
            verdict = ("" if math.isnan(speedup)
                       else ": PASS" if speedup >= target.speedup else ": MISS")
            lines.append(f"target at {case.label}: {baseline}'s speedup over {target.peer} "
                         f"{found}, at least {target.speedup:.2f}x wanted{verdict}")
    return lines


def to_json(results: Sequence[Result], note: Sequence[str]) -> dict:
    """Every number of a run, raw per-call times included."""
    return {"machine": list(note), "results": [
        {**asdict(r.case), "name": r.name, "status": r.status,
         "error": None if math.isnan(r.error) else r.error,
         "median_s": None if math.isnan(r.seconds) else r.seconds,
         "times_s": r.timings.times, "inner_calls": r.timings.k} for r in results]}


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
