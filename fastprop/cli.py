"""The ``fastprop`` command (also ``python -m fastprop``)."""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable, Sequence

import numba
import numpy as np

from .backends import BACKENDS
from .gradcheck import gradient_check
from .network import MLP


def _sizes(text: str) -> list[int]:
    try:
        return [int(width) for width in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None


def _median_seconds(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _format_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:8.2f} {unit}"
    return f"{seconds / 1e-9:8.0f} ns"


def demo(args: argparse.Namespace) -> int:
    """Build a classifier, compute its gradient with every backend, time it, check it."""
    dtype = np.dtype(args.dtype)
    net = MLP(args.sizes, activation=args.activation, output="softmax", loss="cross_entropy",
              l2=1e-4, dtype=dtype)
    rng = np.random.default_rng(0)
    params = net.init(seed=0)
    X = rng.normal(size=(args.batch, net.n_inputs)).astype(dtype)
    Y = rng.integers(0, net.n_outputs, size=args.batch)
    print(f"{net}\n{net.n_params:,} parameters, batch {args.batch}, {os.cpu_count()} cores, "
          f"{numba.get_num_threads()} numba threads, {platform.processor() or 'cpu'}")
    print("(the first call of each backend compiles its kernels, or loads them from numba's "
          "cache)\n")
    print(f"{'backend':8}  {'loss':>12}  {'median time':>12}  {'max rel. diff':>14}")
    grads = {}
    for name in BACKENDS:
        grad = np.empty(net.n_params, dtype=dtype)
        loss, _ = net.value_and_grad(params, X, Y, backend=name, out=grad)
        seconds = _median_seconds(
            lambda name=name, grad=grad: net.value_and_grad(params, X, Y, backend=name,
                                                            out=grad), args.repeat)
        grads[name] = grad
        reference = grads["matrix"]
        difference = np.abs(grad - reference).max() / np.abs(reference).max()
        print(f"{name:8}  {loss:12.6f}  {_format_time(seconds):>12}  {difference:14.2e}")
    error = gradient_check(net, params, X, Y, max_checks=args.checks)
    print(f"\ngradient check (matrix backend vs central differences in float64, "
          f"{min(args.checks, net.n_params)} parameters): max relative error {error:.2e}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        prog="fastprop", description="Loss and exact gradient of a multilayer perceptron.")
    commands = parser.add_subparsers(dest="command")
    demo_parser = commands.add_parser(
        "demo", help="compute one network's gradient with every backend (the default)")
    demo_parser.add_argument("--sizes", type=_sizes, default=[784, 256, 256, 10],
                             help="input width, then each layer's width (default: %(default)s)")
    demo_parser.add_argument("--batch", type=int, default=64, help="default: %(default)s")
    demo_parser.add_argument("--activation", default="relu", help="default: %(default)s")
    demo_parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    demo_parser.add_argument("--repeat", type=int, default=20,
                             help="timed calls per backend (default: %(default)s)")
    demo_parser.add_argument("--checks", type=int, default=200,
                             help="parameters to check by finite differences "
                                  "(default: %(default)s)")
    demo_parser.set_defaults(run=demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastprop`` command; ``demo`` when no command is given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["demo", *(argv or [])])
    return args.run(args)
