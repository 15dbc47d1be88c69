"""The GPU benchmarks without a GPU: bench/gpu.py's verdicts on made-up timings, and the asv
GPU benchmarks and ``fastprop compare`` skipping the GPU contenders cleanly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fastprop import peers
from fastprop.backends import unavailable_reason
from fastprop.cli import main
from fastprop.compare import Case, Result
from fastprop.timing import Timings

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # bench/ is a package at the root, not installed
    sys.path.insert(0, str(REPO_ROOT))

from bench import gpu, gpu_targets  # noqa: E402

NO_GPU = unavailable_reason("cuda") is not None


def _results(times: dict[tuple[tuple[int, int, int], str], float],
             wrong: str | None = None) -> list[Result]:
    return [Result(Case(*shape, "float32"), name, "WRONG" if name == wrong else "ok", 0.0,
                   Timings(times=[seconds])) for (shape, name), seconds in times.items()]


def _times(first: dict[str, float], second: dict[str, float]):
    one, two = gpu.TARGET_SHAPES
    return {**{(one, name): s for name, s in first.items()},
            **{(two, name): s for name, s in second.items()}}


def test_verdicts_pass_and_miss():
    met = _times({"cuda": 3.0, "torch-cuda": 2.3, "cuda-naive": 9.0},
                 {"cuda": 0.5, "torch-cuda": 1.0, "torch-cuda-graph": 0.5, "cuda-naive": 9.0})
    lines = gpu.verdicts(_results(met))
    assert [line.rsplit(" ", 1)[-1] for line in lines] == ["PASS", "PASS", "PASS"]
    assert "0.77 of PyTorch eager" in lines[0]
    missed = _times({"cuda": 3.4, "torch-cuda": 2.3, "cuda-naive": 9.0},
                    {"cuda": 0.6, "torch-cuda": 1.0, "torch-cuda-graph": 0.5, "cuda-naive": 9.0})
    lines = gpu.verdicts(_results(missed, wrong="cuda-naive"))
    assert [line.rsplit(" ", 1)[-1] for line in lines] == ["MISS", "MISS", "MISS"]
    assert "wrong at 4096x1024x4 float32, 65536x64x4 float32" in lines[2]


@pytest.mark.skipif(not NO_GPU, reason="a GPU is here")
def test_gpu_script_and_benchmarks_skip_without_a_gpu(capsys):
    assert gpu.main(["--quick"]) == 2
    assert "no GPU run" in capsys.readouterr().out
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
