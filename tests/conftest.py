"""Session fixtures: the real Kafka broker every integration, contract and e2e test runs on.

Every test that uses the broker (the `kafka` or `bootstrap` fixture, or a broker of its own under
tests/e2e) is marked `kafka`, so `pytest -m "not kafka"` starts no broker.

The brokers take SASL_SSL only. Every broker of the session shares one secrets folder (`kafka_secrets`: a CA,
the broker certificate, one password per principal), and the session's environment logs test code in as the
tooling principal, so `KafkaSettings(bootstrap=...)` reaches any of them; processes a test starts through
devtools.Stack log in as their own service's principal.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.broker import ROOT, KafkaAccess, LocalBroker, make_secrets
from shared.runtime.acls import TOOLING
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

# Services built in a test process have no identity provider: authentication is off for them unless a test
# passes its own AuthSettings (the stack and tests of authentication mint their own keys and tokens).
os.environ.setdefault("COUNTERMAND_AUTH", "off")
# Likewise record signatures: tests of signing (and the stack, which mints keys per service) turn them on.
os.environ.setdefault("COUNTERMAND_SIGNING_MODE", "off")
BROKER_FIXTURES = {"kafka", "bootstrap", "kafka_secrets"}
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
def kafka_secrets(kafka_dir: Path) -> Iterator[Path]:
    """The secrets folder every broker of the session is started with (made once, at the session's start); sets
    the session's COUNTERMAND_KAFKA_* login to the tooling principal (not the bootstrap), restored at the end."""
    folder = kafka_dir.with_name(f"{kafka_dir.name}-secrets")
    shutil.rmtree(folder, ignore_errors=True)
    access = make_secrets(folder)
    with pytest.MonkeyPatch.context() as env:
        for name, value in access.env(TOOLING).items():
            if name != "COUNTERMAND_KAFKA_BOOTSTRAP":
                env.setenv(name, value)
        yield folder


@pytest.fixture(scope="session")
def kafka(kafka_dir: Path, kafka_secrets: Path) -> Iterator[LocalBroker]:
    """The session's own broker, started once and stopped at the end (also when tests fail)."""
    with LocalBroker(kafka_dir, secrets=kafka_secrets) as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_access(kafka: LocalBroker) -> KafkaAccess:
    """Every principal's login to the session broker."""
    return kafka.access


@pytest.fixture(scope="session")
async def bootstrap(kafka: LocalBroker) -> str:
    """Bootstrap servers of the session broker, with every catalogue topic created."""
    await apply_topics(KafkaSettings(bootstrap=kafka.bootstrap))
    return kafka.bootstrap


@pytest.fixture
def unique() -> str:
    """A short token unique in this session, for directive ids and consumer groups."""
    return f"t{os.getpid()}-{next(_ids)}"


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def twin_kafka(request: pytest.FixtureRequest) -> KafkaSettings | None:
    """A twin test's transport: None in memory (TestKafkaBroker alone); the session broker's settings on the real
    one (the broker is started only then), so one test body runs on both."""
    return KafkaSettings(bootstrap=request.getfixturevalue("bootstrap")) if request.param == "kafka" else None
