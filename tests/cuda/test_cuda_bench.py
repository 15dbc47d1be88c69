"""The GPU benchmarks without a GPU: the verdicts of ``fastprop compare --preset gpu``'s targets on
made-up timings, and the preset, the asv GPU benchmarks and ``fastprop compare`` skipping the GPU
contenders cleanly."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fastprop.backends import unavailable_reason
from fastprop.benchmarking import machine, peers
from fastprop.benchmarking.cases import PRESETS, Case
from fastprop.benchmarking.markdown import markdown_page
from fastprop.benchmarking.report import verdicts
from fastprop.benchmarking.results import Result
from fastprop.benchmarking.timing import Timings
from fastprop.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # bench/ is a package at the root, not installed
    sys.path.insert(0, str(REPO_ROOT))

from bench import gpu_targets  # noqa: E402

NO_GPU = unavailable_reason("cuda") is not None
GPU = PRESETS["gpu"]


def _results(first: dict[str, float], second: dict[str, float],
             wrong: str | None = None) -> list[Result]:
    """Made-up results at the preset's two target shapes: seconds by contender."""
    return [Result(Case.of(shape, "float32"), name, "WRONG" if name == wrong else "ok", 0.0,
                   Timings(times=[seconds]))
            for shape, times in zip(GPU.quick_shapes, (first, second), strict=True)
            for name, seconds in times.items()]


def _verdicts(results: list[Result]) -> list[str]:
    return [line.rsplit(" ", 1)[-1] for line in verdicts(results, "cuda", GPU.targets)]


def test_verdicts_pass_and_miss():
    met = _results({"cuda": 3.0, "torch-cuda": 2.3},
                   {"cuda": 0.5, "torch-cuda": 1.0, "torch-cuda-graph": 0.5})
    lines = verdicts(met, "cuda", GPU.targets)
    assert _verdicts(met) == ["PASS", "PASS", "PASS"]
    assert lines[0] == ("target at 4096x1024x4 float32: cuda's speedup over torch-cuda 0.77x, "
                        "at least 0.70x wanted: PASS")
    missed = _results({"cuda": 3.4, "torch-cuda": 2.3},
                      {"cuda": 0.6, "torch-cuda": 1.0, "torch-cuda-graph": 0.5})
    assert _verdicts(missed) == ["MISS", "MISS", "MISS"]
    # A peer that was not timed, or a shape that was not run: nothing to judge.
    untimed = _results({"cuda": 3.0, "torch-cuda": 2.3}, {"cuda": 0.5, "torch-cuda": 1.0,
                                                          "torch-cuda-graph": 0.5},
                       wrong="torch-cuda-graph")
    assert verdicts(untimed, "cuda", GPU.targets)[2].endswith("not measured, at least 1.00x "
                                                              "wanted")
    assert verdicts(untimed[:2], "cuda", GPU.targets)[1:] == []


@pytest.mark.parametrize("name", [b"Some GPU", "Some GPU"])  # (bytes in older numba)
def test_the_machine_note_and_the_page_name_the_gpu(name, monkeypatch):
    assert machine.machine().gpu is None  # not asked: numba-cuda is not loaded for it
    device = SimpleNamespace(get_current_device=lambda: SimpleNamespace(name=name))
    monkeypatch.setattr(machine.cuda_runtime, "timing_unavailable_reason", lambda: None)
    monkeypatch.setattr(machine.cuda_runtime, "cuda", lambda: device)
    where = machine.machine(gpu=True)
    assert where.gpu == "Some GPU" and "gpu: Some GPU" in machine.machine_note(where)
    assert "- **GPU**: Some GPU\n" in markdown_page([], [], "cuda", where, ["fastprop"])


def test_the_asv_gpu_benchmarks_time_the_preset():
    assert gpu_targets.GPU_CASES == tuple(str(shape) for shape in GPU.shapes)
    assert gpu_targets.GpuGradient.params[0] == (*GPU.backends, *GPU.peers)
    assert gpu_targets.GpuSpeedupOverTorch.params[:2] == (GPU.backends, GPU.peers)


@pytest.mark.skipif(not NO_GPU, reason="a GPU is here")
def test_gpu_preset_and_benchmarks_skip_without_a_gpu(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["compare", "--preset", "gpu", "--quick"])
    assert exited.value.code == 2
    assert "nothing to time here" in capsys.readouterr().err
    for name in gpu_targets.GPU_CONTENDERS:
        with pytest.raises(NotImplementedError):
            gpu_targets.GpuGradient().setup(name, "65536x64x4", "float32")
    with pytest.raises(NotImplementedError):
        gpu_targets.GpuSpeedupOverTorch().setup("cuda", "torch-cuda", "1x32x4", "float32")


@pytest.mark.skipif(not NO_GPU, reason="a GPU is here")
def test_compare_skips_gpu_contenders_without_a_gpu(capsys):
    status = main(["compare", "--cases", "2x4x2", "--backends", "matrix,cuda,cuda-naive",
                   "--peers", "numpy", "--seconds", "0.02", "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert "not available, skipped: cuda (" in out and "not available, skipped: cuda-naive" in out
    assert "2x4x2 float64" in out
    if peers.unavailable_reason("torch-cuda") is not None:
        assert "torch-cuda" not in peers.available_peers()
