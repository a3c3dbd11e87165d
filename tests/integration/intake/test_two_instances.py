"""Two intake instances on one broker, amending the same directive at the same moment: each revision is published
once, in order, and a request that lost the race is refused with 409 with nothing published for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.runtime.settings import KafkaSettings
from tests.integration.intake.racing import race_amendments

pytestmark = pytest.mark.kafka


async def test_concurrent_amendments_on_two_intakes_publish_each_revision_exactly_once(
    bootstrap: str, tmp_path: Path, unique: str
) -> None:
    await race_amendments(KafkaSettings(bootstrap=bootstrap), tmp_path, unique, amendments=50)
