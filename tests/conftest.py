"""Session fixtures: the real Kafka broker every integration, contract and e2e test runs on.

Every test that uses the broker (the `kafka` or `bootstrap` fixture, or a broker of its own under
tests/e2e) is marked `kafka`, so `pytest -m "not kafka"` starts no broker.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.broker import ROOT, LocalBroker
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

# Services built in a test process have no identity provider: authentication is off for them unless a test
# passes its own AuthSettings (the stack and tests of authentication mint their own keys and tokens).
os.environ.setdefault("COUNTERMAND_AUTH", "off")
BROKER_FIXTURES = {"kafka", "bootstrap"}
BROKER_FOLDERS = (Path(__file__).parent / "e2e",)  # each module there starts a broker of its own
_ids = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `kafka` every test that needs a broker: by the fixtures it uses, or by its folder."""
    for item in items:
        uses_broker = BROKER_FIXTURES & set(getattr(item, "fixturenames", ()))
        in_broker_folder = any(item.path.is_relative_to(folder) for folder in BROKER_FOLDERS)
        if uses_broker or in_broker_folder:
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_dir() -> Path:
    """Data folder of the session broker (COUNTERMAND_TEST_KAFKA_DIR; `make test` sets it); brokers of their
    own go beside it."""
    return Path(os.environ.get("COUNTERMAND_TEST_KAFKA_DIR", ROOT / ".run" / "test-kafka")).resolve()


@pytest.fixture(scope="session")
def kafka(kafka_dir: Path) -> Iterator[LocalBroker]:
    """The session's own broker, started once and stopped at the end (also when tests fail)."""
    with LocalBroker(kafka_dir) as broker:
        yield broker


@pytest.fixture(scope="session")
async def bootstrap(kafka: LocalBroker) -> str:
    """Bootstrap servers of the session broker, with every catalogue topic created."""
    await apply_topics(KafkaSettings(bootstrap=kafka.bootstrap))
    return kafka.bootstrap


@pytest.fixture
def unique() -> str:
    """A short token unique in this session, for directive ids and consumer groups."""
    return f"t{os.getpid()}-{next(_ids)}"
