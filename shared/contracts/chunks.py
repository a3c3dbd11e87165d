"""Reassembling a chunked affected set: chunks numbered 0..chunks-1 across models, each one model's share.

Enforcement, the notifier and every agent receive sets this way; this is how all of them put one back
together. The total is announced by whoever knows it (an assessment, or a command's first chunk).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pyroaring import BitMap

from shared.contracts.bitmaps import union


@dataclass
class ChunkedSets:
    """The chunks of one set received so far: index -> (model, users); the first copy of an index wins."""

    chunks: int | None = None  # the total, once announced
    parts: dict[int, tuple[str, BitMap]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.chunks is not None and len(self.parts) == self.chunks

    @property
    def missing(self) -> list[int]:
        """Chunk indices not received yet, ascending (none while the total is unknown)."""
        return [i for i in range(self.chunks or 0) if i not in self.parts]

    def announce(self, chunks: int) -> None:
        """The total is known: it must agree with what came before. Raises ValueError naming the conflict."""
        if self.chunks is not None and self.chunks != chunks:
            raise ValueError(f"chunks: {chunks} announced, earlier parts said {self.chunks}")
        beyond = [i for i in self.parts if i >= chunks]
        if beyond:
            raise ValueError(f"chunks: {chunks} announced but chunk {min(beyond)} already arrived")
        self.chunks = chunks

    def add(self, index: int, chunks: int, model: str, users: BitMap) -> bool:
        """Keep one chunk that says the set has `chunks` chunks; False when its index was already kept.

        Raises ValueError (nothing kept) for an index out of range or a total that disagrees.
        """
        if not 0 <= index < chunks:
            raise ValueError(f"chunk {index} out of range: the set has {chunks} chunks")
        if self.chunks is not None and self.chunks != chunks:
            raise ValueError(f"chunks: chunk {index} says {chunks} chunks, earlier parts said {self.chunks}")
        if index in self.parts:
            return False
        self.parts[index] = (model, users)
        return True

    def sets(self, models: Iterable[str] = ()) -> dict[str, BitMap]:
        """Per model (these models at least, possibly empty), the union of its chunks, in model-name order."""
        by_model: dict[str, list[BitMap]] = {model: [] for model in models}
        for model, users in self.parts.values():
            by_model.setdefault(model, []).append(users)
        return {model: union(by_model[model]) for model in sorted(by_model)}
