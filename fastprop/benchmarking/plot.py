"""The plot of ``fastprop compare --plot``: time per gradient and the baseline's speedups."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .results import Result

__all__ = ["plot"]


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
