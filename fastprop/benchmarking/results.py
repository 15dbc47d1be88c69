"""What a comparison found: one :class:`Result` per contender and case, and their rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .cases import Case
from .timing import Timings

__all__ = ["TIMED", "Result", "rows"]

#: The statuses of a result that was timed.
TIMED = ("ok", "slow")


@dataclass
class Result:
    """What one contender did in one case.

    ``status`` is ``ok``, ``slow`` (one call took longer than the limit: that call is the
    time), ``WRONG`` (its gradient disagreed; not timed) or ``error: ...``.
    """

    case: Case
    name: str
    status: str
    error: float
    timings: Timings

    @property
    def seconds(self) -> float:
        """Median seconds per call; NaN if not timed."""
        return self.timings.median if self.status in TIMED else math.nan


def rows(results: Sequence[Result],
         baseline: str) -> list[tuple[Case, dict[str, Result], float]]:
    """Per case, in run order: the case, its results by contender and the baseline's median
    (NaN without one)."""
    found = []
    for case in dict.fromkeys(result.case for result in results):
        row = {r.name: r for r in results if r.case == case}
        found.append((case, row, row[baseline].seconds if baseline in row else math.nan))
    return found
