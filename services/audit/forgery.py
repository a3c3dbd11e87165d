"""Which recorded messages are forgeries: every record on a topic whose key set is configured must carry a
signature by a key of that set that was current when the record was written (unsigned, altered, unknown or
retired key: a forgery); an agent's ack or heartbeat, by the key of the cluster it names. Topics without a
configured key set are not checked. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from shared.contracts.catalogue import ACKS
from shared.runtime.signing import KeySet, SignatureRefused

# Records a cluster's agent sends for its own cluster: signed by the key whose JWK `sub` names that cluster.
SPEAKS_FOR_CLUSTER = frozenset({ACKS.name})


@dataclass(frozen=True)
class Signatures:
    """The public key sets the records of each signed topic are checked against (topic name -> KeySet)."""

    keys: Mapping[str, KeySet]

    @classmethod
    def from_files(cls, files: Mapping[str, Path]) -> Signatures:
        """Key sets read from JWK set files by topic; ValueError naming an unreadable file."""
        loaded = {}
        for topic, path in files.items():
            try:
                loaded[topic] = KeySet.from_file(Path(path))
            except OSError as exc:
                raise ValueError(f"record keys of {topic}: cannot read {path} ({exc.strerror or exc})") from exc
        return cls(loaded)

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(sorted(self.keys))

    def problem(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes] | None,
        timestamp_ms: int | None,
    ) -> str | None:
        """Why this record is a forgery (the reason names the key id where there is one); None when it is
        signed by a key of its topic's set that was current at the record's timestamp (on an agent's topic, the
        key of the cluster the record names), is a tombstone, or is on a topic not checked."""
        keys = self.keys.get(topic)
        if keys is None or value is None:
            return None
        named = headers if isinstance(headers, Mapping) else {n: v for n, v in (headers or ()) if v is not None}
        when = datetime.fromtimestamp(timestamp_ms / 1000, UTC) if timestamp_ms is not None else None
        try:
            key_id = keys.verify(topic, key, value, named, when)
        except SignatureRefused as exc:
            return str(exc)
        return _another_cluster(keys, key_id, value) if topic in SPEAKS_FOR_CLUSTER else None


def _another_cluster(keys: KeySet, key_id: str, value: bytes) -> str | None:
    """Why a record signed by `key_id` does not speak for the cluster it names (the words enforcement refuses it
    with); None when the key's `sub` is that cluster."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        document = None
    cluster = document.get("cluster_id") if isinstance(document, dict) else None
    speaks_for = keys.get(key_id).subject  # type: ignore[union-attr]  (verify found it)
    if speaks_for is not None and speaks_for == cluster:
        return None
    who = f"the key of {speaks_for!r}" if speaks_for else "a key that names no cluster"
    return str(SignatureRefused(f"signed by {who}, not by the key of {cluster!r}", key_id))


NO_CHECK = Signatures({})
