"""``fastprop compare``: the command runs, checks before it times, and writes its files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import fastprop as fp
from fastprop.cli import main
from fastprop.cpu.backend import CpuBackend


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


def test_a_wrong_backend_is_reported_not_timed(monkeypatch, capsys, tmp_path):
    correct = fp.BACKENDS["naive"].kernels

    def off_by_a_bit(*args):
        status, loss = correct.value_and_grad(*args)
        args[8][0] += 1e-3
        return status, loss

    monkeypatch.setitem(fp.BACKENDS, "naive", CpuBackend("naive", SimpleNamespace(
        value_and_grad=off_by_a_bit, loss=correct.loss, forward=correct.forward,
        workspace_size=correct.workspace_size, uses_threads=correct.uses_threads)))
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
    from fastprop.compare import Case
    case = Case(64, 128, 4, "float64")
    assert case.sizes == [128] * 5
    assert case.gemm_flops == 2 * 64 * 128 * 128 * 11
    assert np.isclose(case.gemm_flops, 2 * 64 * 128**2 * (4 + 4 + 3))
