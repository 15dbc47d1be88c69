"""The ``fastprop`` command (also ``python -m fastprop``).

Every option is checked before any work starts (compilation, training, timing): a bad command
line ends as argparse ends one, with the usage line, a message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numba
import numpy as np

from . import threads
from ._kernel_ids import ACTIVATIONS
from .backends import BACKENDS, DEFAULT_BACKEND, unavailable_reason
from .benchmarking import peers
from .benchmarking.cases import DTYPES, PRESETS, Shape, cross, parse_shapes
from .benchmarking.comparison import contenders, run
from .benchmarking.markdown import summary_problem
from .benchmarking.report import Outputs
from .io import save
from .network import MLP
from .optimizers import OPTIMIZERS
from .training import History, train

#: The backends ``train`` runs on: those whose compiled code runs on the CPU.
TRAIN_BACKENDS = [name for name, backend in BACKENDS.items() if not backend.device]
#: ``train --dask-method``'s choices (``fastprop.dask.train``'s methods).
DASK_METHODS = ["local-sgd", "lbfgs"]
#: Seconds that ``train --dask ADDRESS`` waits to connect to the scheduler.
DASK_CONNECT_TIMEOUT = 5.0


def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` for one integer from ``low`` to ``high`` (no upper bound if None).

    Parameters
    ----------
    low : int
        The smallest value allowed.
    high : int, optional
        The largest value allowed.

    Returns
    -------
    callable
        ``parse(text) -> int``, raising :class:`argparse.ArgumentTypeError` for any other text.
    """
    wanted = (f"an integer from {low} to {high}" if high is not None
              else "a positive integer" if low == 1 else f"an integer >= {low}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value
    return parse


def _positive_float(text: str) -> float:
    """An argparse ``type=``: a finite number above 0.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    float

    Raises
    ------
    argparse.ArgumentTypeError
        For anything else (0, negative numbers, NaN, infinities, words).
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {text!r}")
    return value


def _output_path(text: str) -> Path:
    """An argparse ``type=``: a file that can be written, checked before any work starts.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    argparse.ArgumentTypeError
        When the path is empty or a folder, when its folder does not exist or cannot be
        written in, or when the file exists and cannot be written.
    """
    path = Path(text)
    folder = path.parent
    if not text or path.is_dir():
        problem = "a folder" if text else "empty"
    elif not folder.is_dir():
        problem = f"in a folder that does not exist ({str(folder)!r})"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = f"in a folder that cannot be written ({str(folder)!r})"
    elif path.exists() and not os.access(path, os.W_OK):
        problem = "a file that cannot be written"
    else:
        return path
    raise argparse.ArgumentTypeError(f"expected a file to write, got {text!r}: {problem}")


def _integers(text: str) -> list[int]:
    """An argparse ``type=``: comma-separated positive integers (``--hidden 128,64``)."""
    try:
        values = [int(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _cases(text: str) -> list[Shape]:
    """An argparse ``type=``: ``BATCHxWIDTHxDEPTH`` cases separated by commas, each once."""
    try:
        return parse_shapes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _names(allowed: Sequence[str], what: str) -> Callable[[str], list[str]]:
    """An argparse ``type=`` for comma-separated names among ``allowed``, each kept once."""
    def parse(text: str) -> list[str]:
        names = list(dict.fromkeys(name for name in text.split(",") if name))
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{what} must be among {list(allowed)}, got {text!r}")
        return names
    return parse


def _threads_option(command: argparse.ArgumentParser, default: int | None, note: str) -> None:
    """Add ``--threads`` (from 1 to numba's thread limit) to ``command``."""
    limit = numba.config.NUMBA_NUM_THREADS
    command.add_argument("--threads", type=_integer(1, limit), default=default,
                         help=f"threads for numba and the BLAS, from 1 to {limit} "
                              f"(numba.config.NUMBA_NUM_THREADS; {note})")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (without the checks that combine options: see
    :func:`parse_args`)."""
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and its commands' parsers, by name."""
    parser = argparse.ArgumentParser(
        prog="fastprop", description="Loss and exact gradient of a multilayer perceptron.",
        epilog="compare is the default command: options given without a command are its "
               "options (fastprop --quick is fastprop compare --quick).")
    commands = parser.add_subparsers(dest="command")
    _add_compare(commands)
    _add_train(commands)
    return parser, dict(commands.choices)


def _add_compare(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare", description=(
            "Time fastprop's backends and their peers side by side in one process, on "
            "networks of DEPTH tanh layers of WIDTH units at batch BATCH (squared loss). Every "
            "gradient is checked against a float64 NumPy reference before it is timed."),
        help="time fastprop against its peers (the default command)")
    compare.add_argument("--preset", choices=list(PRESETS), default="default",
                         help="a named run, whose cases, dtypes and contenders fill the options "
                              "left out (default: %(default)s): " + "; ".join(
                                  f"{name}: {preset.description}"
                                  for name, preset in PRESETS.items()))
    sizes = compare.add_argument_group(
        "sizes (default: the preset's grid; --cases, or the others)")
    sizes.add_argument("--cases", type=_cases,
                       help="BATCHxWIDTHxDEPTH cases, e.g. 1x32x4,1024x1024x4")
    sizes.add_argument("--batch", type=_integers, help="batch sizes (crossed with the others)")
    sizes.add_argument("--width", type=_integers, help="layer widths")
    sizes.add_argument("--depth", type=_integers, help="numbers of layers")
    compare.add_argument("--backends", type=_names(list(BACKENDS), "backends"),
                         help=f"among {list(BACKENDS)} (default: the preset's; all of them)")
    compare.add_argument("--peers", type=_names(list(peers.PEERS), "peers"),
                         help=f"among {list(peers.PEERS)} (default: the preset's; every one "
                              f"installed)")
    compare.add_argument("--dtype", type=_names(list(DTYPES), "dtype"),
                         help="float32, float64 or both (default: the preset's; float64)")
    compare.add_argument("--seconds", type=_positive_float, default=4.0,
                         help="timing per case, in interleaved rounds (default: %(default)s)")
    compare.add_argument("--max-call", type=_positive_float, default=2.0,
                         help="a contender slower than this many seconds per call is timed "
                              "from one call (default: %(default)s)")
    compare.add_argument("--quick", action="store_true",
                         help="the preset's smaller grid and 1 s per case")
    _threads_option(compare, None, "default: all cores")
    compare.add_argument("--baseline", choices=list(BACKENDS),
                         help=f"the backend whose speedups are shown, one of --backends "
                              f"(default: the preset's, else {DEFAULT_BACKEND}, else the first "
                              f"of --backends)")
    compare.add_argument("--json", type=_output_path, metavar="PATH",
                         help="write every number here")
    compare.add_argument("--plot", type=_output_path, metavar="PATH",
                         help="draw time and speedup curves here (PNG, or another format "
                              "matplotlib writes, by the suffix; needs matplotlib)")
    compare.add_argument("--markdown", type=_output_path, metavar="PATH",
                         help="write a Markdown page here: when and where it ran (CPU, versions, "
                              "threads, BLAS and its kernels, the BLAS environment variables), "
                              "this command line, the table, and the plot of --plot")
    compare.add_argument("--readme", type=_output_path, metavar="PATH",
                         help="replace the text between the lines <!-- summary:start --> and "
                              "<!-- summary:end --> of this existing file (a README) by a "
                              "summary table of a few cases and a one-line stamp")
    compare.add_argument("--dask", action="store_true",
                         help="also time fastprop.dask.value_and_grad on the embedded local "
                              "cluster (the batch in one chunk per worker, held on the workers; "
                              "the parameters sent with every call), checked like the others; "
                              "needs pip install \"fastprop[dask]\"")
    compare.add_argument("--no-progress", action="store_true", help="no progress bar")
    compare.set_defaults(run=_compare, check=_check_compare)


def _add_train(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "train", description=(
            "Train a classifier on the handwritten digits that ship with scikit-learn (1797 "
            "images of 8x8 pixels, scaled to [0, 1]; no download) and report its accuracy on a "
            "fixed, stratified 25% test split. Needs scikit-learn."),
        help="train a digits classifier (needs scikit-learn)")
    command.add_argument("--hidden", type=_integers, default=[64],
                         help="hidden layer widths, e.g. 128,64 (default: 64)")
    command.add_argument("--activation", choices=list(ACTIVATIONS), default="relu",
                         help="hidden activation (default: %(default)s)")
    command.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adam",
                         help="default: %(default)s")
    command.add_argument("--learning-rate", type=_positive_float,
                         help="default: the optimizer's (adam 0.001, sgd 0.01)")
    command.add_argument("--epochs", type=_integer(1), default=50, help="default: %(default)s")
    command.add_argument("--batch-size", type=_integer(1), default=32,
                         help="from 1 to the number of training images (default: %(default)s)")
    command.add_argument("--backend", choices=TRAIN_BACKENDS, default=DEFAULT_BACKEND,
                         help="a CPU backend (default: %(default)s)")
    command.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                         help="default: %(default)s")
    command.add_argument("--seed", type=_integer(0), default=0,
                         help="seed of the initial weights and the shuffles (default: 0)")
    _threads_option(command, 1, "default: 1; the network is too small for more to help")
    command.add_argument("--save", type=_output_path, metavar="PATH",
                         help="save the trained network here (.npz; fastprop.load reads it)")
    command.add_argument("--quiet", action="store_true", help="no line per epoch")
    command.add_argument("--dask", nargs="?", const="", metavar="ADDRESS",
                         help="train with fastprop.dask.train on a Dask cluster: the embedded "
                              "local one, or the scheduler at ADDRESS (e.g. tcp://host:8786); "
                              "the training images in one chunk per worker. Needs pip install "
                              "\"fastprop[dask]\"")
    command.add_argument("--dask-method", choices=DASK_METHODS, default="local-sgd",
                         help="with --dask: local-sgd (each worker's group trains with "
                              "--optimizer, --learning-rate, --batch-size and --backend for "
                              "--epochs epochs, the parameters averaged after each) or lbfgs "
                              "(full-batch L-BFGS on the distributed gradient, at most --epochs "
                              "iterations; the optimizer options are not used) "
                              "(default: %(default)s)")
    command.set_defaults(run=_train, check=_check_train)


