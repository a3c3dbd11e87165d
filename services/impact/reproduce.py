"""Recompute an assessment's digest from the registry as of its recorded offsets, for the audit.

The registry is read from the beginning of identity.users.v1 up to the recorded offsets (exclusive)
with the same decoding and evaluation code the service uses, so a later registry change cannot alter
the result. Exact as long as compaction has not removed records below the offsets that a record at
or beyond them superseded.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from services.impact.affected import assess
from services.impact.registry import RegistryView
from shared.contracts.catalogue import USERS
from shared.contracts.directives import DirectiveScope

POLL_MS = 500


async def registry_view_at(bootstrap: str, registry_offsets: Mapping[int, int]) -> RegistryView:
    """The user view built from every registry record below the offsets (partition -> next offset)."""
    ends = {TopicPartition(USERS.name, int(p)): int(o) for p, o in registry_offsets.items() if int(o) > 0}
    view = RegistryView()
    if not ends:
        return view
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id="countermand-impact-reproduce")
    await consumer.start()
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        _check_within(ends, await consumer.end_offsets(list(ends)))
        pending = dict(ends)
        while pending:
            for partition, records in (await consumer.getmany(*pending, timeout_ms=POLL_MS)).items():
                view.apply([r for r in records if r.offset < ends[partition]])
            for partition in [p for p in pending if await consumer.position(p) >= pending[p]]:
                del pending[partition]
    finally:
        await consumer.stop()
    return view


def _check_within(wanted: Mapping[TopicPartition, int], log_ends: Mapping[TopicPartition, int]) -> None:
    beyond = {tp.partition: (o, log_ends[tp]) for tp, o in wanted.items() if o > log_ends[tp]}
    if beyond:
        raise ValueError(f"registry_offsets: beyond the end of {USERS.name} (partition: (recorded, end)) {beyond}")


async def reproduce(bootstrap: str, registry_offsets: Mapping[int, int],
                    scope: DirectiveScope) -> tuple[dict[str, str], str]:
    """(per-model digests, scope digest) of the scope over the registry as of the offsets."""
    affected = assess((await registry_view_at(bootstrap, registry_offsets)).population, scope)
    return affected.model_digests, affected.digest
