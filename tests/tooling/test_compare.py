"""``fastprop compare``: the command runs, checks before it times, and writes its files."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys

import numba
import numpy as np
import pytest

import fastprop as fp
from fastprop.benchmarking import compile_ahead as compile_ahead_module
from fastprop.benchmarking import markdown
from fastprop.benchmarking.cases import PRESETS, Case, Shape, cross, parse_shapes
from fastprop.benchmarking.machine import machine
from fastprop.benchmarking.problems import problem
from fastprop.benchmarking.report import Outputs
from fastprop.benchmarking.results import Result
from fastprop.benchmarking.timing import Timings
from fastprop.cli import main, parse_args


def test_compare_writes_table_json_and_plot(tmp_path, capsys):
    json_path, plot_path = tmp_path / "run.json", tmp_path / "run.png"
    status = main(["compare", "--cases", "1x8x2,3x5x3", "--dtype", "float32,float64",
                   "--peers", "numpy,gemm", "--seconds", "0.05", "--no-progress",
                   "--json", str(json_path), "--plot", str(plot_path)])
    assert status == 0
    out = capsys.readouterr().out
    assert "1x8x2 float32" in out and "3x5x3 float64" in out and "blas:" in out
    results = json.loads(json_path.read_text())["results"]
    assert {r["name"] for r in results} == {"matrix", "naive", "numpy", "gemm"}
    assert len(results) == 4 * 4
    for r in results:
        assert r["status"] == "ok" and r["median_s"] > 0 and r["times_s"]
        assert r["name"] == "gemm" or r["error"] <= (1e-4 if r["dtype"] == "float32" else 1e-10)
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class OffByABit:
    """A backend whose gradients have their first entry off by 1e-3, the rest as ``backend``'s."""

    def __init__(self, backend: object) -> None:
        self.backend = backend

    def __getattr__(self, name: str) -> object:
        return getattr(self.backend, name)

    def value_and_grad(self, *args: object, **kwargs: object) -> tuple[float, np.ndarray]:
        loss, grad = self.backend.value_and_grad(*args, **kwargs)
        grad[0] += 1e-3
        return loss, grad


