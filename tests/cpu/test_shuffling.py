"""The epochs' random permutations (``fastprop.shuffling``): valid, reproducible, uniform."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fastprop.shuffling import _inside_out_shuffle, permutation


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000])
def test_is_a_permutation(n):
    order = permutation(np.random.default_rng(n), n)
    assert order.dtype == np.int64 and order.shape == (n,)
    assert (np.sort(order) == np.arange(n)).all()


def test_same_generator_state_same_permutation():
    first = permutation(np.random.default_rng(5), 100)
    assert (permutation(np.random.default_rng(5), 100) == first).all()
    assert (permutation(np.random.default_rng(6), 100) != first).any()
    rng = np.random.default_rng(5)
    permutation(rng, 100)
    assert (permutation(rng, 100) != first).any()  # the generator's state advances


def test_every_permutation_equally_likely():
    """Chi-square over the 24 orders of 4 elements: 99.99% quantile of chi2(23) is 56.3."""
    rng = np.random.default_rng(0)
    orders = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = np.zeros(len(orders))
    draws = 48_000
    for _ in range(draws):
        counts[orders[tuple(permutation(rng, 4))]] += 1
    expected = draws / len(orders)
    assert ((counts - expected) ** 2 / expected).sum() < 56.3


def test_rejected_draws_are_replaced_and_running_out_is_reported():
    """For bound 3, Lemire's method rejects the draw 0 (3 * 0 has low bits 0 < 2**32 % 3): the
    next draw is used instead; with no next draw the shuffle reports that it ran out."""
    order = np.empty(3, np.int64)
    draws = np.array([0, 0, 0, 5], np.uint32)  # bound 3 takes 5: 15 >> 32 = position 0
    assert _inside_out_shuffle(draws, order)
    assert list(order) == [2, 0, 1]
    assert not _inside_out_shuffle(draws[:3], order)


def test_too_many_samples():
    with pytest.raises(ValueError, match="n must be between 0 and"):
        permutation(np.random.default_rng(0), 1 << 32)
