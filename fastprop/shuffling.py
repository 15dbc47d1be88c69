"""Random permutations for the epochs of :func:`fastprop.train`, drawn from a NumPy ``Generator``.

``Generator.permutation(n)`` draws one bounded integer at a time, a noticeable part of a small
network's training epoch. :func:`permutation` draws its random
numbers in one block, ``rng.integers(..., dtype=uint32)``, and runs the Fisher-Yates shuffle in
compiled code, taking each bounded integer from a 32-bit draw by Lemire's multiply-and-shift
with rejection ("Fast random integer generation in an interval", 2019), which is exactly
uniform: every permutation is equally likely. It is a different permutation from NumPy's for
the same generator state; the same generator state always gives the same permutation.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

#: Extra draws for Lemire's rejections; each draw is rejected with probability below
#: ``n / 2**32``, so running out of 64 spares never happens in practice (then the block is
#: drawn again, twice as long).
SPARE_DRAWS = 64
#: Largest ``n``: bounds must fit in 32 bits.
MAX_SAMPLES = (1 << 32) - 1


@jit
def _inside_out_shuffle(draws, order):
    """Fill ``order`` with a uniform permutation of ``range(len(order))`` (the inside-out form of
    Fisher-Yates: element ``i`` goes to a uniform position ``j <= i``), taking 32-bit draws in
    turn; False if ``draws`` ran out (``order`` is then incomplete)."""
    low_bits = np.uint64(0xFFFFFFFF)
    two_32 = np.uint64(1 << 32)
    next_draw = 0
    for i in range(order.shape[0]):
        bound = np.uint64(i + 1)
        product = np.uint64(draws[next_draw]) * bound
        next_draw += 1
        if (product & low_bits) < bound:  # Lemire: reject the low products that make it biased
            threshold = (two_32 - bound) % bound
            while (product & low_bits) < threshold:
                if next_draw == draws.shape[0]:
                    return False
                product = np.uint64(draws[next_draw]) * bound
                next_draw += 1
        j = product >> np.uint64(32)
        order[i] = order[j]
        order[j] = i
    return True


def permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` as ``int64``, drawn from ``rng``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The source of randomness; its state advances.
    n : int
        Length, ``0 <= n <= 2**32 - 1``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, each of ``0 .. n-1`` once.
    """
    if not 0 <= n <= MAX_SAMPLES:
        raise ValueError(f"n must be between 0 and {MAX_SAMPLES}, got {n}")
    order = np.empty(n, np.int64)
    spare = SPARE_DRAWS
    while not _inside_out_shuffle(rng.integers(0, 1 << 32, size=n + spare, dtype=np.uint32),
                                  order):
        spare *= 2
    return order
