"""Affected sets: per model a roaring bitmap of user ids, with the breakdown an assessment reports."""

from __future__ import annotations

import array
import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from pyroaring import BitMap

from services.impact.population import ACCOUNT_TYPES, COUNTRIES, Columns, Population, consecutive
from services.impact.selection import BLOCK, membership
from shared.contracts.bitmaps import bitmap_ids, scope_digest, set_digest, union
from shared.contracts.directives import DirectiveScope

UNKNOWN_COUNTRY = "??"
CONTAINER = 1 << 16  # ids per roaring container (one 16-bit key)
ARRAY_LIMIT = 4096  # the most ids a roaring array container holds; more make a bitset container
NO_RUN_COOKIE = 12346  # portable roaring format without run containers


@dataclass(frozen=True)
class AffectedSet:
    """Users a scope covers, per model, and how they break down. A value: its bitmaps are not to be mutated."""

    by_model: dict[str, BitMap]
    unknown_only: int = 0
    by_country: dict[str, int] = field(default_factory=dict)
    by_account_type: dict[str, int] = field(default_factory=dict)
    known_digests: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def users(self) -> int:
        return len(union(self.by_model.values()))

    @cached_property
    def model_digests(self) -> dict[str, str]:
        """Set digest per model; computed once per distinct set (models usually share one)."""
        digests: dict[str, str] = {}
        for model, users in self.by_model.items():
            twin = next((m for m in digests if self.by_model[m] == users), None)
            digests[model] = self.known_digests.get(model) or (digests[twin] if twin else set_digest(users))
        return digests

    @cached_property
    def digest(self) -> str:
        return scope_digest(self.model_digests)


def bitmap_of(mask: np.ndarray, ids: np.ndarray | None = None) -> BitMap:
    """The ids (row numbers, or the given ids) where the mask holds."""
    if ids is None:
        return rows_bitmap(mask)
    if len(ids) >= CONTAINER and consecutive(ids):  # a whole range of the view (everyone re-evaluated)
        base = int(ids[0]) - int(ids[0]) % CONTAINER
        rows = rows_bitmap(np.concatenate([np.zeros(int(ids[0]) - base, bool), mask]))
        return rows.shift(base) if base else rows
    chosen = array.array("I")  # pyroaring builds from array.array far faster than from a numpy array
    chosen.frombytes(ids[mask].astype("=u4").tobytes())
    return BitMap(chosen)


def id_bitmap(ids: np.ndarray) -> BitMap:
    """A bitmap of these ids, without a per-id Python loop."""
    ids = np.asarray(ids)
    return bitmap_of(np.ones(len(ids), bool), ids)


def rows_bitmap(mask: np.ndarray) -> BitMap:
    """The row numbers where the mask holds, written as portable roaring bytes from the packed mask: no per-id work."""
    containers = -(-len(mask) // CONTAINER)
    packed = np.zeros(containers * CONTAINER // 8, np.uint8)
    packed[: (len(mask) + 7) // 8] = np.packbits(mask, bitorder="little")
    words = packed.view("<u8").reshape(containers, CONTAINER // 64)
    cardinality = np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    keys = np.flatnonzero(cardinality)
    header = np.empty(len(keys), [("key", "<u2"), ("cardinality", "<u2")])
    header["key"], header["cardinality"] = keys, cardinality[keys] - 1
    bodies = [words[key].tobytes() if cardinality[key] > ARRAY_LIMIT
              else np.flatnonzero(mask[key * CONTAINER:(key + 1) * CONTAINER]).astype("<u2").tobytes()
              for key in keys.tolist()]
    sizes = np.fromiter(map(len, bodies), np.int64, len(bodies))
    offsets = 8 + 8 * len(keys) + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype("<u4")
    head = np.array([NO_RUN_COOKIE, len(keys)], "<u4").tobytes()
    return BitMap.deserialize(b"".join([head, header.tobytes(), offsets.astype("<u4").tobytes(), *bodies]))


def rows_digest(mask: np.ndarray) -> str:
    """set_digest of rows_bitmap(mask), hashed block by block straight from the mask."""
    hasher = hashlib.sha256()
    for start in range(0, len(mask), 4 * BLOCK):
        ids = np.flatnonzero(mask[start:start + 4 * BLOCK]).astype("<u4")
        ids += np.uint32(start)
        hasher.update(ids)
    return hasher.hexdigest()


def assess(population: Population, scope: DirectiveScope) -> AffectedSet:
    """The affected set of a scope over the whole view: the same users for every model."""
    columns = population.columns()
    member = membership(columns, scope)
    users, digest = rows_bitmap(member.affected), rows_digest(member.affected)
    return AffectedSet(
        by_model={model: BitMap(users) for model in scope.models},
        unknown_only=int(np.count_nonzero(member.unknown_only)),
        by_country=_by_country(columns, member.affected),
        by_account_type=_by_account_type(columns, member.affected),
        known_digests=dict.fromkeys(scope.models, digest),
    )


def _by_country(columns: Columns, affected: np.ndarray) -> dict[str, int]:
    counts = _counts(columns.residence, affected, 1, len(COUNTRIES) + 1)
    labels = (UNKNOWN_COUNTRY, *COUNTRIES)
    return {labels[i]: int(n) for i, n in enumerate(counts) if n}


def _by_account_type(columns: Columns, affected: np.ndarray) -> dict[str, int]:
    counts = _counts(columns.account_type, affected, 0, len(ACCOUNT_TYPES))
    return {ACCOUNT_TYPES[i]: int(n) for i, n in enumerate(counts) if n}


def _counts(codes: np.ndarray, affected: np.ndarray, shift: int, size: int) -> np.ndarray:
    """How many affected rows hold each code (code + shift indexes the result), block by block.

    One bincount over (code, affected) pairs per block: cheaper than gathering the affected rows first.
    """
    counts = np.zeros(2 * size, np.int64)
    small = np.int16 if 2 * size < 2**15 else np.int32
    for start in range(0, len(affected), BLOCK):
        pairs = codes[start:start + BLOCK].astype(small)
        pairs += shift
        pairs <<= 1
        pairs |= affected[start:start + BLOCK]
        counts += np.bincount(pairs, minlength=2 * size)
    return counts[1::2]


def breakdown(population: Population, by_model: dict[str, BitMap]) -> AffectedSet:
    """An AffectedSet for given per-model sets (a lift's restored sets), with the breakdown of their users."""
    users = bitmap_ids(union(by_model.values())).astype(np.int64)
    columns = population.columns(users)
    everyone = np.ones(len(users), bool)
    return AffectedSet(by_model=by_model, by_country=_by_country(columns, everyone),
                       by_account_type=_by_account_type(columns, everyone))