def _with_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``compare`` in front when it names no command: when it is empty or starts
    with an option other than ``-h``/``--help``."""
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        return ["compare", *argv]
    return list(argv)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check a ``fastprop`` command line, before any work starts.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``). Without a command,
        they are ``compare``'s.

    Returns
    -------
    argparse.Namespace
        The options, with ``command``, ``run`` (the command's function), ``check`` and
        ``argv`` (the arguments parsed, the command's name first).

    Raises
    ------
    SystemExit
        With status 2, after argparse's usage line and a message on stderr, for a bad command
        line (and with status 0 after ``--help``).
    """
    parser, commands = _parsers()
    argv = _with_command(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    args.check(commands[args.command], args)
    return args


def _check_compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The checks of ``compare`` that combine options; ``parser.error`` on the first that
    fails. The options left out take ``--preset``'s values first."""
    preset = PRESETS[args.preset]
    args.backends = args.backends or list(preset.backends or BACKENDS)
    args.peers = args.peers or (None if preset.peers is None else list(preset.peers))
    args.dtype = args.dtype or list(preset.dtypes)
    crossed = [f"--{name}" for name in ("batch", "width", "depth") if getattr(args, name)]
    if args.cases and crossed:
        parser.error(f"--cases cannot be combined with {', '.join(crossed)}")
    if args.baseline is not None and args.baseline not in args.backends:
        parser.error(f"argument --baseline: {args.baseline!r} is not one of --backends "
                     f"({','.join(args.backends)})")
    if args.plot is not None:
        _check_plot(parser, args.plot)
    if args.readme is not None:
        _check_readme(parser, args.readme)
    named: dict[Path, str] = {}
    for option in ("json", "plot", "markdown", "readme"):
        path = getattr(args, option)
        if path is not None and named.setdefault(path.resolve(), option) != option:
            parser.error(f"--{named[path.resolve()]} and --{option} name the same file")
    option = "--cases" if args.cases else "--batch/--width/--depth"
    for batch, width, depth in _shapes(args):
        for dtype in args.dtype:
            _check_network(parser, option, [width] * (depth + 1), dtype, batch)
    if args.dask:
        _check_dask(parser)
    _check_contenders(parser, args)


def _shapes(args: argparse.Namespace) -> Sequence[Shape]:
    """``compare``'s shapes: ``--cases``, or ``--batch``, ``--width`` and ``--depth`` crossed,
    or the preset's grid (``--quick``'s or the full one)."""
    if args.cases:
        return args.cases
    if args.batch or args.width or args.depth:
        return [Shape(*sizes) for sizes in itertools.product(
            args.batch or [64], args.width or [256], args.depth or [4])]
    preset = PRESETS[args.preset]
    return preset.quick_shapes if args.quick else preset.shapes


def _memory_bytes() -> int | None:
    """The machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_network(parser: argparse.ArgumentParser, option: str, sizes: Sequence[int],
                   dtype: str, batch: int) -> None:
    """``parser.error`` naming ``option`` when no network of layer widths ``sizes`` can be
    built, or when one gradient at batch ``batch`` cannot fit in the machine's memory.

    The memory counted is a floor: the parameters, the gradient and one value per unit and
    sample, in ``dtype``.
    """
    try:
        net = MLP(sizes, dtype=dtype)
    except ValueError as error:
        parser.error(f"argument {option}: {error}")
    need = (2 * net.n_params + batch * sum(sizes)) * net.dtype.itemsize
    memory = _memory_bytes()
    if memory is not None and need > memory:
        parser.error(f"argument {option}: a network of sizes {list(sizes)} at batch {batch} "
                     f"needs more than {need / 2**30:.3g} GiB in {dtype}; this machine has "
                     f"{memory / 2**30:.3g} GiB")


def _check_plot(parser: argparse.ArgumentParser, path: Path) -> None:
    """``parser.error`` unless matplotlib is installed and writes files named like ``path``."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        parser.error("--plot needs matplotlib: pip install 'fastprop[plot]'")
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        parser.error(f"argument --plot: expected a file name ending in one of "
                     f"{', '.join('.' + name for name in sorted(formats))}, got {str(path)!r}")


def _check_readme(parser: argparse.ArgumentParser, path: Path) -> None:
    """``parser.error`` unless ``path`` is a UTF-8 text file with the summary markers."""
    try:
        problem = summary_problem(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        problem = f"cannot be read ({error})"
    if problem is not None:
        parser.error(f"argument --readme: {str(path)!r}: {problem}")


def _check_dask(parser: argparse.ArgumentParser) -> None:
    """``parser.error`` unless :mod:`fastprop.dask` imports (Dask and distributed installed)."""
    try:
        import fastprop.dask  # noqa: F401
    except ImportError as error:
        parser.error(f"--dask needs Dask and distributed: pip install \"fastprop[dask]\" "
                     f"({error})")


def _connect(parser: argparse.ArgumentParser, address: str) -> object:
    """A :class:`distributed.Client` of the scheduler at ``address``; ``parser.error`` in one
    line when none answers within :data:`DASK_CONNECT_TIMEOUT` seconds.

    The address is tried with a bare connection first: a client that fails to connect is
    left half made, and its finalizer prints a traceback when the interpreter exits.
    """
    import asyncio

    from distributed import Client
    from distributed.comm import connect

    async def probe() -> None:
        comm = await connect(address, timeout=DASK_CONNECT_TIMEOUT)
        await comm.close()

    try:
        asyncio.run(probe())
    except Exception as error:  # (OSError, TimeoutError, ValueError for a bad address...)
        why = " ".join(str(error).split()) or type(error).__name__
        parser.error(f"argument --dask: cannot connect to a Dask scheduler at {address!r} "
                     f"within {DASK_CONNECT_TIMEOUT:g} s: {why}")
    return Client(address, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)


def _check_contenders(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``parser.error`` when none of the backends and peers asked for can run here."""
    if any(unavailable_reason(name) is None for name in args.backends):
        return  # (the CPU backends always can, and are asked without loading anything)
    reasons = {name: unavailable_reason(name) for name in args.backends}
    reasons |= {name: peers.unavailable_reason(name) for name in args.peers or peers.PEERS}
    if all(reasons.values()):
        parser.error("nothing to time here: " + "; ".join(
            f"{name}: {why}" for name, why in reasons.items()))


@functools.cache
def _digits(dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits scaled to [0, 1] in ``dtype``, split as ``train`` splits them.

    Parameters
    ----------
    dtype : str
        ``"float32"`` or ``"float64"``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(X_train, X_test, y_train, y_test)``: a fixed, stratified 25% test split.

    Raises
    ------
    ImportError
        Without scikit-learn.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    return tuple(train_test_split((digits.data / 16).astype(dtype), digits.target,
                                  test_size=0.25, random_state=0, stratify=digits.target))


def _check_train(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The checks of ``train`` that need its data; ``parser.error`` on the first that fails."""
    try:
        X_train = _digits(args.dtype)[0]
    except ImportError:
        parser.error("train needs scikit-learn: pip install 'fastprop[sklearn]'")
    if args.batch_size > len(X_train):
        parser.error(f"argument --batch-size: expected at most {len(X_train)} (the training "
                     f"images), got {args.batch_size}")
    _check_network(parser, "--hidden", [X_train.shape[1], *args.hidden, 10], args.dtype,
                   args.batch_size)
    args.client = None
    if args.dask is not None:
        _check_dask(parser)
        if args.dask:
            args.client = _connect(parser, args.dask)


def _train(args: argparse.Namespace) -> int:
    """Run ``train`` (options checked by :func:`parse_args`)."""
    threads.set_num_threads(args.threads)
    if args.dask is not None:
        return _train_dask(args)
    X_train, X_test, y_train, y_test = _digits(args.dtype)
    net = MLP([64, *args.hidden, 10], args.activation, output="softmax", loss="cross_entropy",
              dtype=args.dtype)
    optimizer = OPTIMIZERS[args.optimizer](
        *([] if args.learning_rate is None else [args.learning_rate]))
    print(f"digits: {len(X_train)} training and {len(X_test)} test images, 10 classes\n"
          f"network: {net}\noptimizer: {optimizer}; {args.epochs} epochs of batches of "
          f"{args.batch_size}; backend {args.backend}")
    options = {"optimizer": optimizer, "batch_size": args.batch_size, "backend": args.backend,
               "progress": False, "validation": (X_test, y_test)}
    ready = time.perf_counter()
    train(net, net.init(seed=0), X_train, y_train, epochs=1, **options)
    print(f"kernels ready in {time.perf_counter() - ready:.2f} s (compiled on the first run, "
          f"then loaded from numba's disk cache)")

    def report(history: History) -> None:
        print(f"epoch {history.epochs:>4}/{args.epochs}  loss {history.loss[-1]:.4f}  "
              f"test accuracy {history.val_score[-1]:.4f}")

    params = net.init(seed=args.seed)
    history = train(net, params, X_train, y_train, epochs=args.epochs, seed=args.seed,
                    callback=None if args.quiet else report, **options)
    print(f"test accuracy {history.val_score[-1]:.4f} after {history.epochs} epochs in "
          f"{history.seconds:.3f} s (with a test-set pass per epoch)")
    if args.save is not None:
        save(args.save, net, params)
        print(f"saved to {args.save} (fastprop.load reads it)")
    return 0


def _accuracy(net: MLP, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """The share of the images in ``X`` whose predicted class is ``y``'s."""
    return float(np.mean(net.predict(params, X) == y))


def _train_dask(args: argparse.Namespace) -> int:
    """Run ``train --dask``: :func:`fastprop.dask.train` on the embedded cluster or the
    scheduler of ``--dask ADDRESS`` (connected by :func:`_check_train`)."""
    import dask.array as da

    import fastprop.dask as fpd

    X_train, X_test, y_train, y_test = _digits(args.dtype)
    net = MLP([64, *args.hidden, 10], args.activation, output="softmax", loss="cross_entropy",
              dtype=args.dtype)
    client = fpd.get_client(args.client)
    workers = len(client.scheduler_info()["workers"])
    rows = math.ceil(len(X_train) / max(workers, 1))
    X = da.from_array(X_train, chunks=(rows, -1))
    y = da.from_array(y_train, chunks=(rows,))
    where = f"on {args.dask}" if args.dask else "on the embedded local cluster"
    if args.dask_method == "lbfgs":
        options: dict = {"max_iter": args.epochs}
        plan = f"L-BFGS, at most {args.epochs} iterations"
        unit = "iteration"
    else:
        optimizer = OPTIMIZERS[args.optimizer](
            *([] if args.learning_rate is None else [args.learning_rate]))
        options = {"optimizer": optimizer, "epochs": args.epochs, "batch_size": args.batch_size,
                   "seed": args.seed, "backend": args.backend}
        plan = (f"local SGD, optimizer {optimizer}; {args.epochs} epochs of batches of "
                f"{args.batch_size} in each worker's group, averaged after each; backend "
                f"{args.backend}")
        unit = "epoch"
    print(f"digits: {len(X_train)} training and {len(X_test)} test images, 10 classes, in "
          f"chunks of {rows}\nnetwork: {net}\n{plan}\ndask: {workers} workers {where}")

    def report(history: fpd.History) -> None:
        print(f"{unit} {len(history.loss):>4}/{args.epochs}  loss {history.loss[-1]:.4f}  "
              f"test accuracy {_accuracy(net, params, X_test, y_test):.4f}")

    params = net.init(seed=args.seed)
    try:
        history = fpd.train(net, params, X, y, method=args.dask_method, client=client,
                            callback=None if args.quiet else report, progress=False, **options)
    finally:
        if args.client is not None:
            args.client.close()
    done = len(history.loss)
    print(f"test accuracy {_accuracy(net, params, X_test, y_test):.4f} after {done} "
          f"{unit}{'s' if done != 1 else ''} in {history.seconds:.3f} s ({args.dask_method} on "
          f"{workers} workers, stopped: {history.stopped})")
    if args.save is not None:
        save(args.save, net, params)
        print(f"saved to {args.save} (fastprop.load reads it)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    """Run ``compare`` (options checked by :func:`parse_args`)."""
    if args.threads is not None:
        threads.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    baseline = args.baseline or preset.baseline or DEFAULT_BACKEND
    seconds = 1.0 if args.quick else args.seconds
    max_call = min(args.max_call, 0.5) if args.quick else args.max_call
    outputs = Outputs(args.json, args.plot, args.markdown, args.readme,
                      ("fastprop", *args.argv))
    return run(cross(_shapes(args), args.dtype),
               contenders(args.backends, args.peers, dask=args.dask), baseline,
               seconds, max_call, outputs, progress=not args.no_progress,
               targets=preset.targets)


#: Environment for ``compare``: after a call, OpenBLAS keeps its threads spinning for 2^28 cycles
#: (about 0.1 s), which on a small machine slows whichever contender runs next (up to 10 times
#: on two cores). 2^18 cycles (about 0.1 ms) lets every contender run as it would alone.
COMPARE_ENVIRONMENT = {"OPENBLAS_THREAD_TIMEOUT": "18"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastprop`` command; ``compare`` when no command is given.

    The command line is checked first (:func:`parse_args`): a bad one exits with status 2 before
    any work. Run as a command (``argv`` None), ``compare`` then starts itself again with
    :data:`COMPARE_ENVIRONMENT` (OpenBLAS reads it only when loaded), unless those variables are
    set already. Run as a command, it closes the embedded Dask cluster of ``--dask`` before it
    returns; called with ``argv``, it leaves it up for the caller's next call.
    """
    args = parse_args(argv)
    unset = {k: v for k, v in COMPARE_ENVIRONMENT.items() if k not in os.environ}
    if argv is None and args.command == "compare" and unset:
        os.environ.update(unset)
        os.execv(sys.executable, [sys.executable, "-m", "fastprop", *sys.argv[1:]])
    try:
        return args.run(args)
    finally:
        if argv is None and "fastprop.dask" in sys.modules:  # (a caller's cluster stays up)
            sys.modules["fastprop.dask"].close_embedded()
