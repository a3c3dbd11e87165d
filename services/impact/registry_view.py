"""The user view fed by identity.users.v1 records: decode, validate, apply in batches, track offsets.

Pure of Kafka: a record is anything with topic, partition, offset, key and value (an aiokafka
ConsumerRecord in the service, a plain object in tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.impact.user_columns import Population
from shared.contracts.users import MAX_USER_ID, UserUpserted


@dataclass(frozen=True)
class Applied:
    """Outcome of one batch: the user ids whose record changed, and the records refused with the error."""

    changed: np.ndarray
    rejected: list[tuple[Any, Exception]]
    producers: frozenset[str] = frozenset()  # who produced the applied upserts (tombstones name no one)


def user_id_of(key: bytes | None) -> int:
    """The user id a record key names; raises ValueError naming the key."""
    text = (key or b"").decode("ascii", "replace")
    if not text.isdigit() or int(text) > MAX_USER_ID:
        raise ValueError(f"key: {text!r} is not a user id (0..{MAX_USER_ID})")
    return int(text)


def decode(record: Any) -> UserUpserted | int:
    """An upsert, or the user id of a tombstone; raises ValueError / ValidationError on a bad record."""
    user_id = user_id_of(record.key)
    if record.value is None:
        return user_id
    user = UserUpserted.model_validate_json(record.value)
    if user.user_id != user_id:
        raise ValueError(f"user_id: {user.user_id} does not match the record key {user_id}")
    return user


@dataclass
class RegistryView:
    """The population and, per partition, the next registry offset it reflects."""

    population: Population = field(default_factory=Population)
    offsets: dict[int, int] = field(default_factory=dict)

    def apply(self, records: Iterable[Any]) -> Applied:
        """Apply good records in offset order (last record of a user wins); set bad ones aside untouched."""
        latest: dict[int, UserUpserted | None] = {}
        rejected: list[tuple[Any, Exception]] = []
        producers: set[str] = set()
        for record in records:
            self.offsets[record.partition] = max(self.offsets.get(record.partition, 0), record.offset + 1)
            try:
                change = decode(record)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                rejected.append((record, exc))
                continue
            if isinstance(change, int):
                user_id = change
            else:
                user_id = change.user_id
                producers.add(change.producer)
            latest.pop(user_id, None)  # keep the dict in arrival order of each user's last record
            latest[user_id] = None if isinstance(change, int) else change
        self.population.delete(i for i, u in latest.items() if u is None)
        self.population.upsert([u for u in latest.values() if u is not None])
        return Applied(np.fromiter(latest, np.int64, len(latest)), rejected, frozenset(producers))

    def reached(self, end_offsets: Mapping[int, int]) -> bool:
        """True when the view reflects every record before these end offsets."""
        return all(self.offsets.get(p, 0) >= end for p, end in end_offsets.items())
