"""A comparison: fastprop's backends and their peers, checked, then timed side by side in one
process.

For each case every contender is built on the case's problem (:mod:`.problems`), warmed up
(compilation is never timed; the CPU backends' new kernels are compiled first, side by side, by
:mod:`.compile_ahead`) and checked: its loss and gradient must match a float64 NumPy
backprop to 1e-10 (float64) or 1e-4 (float32), relative to the largest entry, or it is reported
as WRONG and not timed. Then all are timed together, in interleaved rounds (:mod:`.timing`), and
medians are reported (:mod:`.report`).

Contenders: fastprop's backends (``fastprop.BACKENDS``; the GPU ones only where a GPU is, not on
numba's CUDA simulator), the peers of :mod:`.peers`, and, when asked for, ``dask``:
:func:`fastprop.dask.value_and_grad` on the embedded local cluster (:mod:`.distributed`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..backends import BACKENDS, unavailable_reason
from ..cuda import runtime as cuda_runtime
from ..network import MLP
from . import distributed, peers
from .cases import Case, Target
from .compile_ahead import compile_ahead
from .machine import machine, machine_note
from .problems import problem
from .report import Outputs, table, verdicts, write_outputs
from .results import TIMED, Result
from .timing import Timings, interleaved, time_once

__all__ = ["TOLERANCE", "contenders", "run", "run_case"]

#: Largest relative difference from the float64 reference that passes the check, per dtype.
TOLERANCE = {"float32": 1e-4, "float64": 1e-10}


def contenders(backends: Sequence[str], asked_peers: Sequence[str] | None,
               dask: bool = False) -> list[str]:
    """The backends and peers that can run here, in order, after a line for each one asked
    for that cannot, saying why.

    Parameters
    ----------
    backends : sequence of str
        Names in ``fastprop.BACKENDS``.
    asked_peers : sequence of str or None
        Names in :data:`.peers.PEERS`; None for every peer installed, silently.
    dask : bool
        Add the distributed contender (:data:`.distributed.DASK`) last.

    Returns
    -------
    list of str
    """
    names = [*backends, *(peers.available_peers() if asked_peers is None else asked_peers),
             *([distributed.DASK] if dask else [])]
    skipped = {name: why for name in names if (why := _unavailable(name)) is not None}
    for name, why in skipped.items():
        print(f"not available, skipped: {name} ({why})")
    return [name for name in names if name not in skipped]


def _unavailable(name: str) -> str | None:
    """Why backend or peer ``name`` cannot be timed here, or None."""
    if name == distributed.DASK:
        return distributed.unavailable_reason()
    return unavailable_reason(name) if name in BACKENDS else peers.unavailable_reason(name)


def _backend_call(net: MLP, name: str, params: np.ndarray, X: np.ndarray,
                  Y: np.ndarray) -> Callable[[], object]:
    """One gradient of backend ``name`` into a buffer of its own, called as a user would (the
    GPU backends on GPU arrays)."""
    arrays = (params, X, Y, np.empty_like(params))
    if BACKENDS[name].device:
        arrays = tuple(cuda_runtime.to_device(a) for a in arrays)
    params, X, Y, out = arrays

    def call() -> object:
        return net.value_and_grad(params, X, Y, backend=name, out=out)

    return call


def _calls(case: Case, names: Sequence[str],
           seed: int) -> tuple[dict[str, Callable[[], object]], tuple[float, np.ndarray]]:
    """Zero-argument calls of every contender, and the float64 reference (loss, gradient)."""
    net, params, X, Y = problem(case, seed)
    calls: dict[str, Callable[[], object]] = {}
    for name in names:
        if name in BACKENDS:
            calls[name] = _backend_call(net, name, params, X, Y)
        else:
            make = distributed.make_dask if name == distributed.DASK else peers.PEERS[name][0]
            peer = make(case.sizes, case.dtype)
            calls[name] = lambda peer=peer: peer(params, X, Y)
    as64 = [a.astype(np.float64) for a in (params, X, Y)]
    return calls, peers.make_numpy(case.sizes, np.float64)(*as64)


def _relative_error(result: object, reference: tuple[float, np.ndarray]) -> float:
    """The larger of the gradient's and the loss's differences from ``reference``, relative to
    the reference's largest gradient entry and to its loss."""
    loss, grad = result
    if hasattr(grad, "copy_to_host"):  # a numba device array
        grad = grad.copy_to_host()
    elif hasattr(grad, "cpu"):  # a PyTorch tensor
        grad = grad.detach().cpu().numpy()
    ref_loss, ref_grad = reference
    grad_error = np.abs(np.asarray(grad, np.float64) - ref_grad).max() / np.abs(ref_grad).max()
    return float(max(grad_error, abs(loss - ref_loss) / abs(ref_loss)))


