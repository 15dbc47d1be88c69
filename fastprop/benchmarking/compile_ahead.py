"""A comparison's kernels compiled before they are timed, side by side in new processes.

With an empty numba cache (a fresh install), each CPU backend compiles its gradient at the first
case that calls it, one backend after the other: numba compiles in one thread, so the other
cores wait. Before each case, :func:`compile_ahead` finds the gradients that this process has
not compiled or loaded yet, one per backend, dtype and kind of call (a batch on the calling
thread, or split among threads: each is its own compiled entry point), and where there are two
or more, computes each in a new process, as many at once as there are cores. They fill numba's
disk cache (its saves take turns, see :func:`fastprop._jit.jit`), and the comparison then loads
the kernels instead of compiling them. Nothing is timed while they run. With a warm cache they
only load.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from ..backends import BACKENDS
from ..network import MLP
from ..threads import numba_threads
from .cases import NETWORK, Case

#: Computes one gradient of a case: backend, ``BxHxM``, dtype and numba's thread count in
#: ``sys.argv``, the arrays of the comparison's own problem.
_GRADIENT = """
import sys
import numpy as np
import fastprop
from fastprop.benchmarking.cases import Case
from fastprop.benchmarking.problems import problem

backend, shape, dtype, threads = sys.argv[1:]
fastprop.set_num_threads(int(threads))
net, params, X, Y = problem(Case.of(shape, dtype))
net.value_and_grad(params, X, Y, backend=backend, out=np.empty_like(params))
"""


def _in_this_process(name: str, case: Case) -> bool:
    """Whether the entry point that a gradient of ``case`` calls on CPU backend ``name`` has an
    overload for the case's dtype in this process (compiled or loaded)."""
    spec = MLP(case.sizes, dtype=case.dtype, **NETWORK).spec
    kernel, _, _ = BACKENDS[name].gradient_kernel(spec, case.batch)
    # The third argument of every entry point is ``params`` (fastprop.cpu.common).
    return any(str(signature[2].dtype) == case.dtype for signature in kernel.signatures)


def compile_ahead(case: Case, names: Iterable[str]) -> None:
    """Compile, in new processes side by side, the gradients of ``case`` that the CPU backends
    among ``names`` have not compiled or loaded in this process, when there are two or more; a
    single one compiles where it runs. A process that fails changes nothing: the comparison
    then compiles, and reports any error, itself."""
    todo = [name for name in names if name in BACKENDS and not BACKENDS[name].device
            and not _in_this_process(name, case)]
    if len(todo) < 2:
        return
    threads = str(numba_threads())

    def compile_one(name: str) -> None:
        subprocess.run([sys.executable, "-c", _GRADIENT, name, str(case.shape), case.dtype,
                        threads], capture_output=True, check=False)

    with ThreadPoolExecutor(min(len(todo), os.cpu_count() or 1)) as pool:
        list(pool.map(compile_one, todo))
