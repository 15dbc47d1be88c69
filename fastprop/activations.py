"""Activation functions and their derivatives, as small compiled scalar functions.

Every activation is looked up by an integer id (the compiled kernels take ids, not names). The
derivative is written in terms of the activation's *output* ``a = f(z)``, so the forward pass only
has to keep the activations, never the pre-activations:

==============  ================================  ==========================================
name            a = f(z)                          f'(z) written with a
==============  ================================  ==========================================
identity        z                                 1
sigmoid         1 / (1 + exp(-z))                 a (1 - a)
tanh            tanh(z)                           1 - a^2
relu            max(z, 0)                         1 if a > 0 else 0   (0 at z = 0)
leaky_relu      z if z > 0 else 0.01 z            1 if a > 0 else 0.01   (0.01 at z = 0)
softplus        log(1 + exp(z))                   1 - exp(-a)   (= sigmoid(z), via expm1)
==============  ================================  ==========================================

Sigmoid and softplus use the overflow-free forms, so any finite z gives a finite result.
"""

from __future__ import annotations

import math

from numba import njit

IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4
SOFTPLUS = 5

#: Hidden-layer activation names and their ids.
ACTIVATIONS: dict[str, int] = {
    "identity": IDENTITY,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softplus": SOFTPLUS,
}

#: Slope of leaky_relu for z <= 0.
LEAKY_SLOPE = 0.01


@njit(cache=True, inline="always")
def sigmoid(z):
    """Logistic function, without overflow for any finite ``z``; keeps the dtype of ``z``."""
    one = type(z)(1)
    if z >= 0:
        return one / (one + math.exp(-z))
    e = math.exp(z)
    return e / (one + e)


@njit(cache=True, inline="always")
def softplus(z):
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return max(z, type(z)(0)) + math.log1p(math.exp(-abs(z)))


@njit(cache=True, inline="always")
def activate(kind, z):
    """Apply activation ``kind`` (an id from :data:`ACTIVATIONS`) to the scalar ``z``."""
    t = type(z)
    if kind == TANH:
        return math.tanh(z)
    if kind == RELU:
        return z if z > 0 else t(0)
    if kind == SIGMOID:
        return sigmoid(z)
    if kind == LEAKY_RELU:
        return z if z > 0 else z * t(LEAKY_SLOPE)
    if kind == SOFTPLUS:
        return softplus(z)
    return z


@njit(cache=True, inline="always")
def derivative(kind, a):
    """Derivative of activation ``kind`` at the point whose activation output is ``a``."""
    t = type(a)
    if kind == TANH:
        return t(1) - a * a
    if kind == RELU:
        return t(1) if a > 0 else t(0)
    if kind == SIGMOID:
        return a * (t(1) - a)
    if kind == LEAKY_RELU:
        return t(1) if a > 0 else t(LEAKY_SLOPE)
    if kind == SOFTPLUS:
        return -math.expm1(-a)
    return t(1)
