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

``tanh`` is computed by :func:`tanh`, not by the C library: libm's ``tanh`` is a call per element
that LLVM cannot vectorise, and it dominated the forward pass. :func:`tanh` is branch-free
arithmetic that vectorises: Cephes' approximations, in float64 within 2 ulp of NumPy's ``tanh``,
in float32 within 1 ulp of the correctly rounded value and in float32 arithmetic, which fits
twice the SIMD lanes; tests sweep millions of points.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._jit import jit
from ._kernel_ids import LEAKY_RELU, RELU, SIGMOID, SOFTPLUS, TANH

#: Slope of leaky_relu for z <= 0.
LEAKY_SLOPE = 0.01


# Cephes' tanh: x + x^3 P(x^2) / Q(x^2) for |x| < 0.625 ...
_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
# ... and 1 - 2 / (exp(2|x|) + 1) above, with Cephes' exp: 2^n exp(r), r = y - n log(2) in two
# parts, exp(r) = 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2)).
_EXP_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
_EXP_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
          2.00000000000000000009e0)
_LOG2E = 1.4426950408889634
_LN2_HIGH = 6.93145751953125e-1
_LN2_LOW = 1.42860682030941723212e-6


@intrinsic
def _power_of_two(typingctx, n):
    """``2.0 ** n`` for a float ``n`` holding an integer in the normal exponent range, built from
    its exponent bits: three SIMD operations (to integer, shift, reinterpret), where
    ``float(1 << int(n))`` went through 64-bit integers and back, two halves per vector."""
    if not isinstance(n, types.Float):
        return None
    bits = n.bitwidth
    mantissa, bias = (23, 127) if bits == 32 else (52, 1023)

    def codegen(context, builder, signature, args):
        integer = cgutils.ir.IntType(bits)
        exponent = builder.add(builder.fptosi(args[0], integer), integer(bias))
        return builder.bitcast(builder.shl(exponent, integer(mantissa)), args[0].type)

    return n(n), codegen


@jit
def _exp64(y):
    """Cephes' exp for ``y`` where ``2^n`` is normal (``-708.39 <= y <= 709``), or NaN."""
    n = np.floor(_LOG2E * y + 0.5)
    n = n if n == n else 0.0  # NaN: a defined exponent for the bits; r carries the NaN
    r = (y - n * _LN2_HIGH) - n * _LN2_LOW
    rr = r * r
    pr = r * ((_EXP_P[0] * rr + _EXP_P[1]) * rr + _EXP_P[2])
    qr = ((_EXP_Q[0] * rr + _EXP_Q[1]) * rr + _EXP_Q[2]) * rr + _EXP_Q[3]
    return (1.0 + 2.0 * pr / (qr - pr)) * _power_of_two(n)


@jit(inline="always")
def _tanh64(x):
    z = abs(x)
    s = z * z
    p = (_TANH_P[0] * s + _TANH_P[1]) * s + _TANH_P[2]
    q = ((s + _TANH_Q[0]) * s + _TANH_Q[1]) * s + _TANH_Q[2]
    small = z + z * s * (p / q)
    # tanh(20) rounds to 1; capping there keeps 2^n a normal number (n <= 58).
    large = 1.0 - 2.0 / (_exp64(2.0 * (z if z < 20.0 else 20.0)) + 1.0)
    # (NaN fails every comparison, so it takes the `small` branch, which propagates it.)
    return math.copysign(large if z >= 0.625 else small, x)


