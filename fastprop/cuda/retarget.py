"""The CPU core's scalar functions compiled again for the GPU, from the same Python source.

:func:`device_function` takes a ``@jit`` function of the CPU core (e.g.
:func:`fastprop.losses.loss_and_delta`) and compiles its Python source as a CUDA device function,
after pointing every compiled function that it calls at that function's own device version (the
CPU-only :func:`fastprop.activations.tanh`, written for SIMD, becomes CUDA's ``math.tanh``). So
each activation, derivative and loss is written once, and both targets compute the same thing.

Only a function's own globals are replaced, in a copy of its globals: the CPU functions are left
as they are.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Callable

from numba.core.registry import CPUDispatcher

from .. import activations, losses
from ..cpu import common
from .runtime import cuda

#: CPU functions that have a device counterpart of their own instead of a retargeted copy.
_REPLACEMENTS: dict[object, Callable] = {activations.tanh: math.tanh,
                                          activations.exp_nonpositive: math.exp}


@functools.cache
def device_function(function: CPUDispatcher) -> Callable:
    """The CUDA device-function version of the CPU ``@jit`` function ``function``, inlined
    where it is called."""
    source = function.py_func
    scope = dict(source.__globals__)
    for name in source.__code__.co_names:
        callee = scope.get(name)
        if isinstance(callee, types.FunctionType) and callee in _REPLACEMENTS:
            scope[name] = _REPLACEMENTS[callee]
        elif isinstance(callee, CPUDispatcher):
            scope[name] = device_function(callee)
    copy = types.FunctionType(source.__code__, scope, source.__name__, source.__defaults__,
                              source.__closure__)
    copy.__qualname__ = source.__qualname__
    return cuda().jit(device=True, inline="always")(copy)


def activate() -> Callable:
    """Device :func:`fastprop.activations.activate`."""
    return device_function(activations.activate)


def derivative() -> Callable:
    """Device :func:`fastprop.activations.derivative`."""
    return device_function(activations.derivative)


def loss_and_delta() -> Callable:
    """Device :func:`fastprop.losses.loss_and_delta`."""
    return device_function(losses.loss_and_delta)


def output_activation() -> Callable:
    """Device :func:`fastprop.losses.output_activation`."""
    return device_function(losses.output_activation)


def total_width() -> Callable:
    """Device :func:`fastprop.cpu.common.total_width`."""
    return device_function(common.total_width)
