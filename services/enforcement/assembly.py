"""An assessment waiting for its chunks (and any early deltas) before it can be enforced (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyroaring import BitMap

from shared.contracts.bitmaps import apply_delta, decode_bitmap
from shared.contracts.chunks import ChunkedSets
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, ImpactAssessed


@dataclass
class Assembly:
    """The parts of one assessment received so far."""

    assessment: ImpactAssessed | None = None
    chunks: dict[int, AffectedSetChunk] = field(default_factory=dict)  # as received: stored as the parts
    deltas: list[AffectedSetDelta] = field(default_factory=list)
    received: ChunkedSets = field(default_factory=ChunkedSets)  # chunks' sets, decoded once when they came in

    @property
    def complete(self) -> bool:
        return self.assessment is not None and self.received.complete

    def add_assessment(self, assessment: ImpactAssessed) -> None:
        missing = sorted(set(assessment.scope.models) - set(assessment.model_digests))
        if missing:
            raise ValueError(f"model_digests: no digest for {', '.join(missing)} of the scope")
        for chunk in self.chunks.values():
            check_chunk(chunk, assessment)
        self.received.announce(assessment.chunks)
        self.assessment = assessment

    def add_chunk(self, chunk: AffectedSetChunk) -> None:
        users = decode_bitmap(chunk.users)  # reject a corrupt bitmap now, not when the set is complete
        if self.assessment is not None:
            check_chunk(chunk, self.assessment)
        if self.received.add(chunk.chunk, chunk.chunks, chunk.model, users):
            self.chunks[chunk.chunk] = chunk

    def sets(self) -> dict[str, BitMap]:
        """Per model, the union of its chunks (every model of the scope present, possibly empty)."""
        assert self.assessment is not None
        return self.received.sets(self.assessment.scope.models)

    def base_sets(self) -> dict[str, BitMap]:
        """The sets a rollout started with: its chunks, then the deltas that came before it started, in seq
        order (as Targeting applies them when it starts the rollout)."""
        sets = self.sets()
        for delta in sorted(self.deltas, key=lambda d: d.seq):
            if delta.model in sets:
                added, removed = decode_bitmap(delta.added), decode_bitmap(delta.removed)
                sets[delta.model] = apply_delta(sets[delta.model], added, removed)
        return sets


def check_chunk(chunk: AffectedSetChunk, assessment: ImpactAssessed) -> None:
    """A chunk must belong to its assessment: same chunk count, a model of the scope."""
    if chunk.chunks != assessment.chunks:
        raise ValueError(f"chunks: {chunk.chunks} differs from the assessment's {assessment.chunks}")
    if chunk.model not in assessment.scope.models:
        raise ValueError(f"model: {chunk.model} is not in the scope of {chunk.directive_id} r{chunk.revision}")
