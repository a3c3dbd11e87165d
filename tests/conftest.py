"""Session fixtures: the real Kafka broker every integration, contract and e2e test runs on."""

from __future__ import annotations

import itertools
import os

import pytest

from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics
from tests.support.kafka import TestKafka, kafka_data_dir

_ids = itertools.count(1)


@pytest.fixture(scope="session")
def kafka() -> TestKafka:
    """The session's own broker, started once and stopped at the end (also when tests fail)."""
    with TestKafka(kafka_data_dir()) as broker:
        yield broker


@pytest.fixture(scope="session")
async def bootstrap(kafka: TestKafka) -> str:
    """Bootstrap servers of the session broker, with every catalogue topic created."""
    await apply_topics(KafkaSettings(bootstrap=kafka.bootstrap))
    return kafka.bootstrap


@pytest.fixture
def unique() -> str:
    """A short token unique in this session, for directive ids and consumer groups."""
    return f"t{os.getpid()}-{next(_ids)}"