def run_case(case: Case, names: Sequence[str], budget_s: float, max_call_s: float,
             seed: int = 0) -> list[Result]:
    """Build, warm up, check and time every contender of one case."""
    calls, reference = _calls(case, names, seed)
    results, estimates = {}, {}
    for name, call in calls.items():
        status, error, seconds = "ok", math.nan, math.nan
        try:
            for _ in range(2):  # the first call may compile
                seconds = time_once(call)
            if name != "gemm":  # the floor computes no gradient
                error = _relative_error(call(), reference)
                if not error <= TOLERANCE[case.dtype]:
                    status = "WRONG"
        except Exception as exc:  # a failing contender is reported, not fatal
            status = f"error: {type(exc).__name__}: {exc}"
        if status == "ok" and seconds > max_call_s:
            status = "slow"
        results[name] = Result(case, name, status, error,
                               Timings(times=[seconds] if status == "slow" else []))
        estimates[name] = seconds
    timed = {name: calls[name] for name, result in results.items() if result.status == "ok"}
    for name, timings in interleaved(timed, estimates, budget_s, seed=seed).items():
        results[name].timings = timings
    return list(results.values())


def run(cases: Sequence[Case], names: Sequence[str], baseline: str, budget_s: float,
        max_call_s: float, outputs: Outputs | None = None, progress: bool = True,
        targets: Sequence[Target] = ()) -> int:
    """The whole command: every case, the table, the machine note, the targets' verdicts and
    the files asked for.

    Parameters
    ----------
    cases : sequence of Case
        In the order of the table.
    names : sequence of str
        The contenders, from :func:`contenders`.
    baseline : str
        The backend whose speedups are shown (the first contender if it is not one of them).
    budget_s, max_call_s : float
        Seconds of timing per case; a contender slower than ``max_call_s`` per call is timed
        from one call.
    outputs : Outputs, optional
        The files to write.
    progress : bool
        Show a progress bar.
    targets : sequence of Target
        Speed targets to report on.

    Returns
    -------
    int
        The exit status: 1 when a fastprop backend (or the Dask contender, fastprop's too)
        failed its check or its call, else 0.
    """
    from tqdm import tqdm

    baseline = baseline if baseline in names else names[0]
    results: list[Result] = []
    with tqdm(cases, desc="compare", unit="case", disable=not progress) as bar:
        for case in bar:
            bar.set_postfix_str(case.label)
            compile_ahead(case, names)
            results.extend(run_case(case, names, budget_s, max_call_s))
    print(table(results, names, baseline))
    uses_gpu = any(BACKENDS[name].device if name in BACKENDS else name in peers.GPU_PEERS
                   for name in names)
    where = machine(gpu=uses_gpu)
    print("\n" + "\n".join(machine_note(where)))
    for line in [*verdicts(results, baseline, targets),
                 *distributed.overhead_lines(results, baseline)]:
        print(line)
    untimed = [r for r in results if r.status not in TIMED]
    for r in untimed:
        print(f"WARNING: {r.name} at {r.case.label}: {r.status}")
    write_outputs(results, names, baseline, where, outputs or Outputs())
    return 1 if any(r.name in BACKENDS or r.name == distributed.DASK for r in untimed) else 0
