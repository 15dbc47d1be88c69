"""`fastprop train` (the digits classifier) and the training benchmarks' contenders."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

import fastprop as fp
from fastprop.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # bench/ is a package at the root, not installed
    sys.path.insert(0, str(REPO_ROOT))

from bench import training as bench  # noqa: E402


def test_train_command_reports_and_saves(tmp_path, capsys):
    path = tmp_path / "digits.npz"
    assert main(["train", "--epochs", "3", "--hidden", "16,8", "--optimizer", "sgd",
                 "--learning-rate", "0.1", "--dtype", "float64", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert "epoch    3/3" in out and f"saved to {path}" in out
    accuracy = float(out.split("test accuracy ")[-1].split()[0])
    net, params = fp.load(path)
    assert net.sizes == (64, 16, 8, 10) and net.dtype == np.float64
    _, X_test, _, y_test = bench.digits_data()
    assert (net.predict(params, X_test) == y_test).mean() == pytest.approx(accuracy, abs=1e-4)
    assert main(["train", "--epochs", "2", "--quiet"]) == 0
    assert "/2  loss" not in capsys.readouterr().out


def test_train_command_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--optimizer", "rmsprop"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:  # before anything is compiled
        main(["train", "--batch-size", "100000"])
    assert error.value.code == 2
    assert "--batch-size: expected at most 1347 (the training images)" in capsys.readouterr().err


def test_benchmark_contenders_run():
    for name in ("fastprop-matrix", "sklearn"):
        bench.epoch_call(name)()
    assert bench.digits_model("fastprop").get_params()["max_iter"] == bench.DIGITS_EPOCHS


def test_train_command_on_dask(capsys):
    """``train --dask``: local SGD on the embedded cluster (left up by ``main(argv)`` for the
    next call), then L-BFGS on the scheduler of ``--dask ADDRESS``."""
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    cheap = ["train", "--hidden", "8", "--dtype", "float64"]
    assert main([*cheap, "--dask", "--epochs", "2", "--optimizer", "sgd",
                 "--learning-rate", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "on the embedded local cluster" in out and "epoch    2/2  loss" in out
    assert "test accuracy " in out and " after 2 epochs in " in out and "(local-sgd on " in out
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        assert main([*cheap, "--dask", address, "--dask-method", "lbfgs", "--epochs", "3",
                     "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"dask: 1 workers on {address}" in out and "(lbfgs on 1 workers" in out
    assert " after 3 iterations in " in out