def test_a_wrong_backend_is_reported_not_timed(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(fp.BACKENDS, "naive", OffByABit(fp.BACKENDS["naive"]))
    json_path = tmp_path / "run.json"
    status = main(["compare", "--cases", "2x6x2", "--peers", "numpy", "--seconds", "0.05",
                   "--no-progress", "--json", str(json_path)])
    assert status == 1
    assert "WARNING: naive at 2x6x2 float64: WRONG" in capsys.readouterr().out
    naive, = [r for r in json.loads(json_path.read_text())["results"] if r["name"] == "naive"]
    assert naive["median_s"] is None and naive["times_s"] == []


@pytest.mark.parametrize("argv", [
    ["compare", "--cases", "1x32"], ["compare", "--cases", "0x8x2"], ["compare", "--batch", "a"],
    ["compare", "--backends", "gpu"], ["compare", "--dtype", "float16"],
    ["compare", "--peers", "tensorflow"],
])
def test_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as error:
        main(argv)
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert "expected" in message or "must be among" in message


def test_threads_setting():
    before = fp.get_num_threads()
    try:
        fp.set_num_threads(1)
        assert fp.get_num_threads() == {"numba": 1, "blas": 1}
    finally:
        fp.set_num_threads(before["numba"])


def test_case_flops():
    case = Case(64, 128, 4, "float64")
    assert case.sizes == [128] * 5
    assert case.gemm_flops == 2 * 64 * 128 * 128 * 11
    assert np.isclose(case.gemm_flops, 2 * 64 * 128**2 * (4 + 4 + 3))


def test_one_notation_for_a_case():
    case = Case.of("64x128x4", "float32")
    assert case == Case(64, 128, 4, "float32") == Case.of(Shape(64, 128, 4), "float32")
    assert case.shape == (64, 128, 4) and str(case.shape) == "64x128x4"
    assert case.label == "64x128x4 float32"
    assert parse_shapes("1x8x2,3x5x3,1x8x2") == [(1, 8, 2), (3, 5, 3)]
    assert [c.label for c in cross(parse_shapes("1x8x2,3x5x3"), ["float64", "float32"])] == [
        "1x8x2 float64", "3x5x3 float64", "1x8x2 float32", "3x5x3 float32"]
    for text in ("1x8", "1x8x2x3", "0x8x2", "ax8x2", "", "1x8x2,"):
        with pytest.raises(ValueError, match="BATCHxWIDTHxDEPTH"):
            parse_shapes(text)


def test_a_preset_fills_the_options_left_out():
    gpu = PRESETS["gpu"]
    args = parse_args(["compare", "--preset", "gpu", "--peers", "numpy"])  # (runs without a GPU)
    assert (args.backends, args.peers, args.dtype) == (list(gpu.backends), ["numpy"],
                                                       ["float32"])
    assert gpu.peers == ("torch-cuda", "torch-cuda-graph")
    assert gpu.baseline == "cuda" and {t.shape for t in gpu.targets} <= set(gpu.quick_shapes)
    assert set(gpu.quick_shapes) <= set(gpu.shapes)
    chosen = parse_args(["compare", "--preset", "asv", "--backends", "matrix", "--peers", "numpy",
                         "--dtype", "float32"])
    assert (chosen.backends, chosen.peers, chosen.dtype) == (["matrix"], ["numpy"], ["float32"])
    default = parse_args(["compare"])
    assert (default.backends, default.peers, default.dtype) == (list(fp.BACKENDS), None,
                                                                ["float64"])
    for preset in PRESETS.values():
        assert preset.dtypes and set(preset.dtypes) <= {"float32", "float64"}


# -- the Markdown page and the README summary ----------------------------------------------

README_TEXT = ("# A project\r\n\r\nSome text, ünïcode kept.\r\n\r\n## Performance\r\n\r\n"
               "<!-- summary:start -->\r\nAn old table.\r\n<!-- summary:end -->\r\n\r\n"
               "A sentence after it.\r\n")
#: The compare options of the runs below: one tiny case, two peers, a short timing.
TINY = ["compare", "--cases", "1x8x2", "--peers", "numpy,gemm", "--seconds", "0.05",
        "--no-progress"]


def _outside_summary(text: str) -> tuple[str, str]:
    """What lies before the summary's start marker and after its end marker."""
    return text.split(markdown.SUMMARY_START)[0], text.split(markdown.SUMMARY_END)[1]


def test_compare_writes_a_markdown_page_and_a_readme_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")  # read by OpenBLAS at load only
    docs, readme = tmp_path / "docs", tmp_path / "README.md"
    docs.mkdir()
    readme.write_bytes(README_TEXT.encode())
    page, plot_path = docs / "performance.md", docs / "performance.png"
    argv = [*TINY, "--markdown", str(page), "--plot", str(plot_path), "--readme", str(readme)]
    assert main(argv) == 0
    assert f"page: {page}" in capsys.readouterr().out
    text = page.read_text()
    # The stamp: date, CPU and cores, versions, threads, BLAS kernels, the environment.
    assert re.search(r"Generated on \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    for field in ("**CPU**", " cores", f"**Python** {platform.python_version()}",
                  f"**NumPy** {np.__version__}", f"**Numba** {numba.__version__}",
                  "threading layer", "**BLAS**: ", " kernels, ",
                  "`OPENBLAS_L2_SIZE=1048576`", "`OPENBLAS_THREAD_TIMEOUT"):
        assert field in text, field
    assert re.search(r"unset: [^\n]*`OPENBLAS_CORETYPE`", text)
    assert "```bash\n" + shlex.join(["fastprop", *argv]) + "\n```" in text
    # The table: a row per case, a column per contender, the speedups.
    assert ("| case | matrix | naive | numpy | gemm | matrix GFLOP/s | matrix vs naive | "
            "matrix vs numpy | matrix vs gemm |") in text
    (row,) = [line for line in text.splitlines() if line.startswith("| 1x8x2 float64 |")]
    values = [float(cell.strip().rstrip("\u00d7")) for cell in row.strip("|").split("|")[1:]]
    assert len(values) == 8 and min(values[:4]) > 0 and min(values[5:]) > 0  # 4: GFLOP/s
    assert "![Time per gradient and speedups of matrix](performance.png)" in text
    assert plot_path.read_bytes()[:4] == b"\x89PNG"
    # The README: its summary replaced, the rest byte for byte as it was.
    new = readme.read_bytes().decode()
    assert _outside_summary(new) == _outside_summary(README_TEXT)
    summary = new.split("<!-- summary:start -->")[1].split("<!-- summary:end -->")[0]
    assert "An old table." not in summary
    assert "| case | matrix | numpy | gemm |" in summary and "| 1x8x2 float64 | " in summary
    assert summary.count("\u00d7)") == 2  # matrix's speedup over numpy and over gemm
    assert "fastprop compare --cases 1x8x2" in summary and "--markdown" in summary
    assert re.search(r"_Generated on \d{4}-\d\d-\d\d [^\n]* cores\), BLAS [^\n]* kernels\)",
                     summary)


def test_a_page_without_plot_shows_no_image(tmp_path):
    case = Case(1, 8, 2, "float64")
    results = [Result(case, name, "ok", 0.0, Timings(times=[seconds]))
               for name, seconds in (("matrix", 1e-5), ("numpy", 4e-5))]
    results.append(Result(Case(4, 8, 2, "float64"), "matrix", "slow", 0.0, Timings(times=[3.0])))
    text = markdown.markdown_page(results, ["matrix", "numpy"], "matrix", machine(),
                         ["fastprop", "compare"])
    assert "![" not in text
    assert "| 1x8x2 float64 | 10.0 | 40.0 | " in text and "| 4.00\u00d7 |" in text
    assert "| 4x8x2 float64 | 3000000.0\\* |  |" in text and "\\*: slower than" in text


@pytest.mark.parametrize("plot_path, expected", [
    ("docs/performance.png", "performance.png"), ("docs/img/p.svg", "img/p.svg"),
    ("elsewhere/p.png", "../elsewhere/p.png"),
])
def test_the_page_refers_to_its_plot_by_a_relative_path(tmp_path, plot_path, expected):
    outputs = Outputs(plot=tmp_path / plot_path, markdown=tmp_path / "docs" / "performance.md")
    assert outputs.plot_ref() == expected
    assert Outputs(plot=tmp_path / plot_path).plot_ref() is None


def test_key_cases_of_the_default_grid():
    cases = cross(PRESETS["default"].shapes, ["float64", "float32"])
    assert [case.label for case in markdown.key_cases(cases)] == [
        f"{shape} {dtype}" for dtype in ("float64", "float32")
        for shape in ("1x32x4", "64x64x4", "1024x1024x4")]


@pytest.mark.parametrize("text", [
    "no markers\n", "<!-- summary:start -->\nonly the start\n",
    "<!-- summary:end -->\n<!-- summary:start -->\n",
    "<!-- summary:start -->\n<!-- summary:end -->\n<!-- summary:start -->\n<!-- summary:end -->\n",
])
def test_a_readme_without_its_markers_is_a_usage_error(text, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(SystemExit) as exited:
        main([*TINY, "--readme", str(readme)])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("usage: fastprop") and "argument --readme" in captured.err
    assert "<!-- summary:start --> and <!-- summary:end -->" in captured.err
    assert captured.out == "" and readme.read_text() == text  # nothing timed, nothing written


@pytest.mark.parametrize("options", [
    ["--markdown", "{tmp}/missing/page.md"], ["--markdown", "{tmp}"], ["--markdown", ""],
    ["--readme", "{tmp}/missing.md"], ["--readme", "{tmp}"],
    ["--markdown", "{tmp}/same.md", "--readme", "{tmp}/same.md"],
    ["--markdown", "{tmp}/same.png", "--plot", "{tmp}/same.png"],
])
def test_bad_markdown_and_readme_paths_are_usage_errors(options, tmp_path, capsys):
    (tmp_path / "same.md").write_text("<!-- summary:start -->\n<!-- summary:end -->\n")
    with pytest.raises(SystemExit) as exited:
        main([*TINY, *(option.format(tmp=tmp_path) for option in options)])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("usage: fastprop") and captured.out == ""


def test_replace_summary_keeps_everything_outside_the_markers():
    replace_summary = markdown.replace_summary
    new = replace_summary(README_TEXT, "| a |\n| b |")
    assert _outside_summary(new) == _outside_summary(README_TEXT)
    # The file's own line endings, inside too.
    assert "<!-- summary:start -->\r\n| a |\r\n| b |\r\n<!-- summary:end -->" in new
    assert replace_summary("<!-- summary:start -->\n<!-- summary:end -->", "x") == (
        "<!-- summary:start -->\nx\n<!-- summary:end -->")
    with pytest.raises(ValueError, match="summary:start"):
        replace_summary("no markers", "x")


def test_compare_times_the_distributed_gradient(tmp_path, capsys):
    """``--dask`` adds fastprop.dask.value_and_grad on the embedded cluster, checked against
    the reference before it is timed, with a line for its overhead over the baseline."""
    pytest.importorskip("distributed")
    json_path = tmp_path / "run.json"
    assert main(["compare", "--dask", "--quick", "--cases", "16x32x4", "--dtype", "float64",
                 "--no-progress", "--json", str(json_path)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.strip().startswith("case |"))
    assert " dask " in header and "vs dask" in header
    assert re.search(r"dask at 16x32x4 float64: [\d.]+ us per distributed gradient, "
                     r"-?[\d.]+ us over matrix's", out), out
    dask = [r for r in json.loads(json_path.read_text())["results"] if r["name"] == "dask"]
    assert len(dask) == 1 and dask[0]["status"] == "ok" and dask[0]["error"] <= 1e-10


#: With an empty numba cache: compile a case's kernels ahead, then run them here, where they
#: must load from the cache that the processes of compile_ahead filled.
COMPILE_AHEAD = """
import numpy as np
import fastprop as fp
from fastprop.benchmarking.cases import Case
from fastprop.benchmarking.compile_ahead import compile_ahead
from fastprop.benchmarking.problems import problem

case = Case.of("1x8x2", "float32")
compile_ahead(case, ["matrix", "naive", "numpy"])
net, params, X, Y = problem(case)
for backend in ("matrix", "naive"):
    net.value_and_grad(params, X, Y, backend=backend, out=np.empty_like(params))
    kernel = fp.BACKENDS[backend].gradient_kernel(net.spec, case.batch)[0]
    stats = kernel.stats
    assert any(stats.cache_hits.values()) and not any(stats.cache_misses.values()), stats
"""


def test_new_kernels_are_compiled_ahead_in_other_processes(tmp_path):
    done = subprocess.run([sys.executable, "-c", COMPILE_AHEAD], capture_output=True, text=True,
                          env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)), timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_kernels_this_process_has_are_not_compiled_ahead(monkeypatch):
    case = Case.of("1x8x2", "float64")
    net, params, X, Y = problem(case)
    for backend in ("matrix", "naive"):
        net.value_and_grad(params, X, Y, backend=backend, out=np.empty_like(params))

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"started a process: {args}")

    monkeypatch.setattr(compile_ahead_module.subprocess, "run", no_process)
    compile_ahead_module.compile_ahead(case, ["matrix", "naive", "numpy"])
    # (one new kernel compiles where it runs: no process either)
    compile_ahead_module.compile_ahead(Case.of("1x8x2", "float32"), ["matrix", "numpy"])
