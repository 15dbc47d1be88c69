"""Loop-form backpropagation on the GPU: one thread per (sample, neuron), one kernel
per layer and step.

For each layer ``l`` (``a_in`` its input, ``W``, ``b`` its parameters)::

    forward   thread (s, j):  a[s, j] = f(b[j] + sum_i W[j, i] a_in[s, i])
    backward  thread (s, i):  delta_in[s, i] = f'(a_in[s, i]) * sum_h W[h, i] delta[s, h]
    weights   thread (j, i):  dW[j, i] = sum_s delta[s, j] a_in[s, i] (+ l2 W[j, i]),
              thread (j, n_in):  db[j] = sum_s delta[s, j]

Every sum runs in increasing index order in one thread: the weight gradients are reduced over the
batch without atomics, so a call gives the same bits every time. The loss, the checks and the
report are the shared kernels of :mod:`fastprop.cuda.samples`, :mod:`fastprop.cuda.checks` and
:mod:`fastprop.cuda.report`.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

from .._kernel_ids import IDENTITY
from .._layout import ACT, B_OFF, N_IN, N_OUT, W_OFF
from . import checks, config, launch, retarget, runtime, samples

#: ``numba.cuda``, bound by the kernel builders: the kernels name it as a module global, which
#: is how the CUDA simulator finds it to put its own in its place.
cuda: Any = None


@functools.cache
def kernels() -> SimpleNamespace:
    """``forward_layer``, ``backward_layer`` and ``weights_layer`` (any dtype)."""
    runtime.bind(globals())
    shared = samples.device_functions()
    dot, act_offset, delta_offset = shared.dot, shared.act_offset, shared.delta_offset
    failed = checks.kernels().failed
    activate = retarget.activate()
    derivative = retarget.derivative()

    @cuda.jit
    def forward_layer(layout, layer, params, a_in, a_in_start, work, batch):
        """Layer ``layer``'s activations (the last layer's raw scores) for every sample."""
        n_in = layout[layer, N_IN]
        n_out = layout[layer, N_OUT]
        act = layout[layer, ACT] if layer < layout.shape[0] - 1 else IDENTITY
        for e in range(cuda.grid(1), batch * n_out, cuda.gridsize(1)):
            s = e // n_out
            j = e - s * n_out
            z = params[layout[layer, B_OFF] + j] + dot(
                params, layout[layer, W_OFF] + j * n_in, 1, a_in, a_in_start + s * n_in, n_in)
            work[act_offset(layout, layer, batch) + e] = activate(act, z)

    @cuda.jit
    def backward_layer(layout, layer, params, work, batch):
        """The deltas of layer ``layer - 1`` from those of layer ``layer``."""
        n_in = layout[layer, N_IN]
        n_out = layout[layer, N_OUT]
        for e in range(cuda.grid(1), batch * n_in, cuda.gridsize(1)):
            s = e // n_in
            i = e - s * n_in
            g = dot(params, layout[layer, W_OFF] + i, n_in, work,
                    delta_offset(layout, layer, batch) + s * n_out, n_out)
            a = work[act_offset(layout, layer - 1, batch) + e]
            work[delta_offset(layout, layer - 1, batch) + e] = g * derivative(
                layout[layer - 1, ACT], a)

    @cuda.jit
    def weights_layer(layout, layer, params, a_in, a_in_start, work, batch, l2, epoch, flags,
                      grad):
        """Layer ``layer``'s weight and bias gradients, each summed over the batch in order."""
        n_in = layout[layer, N_IN]
        n_out = layout[layer, N_OUT]
        if failed(flags, epoch):
            return
        for e in range(cuda.grid(1), n_out * (n_in + 1), cuda.gridsize(1)):
            j = e // (n_in + 1)
            i = e - j * (n_in + 1)
            d_start = delta_offset(layout, layer, batch) + j
            if i == n_in:
                acc = work[d_start]
                for s in range(1, batch):
                    acc += work[d_start + s * n_out]
                grad[layout[layer, B_OFF] + j] = acc
            else:
                acc = work[d_start] * a_in[a_in_start + i]
                for s in range(1, batch):
                    acc += work[d_start + s * n_out] * a_in[a_in_start + s * n_in + i]
                w = layout[layer, W_OFF] + j * n_in + i
                grad[w] = acc + l2 * params[w] if l2 != 0 else acc

    return SimpleNamespace(forward_layer=forward_layer, backward_layer=backward_layer,
                           weights_layer=weights_layer)


def forward_pass(call: launch.Call) -> None:
    """Every layer's activations, the last layer's raw scores."""
    for layer in range(call.n_layers):
        n_out = int(call.ws.layout_host[layer, N_OUT])
        a_in, start = launch.layer_input(call, layer)
        kernels().forward_layer[launch.blocks(call.batch * n_out), config.THREADS_PER_BLOCK](
            call.ws.layout, layer, call.params, a_in, start, call.ws.work, call.batch)


def gradient(call: launch.Call, grad: Any) -> None:
    """Loss and gradient (into ``grad``): check, forward, loss, then per layer, from the top,
    the weight gradients and the deltas below."""
    launch.check(call)
    forward_pass(call)
    launch.loss_rows(call)
    k = kernels()
    for layer in range(call.n_layers - 1, -1, -1):
        n_in, n_out = (int(n) for n in call.ws.layout_host[layer, [N_IN, N_OUT]])
        a_in, start = launch.layer_input(call, layer)
        k.weights_layer[launch.blocks(n_out * (n_in + 1)), config.THREADS_PER_BLOCK](
            call.ws.layout, layer, call.params, a_in, start, call.ws.work, call.batch,
            call.l2, call.epoch, call.ws.flags, grad)
        if layer > 0:
            k.backward_layer[launch.blocks(call.batch * n_in), config.THREADS_PER_BLOCK](
                call.ws.layout, layer, call.params, call.ws.work, call.batch)
    launch.reduce_and_report(call)


def loss(call: launch.Call) -> None:
    """The loss alone: check, forward, loss."""
    launch.check(call)
    forward_pass(call)
    launch.loss_rows(call)
    launch.reduce_and_report(call)
