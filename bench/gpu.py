"""Issue 4's GPU speed targets: fastprop's CUDA backends and PyTorch side by side, in one run.

Run it on a machine with a CUDA GPU (``bench/gpu_device.sh`` does it on the lent H100)::

    python bench/gpu.py [--quick] [--json FILE]

Every contender is checked against a float64 NumPy backprop before it is timed
(:func:`fastprop.compare.run_case`), then all are timed in interleaved rounds; medians are
printed, then each target with its verdict. float32, TF32 off (fastprop's kernels never use it;
the PyTorch peers turn it off).

Targets: (1) batch 4096, width 1024, 4 layers: at least 70% of PyTorch eager's throughput;
(2) batch 65536, width 64, 4 layers: at least twice as fast as PyTorch eager and no slower than
PyTorch replaying a CUDA graph; (3) ``cuda-naive`` correct at every size.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from fastprop import peers
from fastprop.backends import unavailable_reason
from fastprop.compare import Case, Result, machine_note, run_case, table, to_json

#: The two target sizes ``(batch, width, depth)``, then ANCHORS.md's other GPU sizes.
TARGET_SHAPES = ((4096, 1024, 4), (65536, 64, 4))
OTHER_SHAPES = ((1, 32, 4), (256, 64, 4), (4096, 64, 4), (4096, 256, 4), (65536, 128, 4),
                (262144, 64, 4))
BACKENDS = ("cuda", "cuda-naive")
TORCH = ("torch-cuda", "torch-cuda-graph")


def _seconds(results: Sequence[Result], shape: tuple[int, int, int], name: str) -> float:
    return next(r.seconds for r in results if r.name == name and
                (r.case.batch, r.case.width, r.case.depth) == shape)


def verdicts(results: Sequence[Result]) -> list[str]:
    """One line per target: the measured ratios and PASS or MISS."""
    first, second = TARGET_SHAPES
    ours = _seconds(results, first, "cuda")
    eager = _seconds(results, first, "torch-cuda")
    lines = [f"target 1, {first}: {eager / ours:.2f} of PyTorch eager's throughput (>= 0.70): "
             f"{'PASS' if eager / ours >= 0.7 else 'MISS'}"]
    ours = _seconds(results, second, "cuda")
    eager = _seconds(results, second, "torch-cuda")
    graph = _seconds(results, second, "torch-cuda-graph")
    passed = eager / ours >= 2 and graph / ours >= 1
    lines.append(f"target 2, {second}: {eager / ours:.2f}x PyTorch eager (>= 2), "
                 f"{graph / ours:.2f}x PyTorch graph (>= 1): {'PASS' if passed else 'MISS'}")
    naive = [r for r in results if r.name == "cuda-naive"]
    wrong = [r.case.label for r in naive if r.status not in ("ok", "slow")]
    lines.append(f"target 3: cuda-naive correct at {len(naive) - len(wrong)} of {len(naive)} "
                 f"sizes{': wrong at ' + ', '.join(wrong) if wrong else ''}: "
                 f"{'MISS' if wrong else 'PASS'}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """The command; exit status 1 if a GPU backend is wrong, 2 without a GPU."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the two targets only")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per size")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args(argv)
    why = unavailable_reason("cuda") or peers.unavailable_reason("torch-cuda")
    if why is not None:
        print(f"no GPU run: {why}")
        return 2
    shapes = TARGET_SHAPES if args.quick else TARGET_SHAPES + OTHER_SHAPES
    names = [*BACKENDS, *TORCH]
    results: list[Result] = []
    for shape in shapes:
        case = Case(*shape, "float32")
        print(f"running {case.label}", flush=True)
        results.extend(run_case(case, names, args.seconds, max_call_s=2.0))
    print(table(results, names, "cuda"))
    note = machine_note()
    import torch

    note.append(f"gpu: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("\n".join(note))
    print("\n".join(verdicts(results)))
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(results, note), indent=1))
    broken = [r for r in results if r.name in BACKENDS and r.status not in ("ok", "slow")]
    for r in broken:
        print(f"WRONG: {r.name} at {r.case.label}: {r.status}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