_F32 = np.float32
_TANHF_P = tuple(_F32(c) for c in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                   1.33314422036e-1, -3.33332819422e-1))
_EXPF_P = tuple(_F32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                  4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_LOG2E_F, _LN2_HIGH_F, _LN2_LOW_F = _F32(_LOG2E), _F32(0.693359375), _F32(-2.12194440e-4)
_ONE_F, _TWO_F, _HALF_F, _CAP_F, _SPLIT_F = _F32(1), _F32(2), _F32(0.5), _F32(10), _F32(0.625)


@jit
def _exp32(y):
    """Cephes' expf in float32 arithmetic, for ``y`` where ``2^n`` is normal
    (``-87.33 <= y <= 88.7``), or NaN."""
    n = np.floor(_LOG2E_F * y + _HALF_F)
    n = n if n == n else _F32(0)  # NaN: a defined exponent for the bits; r carries the NaN
    r = (y - n * _LN2_HIGH_F) - n * _LN2_LOW_F
    e = _EXPF_P
    poly = (((((e[0] * r + e[1]) * r + e[2]) * r + e[3]) * r + e[4]) * r + e[5])
    return (poly * (r * r) + r + _ONE_F) * _power_of_two(n)


@jit(inline="always")
def _tanh32(x):
    """Cephes' tanhf and expf, in float32 arithmetic throughout (same plan as :func:`_tanh64`)."""
    z = abs(x)
    s = z * z
    p = _TANHF_P
    small = (((((p[0] * s + p[1]) * s + p[2]) * s + p[3]) * s + p[4]) * s) * z + z
    # tanh(10) rounds to 1 in float32; capping there keeps 2^n a normal number (n <= 29).
    large = _ONE_F - _TWO_F / (_exp32(_TWO_F * (z if z < _CAP_F else _CAP_F)) + _ONE_F)
    return math.copysign(large if z >= _SPLIT_F else small, x)


def tanh(z):
    """Hyperbolic tangent in vectorisable arithmetic, for compiled code (see the module notes).

    float32 in float32 arithmetic, anything else in float64. NaN gives NaN, +-inf gives +-1,
    and the sign of zero is kept.
    """
    return math.tanh(z)


def _compile_by_precision(python_function, float32_version, float64_version):
    """Compile calls to ``python_function`` (a stand-in that runs in plain Python) as
    ``float32_version`` for a float32 argument and ``float64_version`` for anything else
    (converted to float64), inlined."""

    @overload(python_function, inline="always")
    def _compiled(x):
        if isinstance(x, types.Float) and x.bitwidth == 32:
            return lambda x: float32_version(x)
        return lambda x: float64_version(np.float64(x))


_compile_by_precision(tanh, _tanh32, _tanh64)


#: Below these, exp(x) is under the smallest normal number: exp_nonpositive returns 0 there.
_EXP_LOW = -708.3964185322641
_EXP_LOW_F = _F32(-87.33654)


@jit
def _exp_nonpositive32(x):
    e = _exp32(_EXP_LOW_F if x < _EXP_LOW_F else x)
    return _F32(0) if x < _EXP_LOW_F else e


@jit
def _exp_nonpositive64(x):
    e = _exp64(_EXP_LOW if x < _EXP_LOW else x)
    return 0.0 if x < _EXP_LOW else e


def exp_nonpositive(x):
    """``exp(x)`` for ``x <= 0`` (softmax's shifted scores) in vectorisable arithmetic, for
    compiled code: Cephes' exp (as :func:`tanh`), float32 in float32 arithmetic. Results below
    the smallest normal number are 0 (no subnormals), ``-inf`` gives 0 and NaN gives NaN."""
    return math.exp(x)


_compile_by_precision(exp_nonpositive, _exp_nonpositive32, _exp_nonpositive64)


@jit(inline="always")
def sigmoid(z):
    """Logistic function, without overflow for any finite ``z``; keeps the dtype of ``z``."""
    one = type(z)(1)
    if z >= 0:
        return one / (one + math.exp(-z))
    e = math.exp(z)
    return e / (one + e)


@jit(inline="always")
def softplus(z):
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return max(z, type(z)(0)) + math.log1p(math.exp(-abs(z)))


@jit(inline="always")
def activate(kind, z):
    """Apply activation ``kind`` (an id from :data:`ACTIVATIONS`) to the scalar ``z``."""
    t = type(z)
    if kind == TANH:
        return tanh(z)
    # relu and leaky_relu are written so that NaN fails the test and passes through.
    if kind == RELU:
        return t(0) if z <= 0 else z
    if kind == SIGMOID:
        return sigmoid(z)
    if kind == LEAKY_RELU:
        return z * t(LEAKY_SLOPE) if z <= 0 else z
    if kind == SOFTPLUS:
        return softplus(z)
    return z


@jit(inline="always")
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
