"""Each affected set published once per (directive, revision, model, version) on serving.sets.v1, however many
clusters and re-sends reference it; where each copy sits is kept so restarts reuse it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pyroaring import BitMap

from services.enforcement.cluster_commands import RestrictDraft
from services.enforcement.state import EnforcementState
from shared.contracts.impact import AssessmentKey
from shared.contracts.serving import RestrictCommand
from shared.contracts.set_copies import EncodedSet, SetReference, encode_set, set_key, value_digest

CopyKey = tuple[AssessmentKey, str, int]  # (rollout, model, set version)
# Produce one set's chunk values under one key, in order; returns (partition, offset of each chunk).
Publish = Callable[[bytes, list[bytes]], Awaitable[tuple[int, list[int]]]]


@dataclass
class SetCopies:
    """Places set copies on the sets topic (once each) and turns restrict drafts into commands referencing them."""

    state: EnforcementState
    publish: Publish
    ids_per_chunk: int = 1_000_000
    max_bytes: int = 1_500_000
    workers: int = 2  # threads hashing and packing a copy's chunks
    placed: dict[CopyKey, SetReference] = field(default_factory=dict)
    on_placed: Callable[[CopyKey, SetReference], None] = lambda key, ref: None  # made durable by the store
    _last: tuple[BitMap, EncodedSet] | None = field(default=None, repr=False)  # the last set encoded, its values

    async def command(self, draft: RestrictDraft) -> RestrictCommand:
        """The draft's command; each of its sets published first unless a copy of that version is placed."""
        try:
            refs = {model: await self.reference(draft.key, model, version) for model, version in draft.versions}
        finally:
            self._last = None  # kept only while one command's sets are placed
        return draft.command(refs)

    async def reference(self, key: AssessmentKey, model: str, version: int) -> SetReference:
        placed = self.placed.get((key, model, version))
        if placed is not None:
            return placed
        users = self.state.sets.get(key, {}).get(model, BitMap())
        encoded = self._encoded(users)
        partition, offsets = await self.publish(set_key(key.directive_id, key.revision, model, version), encoded.values)
        ref = SetReference(
            model=model,
            version=version,
            partition=partition,
            offsets=offsets,
            chunk_digests=[value_digest(v) for v in encoded.values],
            digest=encoded.digest,  # what the copy holds; each agent acknowledges it, checked against the expected
        )
        self.placed[(key, model, version)] = ref
        self.on_placed((key, model, version), ref)
        return ref

    def _encoded(self, users: BitMap) -> EncodedSet:
        """The set's chunk values; models of one directive usually share one set, so the last one encoded is
        reused when equal (the values name no model: only the key does)."""
        if self._last is not None and self._last[0] == users:
            return self._last[1]
        encoded = encode_set(users, self.ids_per_chunk, self.max_bytes, self.workers)
        self._last = (users, encoded)
        return encoded

    def forget(self, stale: set[AssessmentKey]) -> None:
        """Rollouts no longer sent: their placements are not needed."""
        for copy in [c for c in self.placed if c[0] in stale]:
            del self.placed[copy]
