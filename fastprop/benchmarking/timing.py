"""Timing several callables side by side on a small, shared machine.

Medians of interleaved rounds: every round calls every contender once (``k`` calls in a row for
fast ones, divided by ``k``), in a new random order, so noise from other processes and from the
contenders' own thread pools falls on all of them alike. Each library keeps its threads spinning
for a while after a call returns (OpenBLAS, OpenMP, XLA), which slows whatever runs next on two
cores; so each contender's timed calls follow a few untimed "settle" calls of its own, and the
order is shuffled, not rotated, so that every contender follows every other equally often.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

#: A round's timed calls of one contender should take about this long (inner loop ``k``).
INNER_TARGET_S = 2e-4
#: Untimed calls before a contender's timed ones, in seconds' worth (none for slow calls).
SETTLE_S = 5e-3
SETTLE_UP_TO_S = 5e-2


@dataclass
class Timings:
    """Per-call times (seconds) of one contender, one entry per round."""

    times: list[float] = field(default_factory=list)
    k: int = 1
    settle: int = 0

    @property
    def median(self) -> float:
        """Median seconds per call (NaN when never timed)."""
        return statistics.median(self.times) if self.times else math.nan


def time_once(call: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def interleaved(calls: Mapping[str, Callable[[], object]], estimates: Mapping[str, float],
                budget_s: float, min_rounds: int = 3, max_rounds: int = 200,
                seed: int = 0) -> dict[str, Timings]:
    """Time ``calls`` in interleaved rounds for about ``budget_s`` seconds.

    Parameters
    ----------
    calls : mapping of str to callable
        Zero-argument calls, already warmed up.
    estimates : mapping of str to float
        Seconds per call of each, from the warm-up: they set each contender's inner loop, its
        settle calls and the number of rounds.
    budget_s : float
        Time to spend, split into rounds (at least ``min_rounds``, at most ``max_rounds``);
        the rounds stop after three times the budget even if fewer were done.
    seed : int
        Seed of the round orders.

    Returns
    -------
    dict of str to Timings
    """
    results = {}
    for name in calls:
        estimate = max(estimates[name], 1e-9)
        results[name] = Timings(
            k=max(1, min(1000, math.ceil(INNER_TARGET_S / estimate))),
            settle=math.ceil(SETTLE_S / estimate) if estimate < SETTLE_UP_TO_S else 0)
    round_s = sum((t.k + t.settle) * estimates[name] for name, t in results.items())
    rounds = max(min_rounds, min(max_rounds, math.ceil(budget_s / max(round_s, 1e-9))))
    names = list(calls)
    orders = np.random.default_rng(seed).permuted(np.tile(np.arange(len(names)), (rounds, 1)),
                                                  axis=1)
    deadline = time.perf_counter() + 3 * budget_s
    gc.collect()
    gc.disable()
    try:
        for order in orders:
            for name in (names[i] for i in order):
                call, timing = calls[name], results[name]
                for _ in range(timing.settle):
                    call()
                start = time.perf_counter()
                for _ in range(timing.k):
                    call()
                timing.times.append((time.perf_counter() - start) / timing.k)
            if time.perf_counter() > deadline:
                break
    finally:
        gc.enable()
    return results
