"""pytest's hooks and settings for the whole suite: the CUDA simulator switch, the hypothesis
profiles, and the first-call tests running first (under pytest-xdist, alone). Shared helper
functions live in ``helpers.py`` (import them from there, not from this module)."""

from __future__ import annotations

import os
import shutil
import sys

# Without a GPU, the CUDA tests run on numba's simulator. Set before anything imports numba.cuda
# (fastprop never does at import), whichever test module is collected first.
if shutil.which("nvidia-smi") is None and "NUMBA_ENABLE_CUDASIM" not in os.environ:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    if "numba" in sys.modules:  # numba reads its settings when it is imported
        sys.modules["numba"].core.config.reload_config()

# Imported here, before any test module is collected, so that helpers.FRESH_NUMBA_CACHE sees
# numba's disk cache before any test compiles.
import pytest
from helpers import FIRST_CALL_TEST, first_call_barrier, wait_for_first_calls
from hypothesis import settings


def pytest_collection_modifyitems(items: list) -> None:
    """Run the first-call tests (tests/tooling/test_first_call.py) first (see
    :data:`helpers.FRESH_NUMBA_CACHE`); under pytest-xdist, hold the other workers' tests until
    the first-call test has filled a fresh cache (:func:`helpers.first_call_barrier`)."""
    items.sort(key=lambda item: item.path.name != "test_first_call.py")
    barrier = first_call_barrier()
    if barrier is not None and any(item.name == FIRST_CALL_TEST for item in items):
        barrier.touch()


@pytest.fixture(autouse=True)
def _after_the_first_calls(request: pytest.FixtureRequest) -> None:
    """Every test but the first-call test starts once it has filled a fresh cache."""
    if request.node.name != FIRST_CALL_TEST:
        wait_for_first_calls()

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
