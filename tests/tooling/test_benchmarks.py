"""The asv suite in bench/: its grid, that it times the problems of ``fastprop compare``, that
every contender computes the same gradient, its skips, its measurements, the older commits it
still runs against, ``asv check``, and the dashboard check in a headless browser (these last two
only where asv, chromium and npm are installed)."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastprop as fp
from fastprop.benchmarking import cases, comparison, peers
from fastprop.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # bench/ is a package at the root, not installed
    sys.path.insert(0, str(REPO_ROOT))

from bench import check_dashboard, common, compilation, gpu_targets, metrics  # noqa: E402

HAS_ASV = importlib.util.find_spec("asv") is not None
SMALL = "16x32x4"


def test_grid_and_contender_lists():
    # asv refers to parameter combinations by index: these lists only ever grow at their end.
    assert common.CASES[:12] == (
        "1x32x2", "1x32x4", "1x32x8", "16x32x4", "64x64x4", "64x128x4", "1x256x4", "256x256x4",
        "256x256x8", "64x512x4", "1024x1024x4", "512x2048x3")
    assert common.DTYPES == ("float32", "float64")
    assert gpu_targets.GPU_CASES[:7] == ("4096x1024x4", "65536x64x4", "1x32x4", "4096x64x4",
                                         "4096x256x4", "65536x128x4", "262144x64x4")
    assert gpu_targets.GPU_CONTENDERS == ("cuda", "cuda-naive", "torch-cuda", "torch-cuda-graph")
    # The cases of fastprop compare's presets, read from this working tree's file.
    assert Path(common.cases.__file__) == Path(cases.__file__)
    assert common.CASES == tuple(str(shape) for shape in cases.PRESETS["asv"].shapes)
    assert gpu_targets.GPU_CASES == tuple(str(shape) for shape in cases.PRESETS["gpu"].shapes)
    assert common.Shape.parse("512x2048x3") == (512, 2048, 3)
    # Stable order first (asv refers to parameter combinations by index), then anything new.
    assert common.CONTENDERS[:6] == ("matrix", "naive", "numpy", "torch", "jax", "gemm")
    assert set(fp.BACKENDS) <= set(common.BACKENDS) <= set(common.CONTENDERS)
    assert set(peers.PEERS) <= set(common.CONTENDERS)
    assert len(set(common.CONTENDERS)) == len(common.CONTENDERS)


@pytest.mark.parametrize("dtype", common.DTYPES)
@pytest.mark.parametrize("case", ["1x32x4", SMALL])
def test_asv_times_the_problem_of_fastprop_compare(case, dtype, monkeypatch, capsys):
    built, build = [], comparison.problem

    def problem(*args):
        built.append(made := build(*args))
        return made

    monkeypatch.setattr(comparison, "problem", problem)
    assert main(["compare", "--cases", case, "--dtype", dtype, "--backends", "matrix", "--peers",
                 "numpy", "--seconds", "0.01", "--no-progress"]) == 0
    (compared,) = built
    asv = common.problem(case, dtype)
    assert asv.net == compared.net and list(asv.net.sizes) == cases.Case.of(case, dtype).sizes
    for ours, theirs in zip(asv[1:], compared[1:], strict=True):
        assert ours.dtype == theirs.dtype == np.dtype(dtype)
        assert ours.tobytes() == theirs.tobytes()  # bitwise
    assert np.abs(asv.params).max() > 0 and asv.X.shape == (cases.Shape.parse(case).batch,
                                                            asv.net.sizes[0])


@pytest.mark.parametrize("dtype", common.DTYPES)
def test_every_contender_computes_the_same_gradient(dtype):
    p = common.problem(SMALL, dtype)
    as64 = [a.astype(np.float64) for a in (p.params, p.X, p.Y)]
    ref_loss, ref_grad = peers.make_numpy(p.net.sizes, np.float64)(*as64)
    tolerance = 1e-10 if dtype == "float64" else 1e-4
    checked = []
    for name in common.CONTENDERS:
        if name == "gemm" or common.skip_reason(name, SMALL) is not None:
            continue
        loss, grad = common.contender(name, SMALL, dtype).call()
        assert abs(loss - ref_loss) <= tolerance * abs(ref_loss), name
        np.testing.assert_allclose(np.asarray(grad, np.float64), ref_grad, rtol=0,
                                   atol=tolerance * np.abs(ref_grad).max(), err_msg=name)
        checked.append(name)
    assert {"matrix", "naive", "numpy"} <= set(checked)


def test_gemm_floor_and_flop_count():
    floor = common.contender("gemm", SMALL, "float64")
    assert floor.call() is None and floor.seconds > 0
    # 3 products per layer but the first, which has no delta product: 2 * B * H^2 * (3M - 1).
    assert common.gflops(SMALL, "float64", 1e-9) == pytest.approx(2 * 16 * 32**2 * 11)


def test_skips(monkeypatch):
    with pytest.raises(NotImplementedError, match="naive backend takes seconds"):
        common.contender("naive", "1024x1024x4", "float64")
    assert common.skip_reason("matrix", "1024x1024x4") is None
    monkeypatch.setitem(peers.PEERS, "missing", (peers.make_numpy, "no_such_module_here"))
    assert common.skip_reason("missing", SMALL) == "no_such_module_here is not installed"
    monkeypatch.delenv(common.SPIN_VARIABLE, raising=False)
    with pytest.raises(NotImplementedError, match=common.SPIN_VARIABLE):
        common.measured("matrix", "numpy", case=SMALL, dtype="float64")
    (single,) = common.measured("matrix", case=SMALL, dtype="float64")  # one alone: no need
    assert single.seconds > 0


def test_metrics_are_measured(monkeypatch):
    monkeypatch.setenv(common.SPIN_VARIABLE, "18")
    args = ("matrix", SMALL, "float64")
    for benchmark, track in ((metrics.SpeedupOverNumpy, "track_speedup_over_numpy"),
                             (metrics.SpeedupOverNaive, "track_speedup_over_naive"),
                             (metrics.FractionOfGemmFloor, "track_fraction_of_gemm_floor"),
                             (metrics.Throughput, "track_gflops")):
        instance = benchmark()
        instance.setup(*args)
        value = getattr(instance, track)(*args)
        assert math.isfinite(value) and value > 0, track
        assert getattr(benchmark, track).unit in ("x", "fraction", "GFLOP/s")


def test_first_calls_are_measured_in_fresh_processes():
    seconds = compilation.first_call_seconds("matrix", "float32")
    assert set(seconds) == {key for key, _ in compilation.COLUMNS}
    extras = ("read_only", "labels")  # differences of two calls: about 0 when nothing compiles
    assert all(value > 0 for key, value in seconds.items() if key not in extras), seconds
    assert all(math.isfinite(seconds[key]) and seconds[key] < seconds["compile"]
               for key in extras), seconds
    # Compiling takes longer than loading what was compiled, and includes LLVM's share; every
    # first call includes numba's own start.
    assert seconds["compile"] > seconds["warm_import"] + seconds["warm_first"], seconds
    assert seconds["compile_llvm"] < seconds["compile"], seconds
    assert seconds["numba_start"] < seconds["compile"], seconds


def test_first_call_table_is_printed_and_written(tmp_path, monkeypatch, capsys):
    measured = []

    def fake(backend, dtype):
        measured.append((backend, dtype))
        seconds = {key: 0.5 + i for i, (key, _) in enumerate(compilation.COLUMNS)}
        return {**seconds, "warm_fit": math.nan} if dtype == "float32" else seconds

    monkeypatch.setattr(compilation, "first_call_seconds", fake)
    compilation.main(["--backends", "naive", "--dtypes", "float64", "float32",
                      "--markdown", str(tmp_path / "first.md")])
    assert measured == [("naive", "float64"), ("naive", "float32")]
    written = (tmp_path / "first.md").read_text()
    assert written in capsys.readouterr().out
    header, rule, *rows = written.splitlines()
    assert header.count("|") == rule.count("|") == len(compilation.COLUMNS) + 3
    cells = [f"{0.5 + i}0 s" for i in range(len(compilation.COLUMNS))]  # 0.50 s, 1.50 s...
    assert rows[0] == "| naive | float64 | " + " | ".join(cells) + " |"
    cells[[key for key, _ in compilation.COLUMNS].index("warm_fit")] = "n/a"  # (no sklearn)
    assert rows[1] == "| naive | float32 | " + " | ".join(cells) + " |"


#: Runs bench/common.py where the installed fastprop is older: ``{setup}`` makes it so.
OLDER_COMMIT = """
import sys, types
import fastprop, fastprop.benchmarking.problems as problems
{setup}
sys.modules["fastprop.benchmarking"] = None  # (import fastprop.benchmarking fails)
from bench import common, compilation
assert common.CASES[:2] == ("1x32x2", "1x32x4")
compilation.CompileTime().setup({{}}, "matrix", "float32")  # (needs no problem)
try:
    net, params, X, Y = common.problem("16x32x4", "float64")
