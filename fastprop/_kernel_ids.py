"""The integer ids that compiled kernels take in place of names, and the statuses they return.

Plain Python: describing and checking a network imports no compiler.
"""

from __future__ import annotations

# -- hidden-layer activations (fastprop.activations) ----------------------------------------------

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

# -- output activations and losses (fastprop.losses) ----------------------------------------------

OUT_IDENTITY = 0
OUT_SIGMOID = 1
OUT_SOFTMAX = 2

#: Output activation names and their ids.
OUTPUTS: dict[str, int] = {"identity": OUT_IDENTITY, "sigmoid": OUT_SIGMOID,
                           "softmax": OUT_SOFTMAX}

SQUARED = 0
CROSS_ENTROPY = 1
BINARY_CROSS_ENTROPY = 2
HINGE = 3

#: Loss names and their ids.
LOSSES: dict[str, int] = {"squared": SQUARED, "cross_entropy": CROSS_ENTROPY,
                          "binary_cross_entropy": BINARY_CROSS_ENTROPY, "hinge": HINGE}

#: The output activations each loss accepts.
COMPATIBLE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "squared": ("identity", "sigmoid", "softmax"),
    "cross_entropy": ("softmax",),
    "binary_cross_entropy": ("sigmoid",),
    "hinge": ("identity",),
}

#: How each loss takes its targets: "rows" (float, batch x n_out), "labels" (integer, batch), or
#: "either".
TARGET_KINDS: dict[str, str] = {"squared": "rows", "cross_entropy": "either",
                                "binary_cross_entropy": "rows", "hinge": "labels"}

# -- statuses of the compiled entry points' input checks (fastprop.cpu.common) --------------------

OK = 0
LABEL_OUT_OF_RANGE = 1
X_NOT_FINITE = 2
Y_NOT_FINITE = 3
PARAMS_NOT_FINITE = 4
OUT_OVERLAPS_INPUT = 5
