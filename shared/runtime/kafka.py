"""The one place Kafka clients are made: admin clients, consumers, producers and FastStream brokers.

Every client takes one KafkaSettings, so security (TLS, SASL), client ids, timeouts, compression and size
limits are decided here and nowhere else. Also here, once each: end offsets of a topic now, and a topic
read back from its beginning.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.contracts.catalogue import FETCH_BYTES, Topic
from shared.runtime.aiokafka_fence import close_fetches_quietly, keep_scram_salted_password
from shared.runtime.settings import KafkaSettings

POLL_MS = 500
READ_TO_END_WAIT_MS = 10  # how long the broker may hold a fetch of a read to the end (records_to_end)
# An offset probe's first question about a topic finds no metadata for it yet: aiokafka asks for it and sleeps its
# retry backoff before asking again (the default 100 ms was a tenth of an impact restart).
PROBE_RETRY_MS = 20
# Every consumer reads committed records only: a record of an aborted transaction (intake's conditional publish of
# directive events) was never published; end offsets are then the last stable offsets.
ISOLATION = "read_committed"
_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


keep_scram_salted_password()  # every client of the process, FastStream's included, logs in with aiokafka's SCRAM
close_fetches_quietly()  # and stops its consumers with aiokafka's fetcher


class TopicMismatch(RuntimeError):
    """A topic on the broker does not have the catalogue's partitions (or is missing)."""


def client_id(settings: KafkaSettings, purpose: str) -> str:
    """The client id of one client: the prefix, then what it is for (service, instance, use)."""
    return f"{settings.client_id_prefix}-{purpose}"


def tls_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (the CA file, or the system's CAs), else None."""
    if not settings.uses_tls:
        return None
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"COUNTERMAND_KAFKA_{name.upper()}: {path} is not a readable file")
    context = create_ssl_context(
        cafile=settings.ssl_cafile, certfile=settings.ssl_certfile, keyfile=settings.ssl_keyfile
    )
    context.check_hostname = settings.ssl_check_hostname
    return context


def connection_options(settings: KafkaSettings, purpose: str) -> dict[str, Any]:
    """What every aiokafka client takes: servers, client id, timeout, and the security of the settings."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.servers,
        "client_id": client_id(settings, purpose),
        "request_timeout_ms": settings.request_timeout_ms,
        "security_protocol": settings.security_protocol,
        "ssl_context": tls_context(settings),
    }
    if settings.security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password.get_secret_value(),
        )
    return options


def producer_options(settings: KafkaSettings) -> dict[str, Any]:
    """The delivery rules of every producer: idempotent, acks=all, requests within the topics' limit."""
    return {
        "acks": "all",
        "enable_idempotence": True,
        "max_request_size": settings.max_request_bytes,
        "linger_ms": settings.linger_ms,
        "compression_type": None if settings.compression == "none" else settings.compression,
    }


def broker_security(settings: KafkaSettings) -> BaseSecurity | None:
    """The settings' security as FastStream describes it (None for PLAINTEXT)."""
    if settings.security_protocol == "PLAINTEXT":
        return None
    context = tls_context(settings)
    if settings.security_protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    return _SASL[settings.sasl_mechanism](
        settings.sasl_username,
        settings.sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=context is not None,
    )


def broker_options(settings: KafkaSettings, purpose: str) -> dict[str, Any]:
    """Keyword arguments of a FastStream KafkaBroker with the settings' connection and producer rules."""
    return {
        "bootstrap_servers": settings.servers,
        "client_id": client_id(settings, purpose),
        "request_timeout_ms": settings.request_timeout_ms,
        "security": broker_security(settings),
        "allow_auto_create_topics": False,
        **producer_options(settings),
    }


def admin_client(settings: KafkaSettings, purpose: str) -> AIOKafkaAdminClient:
    """An admin client (not started)."""
    return AIOKafkaAdminClient(**connection_options(settings, purpose))


