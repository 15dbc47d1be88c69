"""Calling a compiled kernel without numba's per-call type dispatch.

On every call, numba's dispatcher works out the numba type of every argument and looks the
overload up; for the backends' 11-argument kernels that is a sizeable part of a small network's
whole gradient. Once a call with given argument types has run, :func:`compiled_entry` hands back
the compiled overload that ran it, which takes the same arguments without the dispatch.

The overload unboxes its arguments as the types it was compiled for, unchecked: it must only ever
be called with arguments of exactly those numba types. For an array that type is its dtype,
dimensions, layout and writeability: :class:`fastprop.cpu.backend.CpuBackend` takes the direct
path only for arrays whose ``array.flags.num`` has every bit of :data:`TYPE_FLAGS` set
(C-contiguous, aligned, writeable: one numba type per dtype and dimension count), keys the
overloads it keeps by the shapes, and checks the array class and the dtype objects on every call.
Other arrays (read-only ones, say) take the checked path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

#: NumPy's flag bits that an array's numba type depends on, all set for the direct path
#: (``NPY_ARRAY_C_CONTIGUOUS``, ``NPY_ARRAY_ALIGNED``, ``NPY_ARRAY_WRITEABLE``; fixed by NumPy's
#: C API).
TYPE_FLAGS = 0x0001 | 0x0100 | 0x0400


def compiled_entry(kernel: Callable, args: Sequence[object]) -> Callable | None:
    """The compiled overload of the numba dispatcher ``kernel`` for the types of ``args``,
    callable as ``entry(*args)`` with no type dispatch; None if ``kernel`` is not a dispatcher or
    has no such overload (call it once with ``args`` first)."""
    import numba
    from numba.core.dispatcher import Dispatcher

    if not isinstance(kernel, Dispatcher):
        return None
    overload = kernel.overloads.get(tuple(numba.typeof(arg) for arg in args))
    return None if overload is None else overload.entry_point
