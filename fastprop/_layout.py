"""The integer table that tells the compiled kernels where each layer lives.

A network is described to compiled code by one C-contiguous ``int64`` array ``layout`` of shape
``(n_layers, N_COLUMNS)``; row ``l`` holds layer ``l + 1`` of the network (0-based here):

``N_IN``, ``N_OUT``
    the layer's input and output widths;
``W_OFF``, ``B_OFF``
    offsets of its weight matrix (``N_OUT x N_IN``, row-major) and bias in the flat parameter
    vector (and in the gradient, which has the same layout);
``ACT``
    its activation id (hidden layers: :data:`fastprop.activations.ACTIVATIONS`; the last layer:
    :data:`fastprop.losses.OUTPUTS`);
``A_OFF``
    the sum of the output widths of the layers before it, so that a per-sample buffer holding
    every layer's activations side by side keeps this layer's at ``[A_OFF, A_OFF + N_OUT)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

N_IN, N_OUT, W_OFF, B_OFF, ACT, A_OFF = range(6)
N_COLUMNS = 6


def parameter_count(sizes: Sequence[int]) -> int:
    """Length of the flat parameter vector of a network of layer widths ``sizes``."""
    return sum(n_out * n_in + n_out for n_in, n_out in pairwise(sizes))


def build_layout(sizes: Sequence[int], activation_ids: Sequence[int]) -> np.ndarray:
    """Build the layout table for layer widths ``sizes`` and one activation id per layer."""
    n_layers = len(sizes) - 1
    layout = np.zeros((n_layers, N_COLUMNS), dtype=np.int64)
    offset = 0
    width_before = 0
    for layer in range(n_layers):
        n_in, n_out = sizes[layer], sizes[layer + 1]
        layout[layer] = (n_in, n_out, offset, offset + n_out * n_in, activation_ids[layer],
                         width_before)
        offset += n_out * n_in + n_out
        width_before += n_out
    layout.flags.writeable = False
    return layout
