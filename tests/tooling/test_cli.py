"""The ``fastprop`` command line: every bad line is a usage error, raised before any work.

Each bad line goes through :func:`fastprop.cli.main` and must end with argparse's usage line and a
message on stderr and exit status 2; any other exception would be a traceback for the user. A few
lines also run as users run them (``python -m fastprop ...`` in a subprocess). The lines carry
cheap options first (a tiny case, one epoch), so a check that is missing shows up as a wrong exit
status rather than a long run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import numba
import pytest

from fastprop import backends
from fastprop.benchmarking import peers
from fastprop.cli import main, parse_args

#: Threads numba allows in this process (a subprocess gets the same limit).
LIMIT = numba.config.NUMBA_NUM_THREADS
#: Options that keep ``compare`` short; each bad line's own options come after them (and win).
CHEAP_COMPARE = ["compare", "--cases", "1x8x1", "--backends", "matrix", "--peers", "numpy",
                 "--seconds", "0.05", "--no-progress"]
#: Options that keep ``train`` short.
CHEAP_TRAIN = ["train", "--epochs", "1", "--hidden", "4", "--quiet"]
#: A folder that does not exist (``{tmp}`` is the test's temporary folder).
MISSING = "{tmp}/missing/d"

NO_COMMAND = [
    ["--quick", "--threads", "0"],
    ["--quick", "--seconds", "-1"],
    ["--no-such-option"],
    ["no-such-command"],
]
COMPARE = [
    ["--threads", "0"], ["--threads", str(LIMIT + 1)], ["--threads", "1.5"],
    ["--seconds", "0"], ["--seconds", "-1"], ["--seconds", "nan"], ["--seconds", "inf"],
    ["--seconds", "soon"],
    ["--max-call", "0"], ["--max-call", "-1"], ["--max-call", "nan"],
    ["--json", f"{MISSING}/x.json"], ["--json", "{tmp}"], ["--json", ""],
    ["--plot", f"{MISSING}/x.png"], ["--plot", "{tmp}"], ["--plot", "{tmp}/run.no-such-format"],
    ["--json", "{tmp}/run.png", "--plot", "{tmp}/run.png"],
    ["--cases", "1x8"], ["--cases", "0x8x1"], ["--cases", ""], ["--batch", "0"],
    ["--width", ""], ["--depth", "-1"], ["--cases", "1x8x1", "--batch", "4"],
    ["--backends", ""], ["--backends", ","], ["--backends", "gpu"], ["--peers", "tensorflow"],
    ["--peers", ""], ["--dtype", "float16"], ["--preset", "cpu"], ["--preset", ""],
    ["--backends", "naive", "--baseline", "matrix"], ["--baseline", "gpu"],
    ["--quick", "extra"],
    ["--cases", "1x100000000x1"],  # more memory than any machine has
]
TRAIN = [
    ["--epochs", "0"], ["--epochs", "-3"], ["--epochs", "1.5"],
    ["--batch-size", "0"], ["--batch-size", "5000"],
    ["--batch-size", "1348"],  # the training split holds 1347 images
    ["--learning-rate", "-1"], ["--learning-rate", "0"], ["--learning-rate", "nan"],
    ["--learning-rate", "inf"],
    ["--threads", "0"], ["--threads", str(LIMIT + 1)],
    ["--backend", "cuda"], ["--backend", "cuda-naive"],
    ["--save", f"{MISSING}/m.npz"], ["--save", "{tmp}"], ["--save", ""],
    ["--seed", "-1"], ["--hidden", "0"], ["--hidden", ""], ["--optimizer", "rmsprop"],
    ["extra"],
    ["--hidden", "99999999999999,99999999999999"],  # more parameters than fastprop addresses
    ["--hidden", "10000000000"],  # more memory than any machine has
]


def _conditional_lines() -> Iterator[list[str]]:
    """Bad lines that are bad only on some machines."""
    if os.geteuid() != 0:  # root writes anywhere
        yield [*CHEAP_TRAIN, "--save", "{tmp}/read-only/m.npz"]
        yield [*CHEAP_COMPARE, "--json", "{tmp}/read-only/x.json"]
    if backends.unavailable_reason("cuda") and peers.unavailable_reason("jax"):
        yield [*CHEAP_COMPARE, "--backends", "cuda,cuda-naive", "--peers", "jax"]


BAD_LINES = [*NO_COMMAND, *([*CHEAP_COMPARE, *line] for line in COMPARE),
             *([*CHEAP_TRAIN, *line] for line in TRAIN), *_conditional_lines()]


def _run(argv: list[str], timeout_s: float = 60) -> subprocess.CompletedProcess:
    """``python -m fastprop *argv``; exit status -1 when it runs past ``timeout_s``."""
    command = [sys.executable, "-m", "fastprop", *argv]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, -1, "", f"still running after {timeout_s} s")


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    """The lines' ``{tmp}`` folder, with a read-only folder in it."""
    folder = tmp_path_factory.mktemp("cli")
    (folder / "read-only").mkdir(mode=0o555)
    return folder


