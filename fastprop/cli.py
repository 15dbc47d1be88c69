"""The ``fastprop`` command (also ``python -m fastprop``)."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import peers, threads
from .activations import ACTIVATIONS
from .backends import BACKENDS
from .compare import DEFAULT_CASES, QUICK_CASES, Case, run
from .network import MLP
from .optimizers import OPTIMIZERS
from .training import History, train


def _integers(text: str) -> list[int]:
    try:
        values = [int(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _cases(text: str) -> list[tuple[int, int, int]]:
    try:
        cases = [tuple(int(n) for n in case.split("x")) for case in text.split(",")]
    except ValueError:
        cases = []
    if not cases or any(len(case) != 3 or min(case) < 1 for case in cases):
        raise argparse.ArgumentTypeError(
            f"expected BATCHxWIDTHxDEPTH cases separated by commas (e.g. 1x32x4,64x64x4), "
            f"got {text!r}")
    return cases


def _names(allowed: Sequence[str], what: str):
    def parse(text: str) -> list[str]:
        names = [name for name in text.split(",") if name]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"{what} must be among {list(allowed)}, got {text!r}")
        return names
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="fastprop", description="Loss and exact gradient of a multilayer perceptron.")
    commands = parser.add_subparsers(dest="command")
    compare = commands.add_parser(
        "compare", description=(
            "Time fastprop's backends and their peers side by side in one process, on "
            "networks of DEPTH tanh layers of WIDTH units at batch BATCH (squared loss). Every "
            "gradient is checked against a float64 NumPy reference before it is timed."),
        help="time fastprop against its peers (the default command)")
    sizes = compare.add_argument_group("sizes (default: a grid that takes about a minute)")
    sizes.add_argument("--cases", type=_cases,
                       help="BATCHxWIDTHxDEPTH cases, e.g. 1x32x4,1024x1024x4")
    sizes.add_argument("--batch", type=_integers, help="batch sizes (crossed with the others)")
    sizes.add_argument("--width", type=_integers, help="layer widths")
    sizes.add_argument("--depth", type=_integers, help="numbers of layers")
    compare.add_argument("--backends", type=_names(list(BACKENDS), "backends"),
                         default=list(BACKENDS), help="default: %(default)s")
    compare.add_argument("--peers", type=_names(list(peers.PEERS), "peers"),
                         help=f"among {list(peers.PEERS)} (default: every one installed)")
    compare.add_argument("--dtype", type=_names(["float32", "float64"], "dtype"),
                         default=["float64"], help="float32, float64 or both (default: float64)")
    compare.add_argument("--seconds", type=float, default=4.0,
                         help="timing per case, in interleaved rounds (default: %(default)s)")
    compare.add_argument("--max-call", type=float, default=2.0,
                         help="a contender slower than this many seconds per call is timed "
                              "from one call (default: %(default)s)")
    compare.add_argument("--quick", action="store_true",
                         help="a smaller grid and 1 s per case (about 15 s)")
    compare.add_argument("--threads", type=int,
                         help="threads for numba and the BLAS (default: all cores)")
    compare.add_argument("--baseline", choices=list(BACKENDS), default="matrix",
                         help="the backend whose speedups are shown (default: %(default)s)")
    compare.add_argument("--json", type=Path, help="write every number here")
    compare.add_argument("--plot", type=Path, help="draw time and speedup curves here (PNG)")
    compare.add_argument("--no-progress", action="store_true", help="no progress bar")
    compare.set_defaults(run=_compare)
    _add_train(commands)
    return parser


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
    command.add_argument("--learning-rate", type=float,
                       help="default: the optimizer's (adam 0.001, sgd 0.01)")
    command.add_argument("--epochs", type=int, default=50, help="default: %(default)s")
    command.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    command.add_argument("--backend", choices=list(BACKENDS), default="matrix",
                       help="default: %(default)s")
    command.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                       help="default: %(default)s")
    command.add_argument("--seed", type=int, default=0,
                       help="seed of the initial weights and the shuffles (default: 0)")
    command.add_argument("--threads", type=int, default=1,
                       help="threads for numba and the BLAS (default: 1; the network is too "
                            "small for more to help)")
    command.add_argument("--save", type=Path, metavar="PATH",
                       help="save the trained network here (.npz; fastprop.load reads it)")
    command.add_argument("--quiet", action="store_true", help="no line per epoch")
    command.set_defaults(run=_train)


def _train(args: argparse.Namespace) -> int:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        print("fastprop train needs scikit-learn: pip install 'fastprop[sklearn]'",
              file=sys.stderr)
        return 2
    threads.set_num_threads(args.threads)
    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        (digits.data / 16).astype(args.dtype), digits.target, test_size=0.25, random_state=0,
        stratify=digits.target)
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
    print(f"kernels ready in {time.perf_counter() - ready:.2f} s (the epoch loop is compiled "
          f"in every process, the rest only on the first run: numba caches it on disk)")

    def report(history: History) -> None:
        print(f"epoch {history.epochs:>4}/{args.epochs}  loss {history.loss[-1]:.4f}  "
              f"test accuracy {history.val_score[-1]:.4f}")

    params = net.init(seed=args.seed)
    history = train(net, params, X_train, y_train, epochs=args.epochs, seed=args.seed,
                  callback=None if args.quiet else report, **options)
    print(f"test accuracy {history.val_score[-1]:.4f} after {history.epochs} epochs in "
          f"{history.seconds:.3f} s (with a test-set pass per epoch)")
    if args.save is not None:
        net.save(args.save, params)
        print(f"saved to {args.save} (fastprop.load reads it)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    if args.threads is not None:
        threads.set_num_threads(args.threads)
    if args.cases:
        shapes = args.cases
    elif args.batch or args.width or args.depth:
        shapes = list(itertools.product(args.batch or [64], args.width or [256],
                                        args.depth or [4]))
    else:
        shapes = QUICK_CASES if args.quick else DEFAULT_CASES
    cases = [Case(*shape, dtype) for dtype in args.dtype for shape in shapes]
    installed = peers.available_peers()
    for name in args.peers or []:
        if name not in installed:
            print(f"not available, skipped: {name} ({peers.unavailable_reason(name)})")
    names = [*args.backends, *[name for name in args.peers or installed if name in installed]]
    baseline = args.baseline if args.baseline in names else names[0]
    seconds = 1.0 if args.quick else args.seconds
    max_call = min(args.max_call, 0.5) if args.quick else args.max_call
    return run(cases, names, baseline, seconds, max_call, args.json, args.plot,
               progress=not args.no_progress)


#: Environment for ``compare``: after a call, OpenBLAS keeps its threads spinning for 2^28 cycles
#: (about 0.1 s), which on a small machine slows whichever contender runs next (up to 10 times
#: on two cores). 2^18 cycles (about 0.1 ms) lets every contender run as it would alone.
COMPARE_ENVIRONMENT = {"OPENBLAS_THREAD_TIMEOUT": "18"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastprop`` command; ``compare`` when no command is given.

    Run as a command (``argv`` None), ``compare`` first starts itself again with
    :data:`COMPARE_ENVIRONMENT` (OpenBLAS reads it only when loaded), unless those variables are
    set already.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["compare", *(argv or [])])
    unset = {k: v for k, v in COMPARE_ENVIRONMENT.items() if k not in os.environ}
    if argv is None and args.command in (None, "compare") and unset:
        os.environ.update(unset)
        os.execv(sys.executable, [sys.executable, "-m", "fastprop", *sys.argv[1:]])
    return args.run(args)