def consumer(settings: KafkaSettings, purpose: str, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """A consumer (not started): no group and no auto-commit unless asked, from the earliest offset, fetching
    enough per partition for the largest record a topic takes, reading committed records only (ISOLATION)."""
    defaults: dict[str, Any] = {
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": FETCH_BYTES,
        "isolation_level": ISOLATION,
    }
    return AIOKafkaConsumer(*topics, **connection_options(settings, purpose), **{**defaults, **options})


def producer(settings: KafkaSettings, purpose: str, **options: Any) -> AIOKafkaProducer:
    """A producer (not started) with the delivery rules of producer_options; `options` override them."""
    return AIOKafkaProducer(**connection_options(settings, purpose), **{**producer_options(settings), **options})


@asynccontextmanager
async def admin(settings: KafkaSettings, purpose: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit."""
    client = admin_client(settings, purpose)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def consuming(
    settings: KafkaSettings, purpose: str, *topics: str, **options: Any
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer (see consumer()), stopped on exit."""
    client = consumer(settings, purpose, *topics, **options)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@asynccontextmanager
async def producing(settings: KafkaSettings, purpose: str, **options: Any) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (see producer()), stopped on exit (after what it sent was acknowledged)."""
    client = producer(settings, purpose, **options)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


async def partitions_of(settings: KafkaSettings, topic: Topic, purpose: str) -> list[int]:
    """The topic's partitions on the broker; TopicMismatch unless they are the catalogue's 0..n-1."""
    async with admin(settings, purpose) as client:
        [described] = await client.describe_topics([topic.name])
    found = sorted(p["partition"] for p in described.get("partitions", []))
    if described.get("error_code") or found != list(range(topic.partitions)):
        raise TopicMismatch(
            f"topic {topic.name} has partitions {found} on the broker, the catalogue says "
            f"{topic.partitions}: run `countermand topics apply`"
        )
    return found


class OffsetProbe:
    """A consumer kept open to read a topic's beginning and end offsets quickly, as often as needed."""

    def __init__(self, settings: KafkaSettings, purpose: str) -> None:
        self._consumer = consumer(settings, purpose, retry_backoff_ms=PROBE_RETRY_MS)

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def end_offsets(self, topic: Topic, partitions: Iterable[int] | None = None) -> dict[int, int]:
        """Partition -> the offset the next record written there will get, now."""
        wanted = _partitions(topic, partitions)
        return {tp.partition: end for tp, end in (await self._consumer.end_offsets(wanted)).items()}

    async def holds_records(self, topic: str, partition: int, start: int, end: int, timeout_s: float = 10.0) -> bool:
        """Whether a committed record lies at an offset in [start, end): transaction markers and aborted records take
        offsets but are none. True too when that cannot be read within `timeout_s` (assume records wait)."""
        tp = TopicPartition(topic, partition)
        self._consumer.assign([tp])
        self._consumer.seek(tp, start)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while await self._consumer.position(tp) < end:
            if asyncio.get_running_loop().time() > deadline:
                return True
            batch = await self._consumer.getmany(tp, timeout_ms=POLL_MS)
            if any(record.offset < end for record in batch.get(tp, ())):
                return True
        return False

    async def beginning_offsets(self, topic: Topic, partitions: Iterable[int] | None = None) -> dict[int, int]:
        """Partition -> the oldest offset still on the broker."""
        wanted = _partitions(topic, partitions)
        return {tp.partition: at for tp, at in (await self._consumer.beginning_offsets(wanted)).items()}


async def end_offsets(
    settings: KafkaSettings, topic: Topic, purpose: str, *, attempts: int = 30, beginning: bool = False
) -> dict[int, int]:
    """End offsets (or, with `beginning`, beginning offsets) of every partition of a catalogue topic, now.

    Checks first that the broker has the catalogue's partitions (TopicMismatch otherwise); retried while
    partition leaders settle after a broker start.
    """
    await partitions_of(settings, topic, purpose)
    for attempt in range(1, attempts + 1):
        probe = OffsetProbe(settings, purpose)
        try:
            await probe.start()
            return await (probe.beginning_offsets(topic) if beginning else probe.end_offsets(topic))
        except KafkaError as exc:
            if attempt == attempts:
                raise RuntimeError(f"cannot read the offsets of topic {topic.name}: {exc!r}") from exc
            await asyncio.sleep(0.5)
        finally:
            await probe.stop()
    raise AssertionError("unreachable")


async def records_to_end(
    settings: KafkaSettings, topic: Topic, purpose: str, *, until: Mapping[int, int] | None = None, **options: Any
) -> AsyncIterator[ConsumerRecord]:
    """Every record of the topic from its beginning, oldest first per partition, up to the end offsets when
    the read began (or, given `until`, below those offsets: partition -> next offset; other partitions skipped).

    A group-less consumer of its own; nothing is committed. `options` go to the consumer.
    """
    # A read of what is there already: the broker need not hold a fetch open waiting for more, and the consumer's
    # stop waits for the fetch in flight (the default 500 ms was most of an impact restart's recovery).
    options = {"fetch_max_wait_ms": READ_TO_END_WAIT_MS, **options}
    async with consuming(settings, purpose, **options) as reader:
        wanted = _partitions(topic, until.keys() if until is not None else None)
        reader.assign(wanted)
        await reader.seek_to_beginning(*wanted)
        ends = await reader.end_offsets(wanted)
        if until is not None:
            _check_within(topic, until, ends)
            ends = {tp: int(until[tp.partition]) for tp in wanted}
        while await _behind(reader, ends):
            for partition, records in (await reader.getmany(timeout_ms=POLL_MS)).items():
                for record in records:
                    if record.offset < ends[partition]:  # a fetch may run past the end noted at the start
                        yield record


def _partitions(topic: Topic, partitions: Iterable[int] | None) -> list[TopicPartition]:
    numbers = range(topic.partitions) if partitions is None else sorted(int(p) for p in partitions)
    return [TopicPartition(topic.name, p) for p in numbers]


def _check_within(topic: Topic, until: Mapping[int, int], ends: Mapping[TopicPartition, int]) -> None:
    beyond = {
        tp.partition: (int(until[tp.partition]), end) for tp, end in ends.items() if int(until[tp.partition]) > end
    }
    if beyond:
        raise ValueError(f"offsets beyond the end of {topic.name} (partition: (asked, end)) {beyond}")


async def _behind(reader: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> bool:
    positions = [await reader.position(tp) for tp in ends]
    return any(position < end for position, end in zip(positions, ends.values(), strict=True))