@pytest.mark.parametrize("line", BAD_LINES, ids=lambda line: " ".join(map(repr, line)))
def test_a_bad_line_is_a_usage_error(line, tmp, capsys):
    with pytest.raises(SystemExit) as exited:
        main([arg.format(tmp=tmp) for arg in line])
    stderr = capsys.readouterr().err
    assert exited.value.code == 2, stderr
    assert "usage: fastprop" in stderr and "error:" in stderr, stderr


@pytest.mark.parametrize("line", [NO_COMMAND[0], [*CHEAP_COMPARE, *COMPARE[0]],
                                  [*CHEAP_TRAIN, *TRAIN[4]]], ids=" ".join)
def test_a_bad_line_in_a_fresh_process(line):
    outcome = _run(line)
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.returncode == 2, outcome.stderr
    assert outcome.stderr.startswith("usage: fastprop"), outcome.stderr


def test_options_without_a_command_are_compare_options():
    args = parse_args(["--quick", "--threads", "1", "--cases", "1x8x1"])
    assert args == parse_args(["compare", "--quick", "--threads", "1", "--cases", "1x8x1"])
    assert args.command == "compare" and args.quick and args.cases == [(1, 8, 1)]
    assert parse_args([]) == parse_args(["compare"])


def test_train_accepts_the_whole_training_split_as_a_batch():
    pytest.importorskip("sklearn")
    assert parse_args(["train", "--batch-size", "1347"]).batch_size == 1347


def test_top_level_help_lists_the_commands():
    outcome = _run(["--help"])
    assert outcome.returncode == 0
    assert outcome.stdout.startswith("usage: fastprop [-h] {compare,train}")
    assert "compare" in outcome.stdout and "train" in outcome.stdout


#: Runs ``fastprop.cli.main`` on the arguments after ``-c`` with Dask unimportable.
WITHOUT_DASK = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None; "
                "from fastprop.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.parametrize("line", [[*CHEAP_TRAIN, "--dask"],
                                  [*CHEAP_COMPARE, "--dask"]], ids=" ".join)
def test_dask_options_without_dask_are_usage_errors(line):
    if "train" in line:
        pytest.importorskip("sklearn")
    outcome = subprocess.run([sys.executable, "-c", WITHOUT_DASK, *line], capture_output=True,
                             text=True, timeout=120)
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.returncode == 2, outcome.stderr
    assert outcome.stderr.startswith("usage: fastprop"), outcome.stderr
    assert 'pip install "fastprop[dask]"' in outcome.stderr


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:9", "nonsense://nowhere"])
def test_a_dask_scheduler_that_does_not_answer_is_a_usage_error(address, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("distributed")
    from fastprop import cli

    monkeypatch.setattr(cli, "DASK_CONNECT_TIMEOUT", 1.0)
    with pytest.raises(SystemExit) as exited:
        main([*CHEAP_TRAIN, "--dask", address])
    stderr = capsys.readouterr().err
    assert exited.value.code == 2, stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "cannot connect to a Dask scheduler at" in errors[0], stderr
    assert "Traceback" not in stderr