except NotImplementedError as skipped:
    print("skipped:", skipped)
    for name in ("matrix", "numpy"):
        try:
            common.contender(name, "16x32x4", "float64")
        except NotImplementedError:
            continue
        raise AssertionError(name + " was not skipped")
else:
    new = problems.problem(common.cases.Case.of("16x32x4", "float64"))
    assert all(a.tobytes() == b.tobytes() for a, b in zip((params, X, Y), new[1:]))
    print("same problem")
"""
#: The modules of the commits before fastprop.benchmarking, under their names then.
OLD_NAMES = """
from fastprop.benchmarking import peers, timing
compare = types.ModuleType("fastprop.compare")
compare._problem = problems.problem
for name, module in {"peers": peers, "timing": timing, "compare": compare}.items():
    sys.modules["fastprop." + name] = module
"""


@pytest.mark.parametrize("setup, expected", [
    (OLD_NAMES, "same problem"), ("", "skipped: this fastprop has no fastprop.benchmarking")])
def test_the_suite_runs_against_older_commits(setup, expected):
    script = OLDER_COMMIT.format(setup=setup)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout, done.stdout


@pytest.mark.skipif(not HAS_ASV, reason="asv is not installed (pip install '.[bench]')")
def test_asv_check():
    result = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No problems found" in result.stdout


@pytest.mark.skipif(not (HAS_ASV and Path(check_dashboard.CHROMIUM).exists()
                         and shutil.which("npm")),
                    reason="needs asv, /usr/bin/chromium and npm")
def test_dashboard_draws_the_graphs(tmp_path):
    """One quick benchmark into a results folder of its own, published, opened in chromium."""
    settings = json.loads((REPO_ROOT / "asv.conf.json").read_text())
    settings.update(repo=str(REPO_ROOT), benchmark_dir=str(REPO_ROOT / "bench"),
                    results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"),
                    env_dir=str(tmp_path / "env"))
    config = tmp_path / "asv.conf.json"
    config.write_text(json.dumps(settings))
    screenshot = tmp_path / "dashboard.png"
    status = check_dashboard.main([
        "--config", str(config), "--screenshot", str(screenshot),
        "--run-quick", r"time_value_and_grad\('(matrix|numpy|gemm)', '(1x32x4|256x256x4)', "
                       r"'float64'"])
    assert status == 0
    assert screenshot.stat().st_size > 10_000
