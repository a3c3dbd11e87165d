"""Hypothesis profiles for the fuzz tests: `ci` (what `make test` runs: few examples, derandomized, so a run is
stable) unless COUNTERMAND_FUZZ_PROFILE names another (`long`: many random examples, for a search for crashes).
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": timedelta(seconds=5),  # one example taking longer is a hang, and fails
    "suppress_health_check": (HealthCheck.too_slow, HealthCheck.data_too_large),
    "print_blob": True,
}
settings.register_profile("ci", max_examples=40, derandomize=True, database=None, **_COMMON)
settings.register_profile("long", max_examples=5000, derandomize=False, **_COMMON)
PROFILE = os.environ.get("COUNTERMAND_FUZZ_PROFILE", "ci")
settings.load_profile(PROFILE)
