"""The problem of a case: the network and the arrays that every contender is given.

``fastprop compare`` and the asv suite both build it here, from one fixed seed, so that both
time the same arrays for the same case.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..network import MLP
from .cases import NETWORK, Case

__all__ = ["SEED", "Problem", "problem"]

#: The seed of every problem's random numbers.
SEED = 0


class Problem(NamedTuple):
    """A network and the arrays of one gradient call.

    Attributes
    ----------
    net : fastprop.MLP
        The case's layer widths, dtype and :data:`~fastprop.benchmarking.cases.NETWORK`.
    params : ndarray
        Flat parameters.
    X, Y : ndarray
        Inputs and targets, shape ``(batch, width)``.
    """

    net: MLP
    params: NDArray
    X: NDArray
    Y: NDArray


def problem(case: Case, seed: int = SEED) -> Problem:
    """The network and arrays of ``case``, all drawn from one generator seeded ``seed``.

    The weights are ``net.init``'s; the biases are drawn too (normal, scale 0.1), so that a
    wrong bias gradient shows in the checks; ``X`` and ``Y`` are standard normal.

    Parameters
    ----------
    case : Case
        The network, batch and dtype.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Problem
        New arrays, in ``case.dtype``.
    """
    net = MLP(case.sizes, dtype=case.dtype, **NETWORK)
    rng = np.random.default_rng(seed)
    params = net.init(seed=rng)
    for _, b in net.unpack(params):
        b[:] = rng.normal(scale=0.1, size=b.shape)
    X = rng.normal(size=(case.batch, case.width)).astype(case.dtype)
    Y = rng.normal(size=(case.batch, case.width)).astype(case.dtype)
    return Problem(net, params, X, Y)
