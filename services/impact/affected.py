"""Affected sets: per model a roaring bitmap of user ids, with the breakdown an assessment reports."""

from __future__ import annotations

import array
import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from pyroaring import BitMap

from services.impact.selection import BLOCK, WORKERS, blockwise, member_block
from services.impact.user_columns import ACCOUNT_TYPES, COUNTRIES, Columns, Population, consecutive
from shared.contracts.bitmaps import RANGE_BITS, SetDigest, bitmap_ids, scope_digest, set_digest, union
from shared.contracts.directives import DirectiveScope

UNKNOWN_COUNTRY = "??"
CONTAINER = 1 << 16  # ids per roaring container (one 16-bit key)
RANGE_SIZE = 1 << RANGE_BITS  # ids per SetDigest range: one container
ARRAY_LIMIT = 4096  # the most ids a roaring array container holds; more make a bitset container
NO_RUN_COOKIE = 12346  # portable roaring format without run containers


@dataclass(frozen=True)
class AffectedSet:
    """Users a scope covers, per model, and how they break down. A value: its bitmaps are not to be mutated."""

    by_model: dict[str, BitMap]
    unknown_only: int = 0
    by_country: dict[str, int] = field(default_factory=dict)
    by_account_type: dict[str, int] = field(default_factory=dict)
    set_digests: dict[str, SetDigest] = field(default_factory=dict, compare=False, repr=False)  # per model, by range
    # Per model, how many of its users hold an entitlement to it (losing_by_model), when counted in the evaluation
    losing: dict[str, int] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def users(self) -> int:
        return len(union(self.by_model.values()))

    @cached_property
    def model_digests(self) -> dict[str, str]:
        """Set digest per model; computed once per distinct set (models usually share one)."""
        digests: dict[str, str] = {}
        for model, users in self.by_model.items():
            known = self.set_digests.get(model)
            same = (
                known.hexdigest() if known else next((digests[m] for m in digests if self.by_model[m] == users), None)
            )
            digests[model] = same or set_digest(users)
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
    """The row numbers where the mask holds, written as portable roaring bytes from the packed mask.

    No per-id work: a container of more than ARRAY_LIMIT ids is the packed mask's 8 KiB verbatim, a
    sparser one its row numbers as uint16. This is the format's no-run-container variant.
    """
    containers = -(-len(mask) // CONTAINER)
    packed = np.zeros(containers * CONTAINER // 8, np.uint8)
    packed[: (len(mask) + 7) // 8] = np.packbits(mask, bitorder="little")
    words = packed.view("<u8").reshape(containers, CONTAINER // 64)
    cardinality = np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    keys = np.flatnonzero(cardinality)
    bodies = [
        words[key].tobytes()
        if cardinality[key] > ARRAY_LIMIT
        else np.flatnonzero(mask[key * CONTAINER : (key + 1) * CONTAINER]).astype("<u2").tobytes()
        for key in keys.tolist()
    ]
    return BitMap.deserialize(_portable(keys, cardinality[keys], bodies))


def _portable(keys: np.ndarray, cardinality: np.ndarray, bodies: list[bytes]) -> bytes:
    """Cookie and count, (key, cardinality - 1) per container, each container's byte offset, the containers."""
    header = np.empty(len(keys), [("key", "<u2"), ("cardinality", "<u2")])
    header["key"], header["cardinality"] = keys, cardinality - 1
    sizes = np.fromiter(map(len, bodies), np.int64, len(bodies))
    starts = 8 + 8 * len(keys) + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    head = np.array([NO_RUN_COOKIE, len(keys)], "<u4")
    return b"".join([head.tobytes(), header.tobytes(), starts.astype("<u4").tobytes(), *bodies])


def rows_digest(mask: np.ndarray, workers: int = WORKERS) -> str:
    """set_digest of rows_bitmap(mask), hashed range by range straight from the mask (the fast variant)."""

    def block_of(start: int) -> dict[int, bytes]:
        return rows_range_digests(mask[start : start + BLOCK], start)

    return SetDigest.from_ranges(_merged(blockwise(len(mask), block_of, workers))).hexdigest()


def rows_range_digests(mask: np.ndarray, first_row: int) -> dict[int, bytes]:
    """SetDigest's range digests of the rows where a block of the mask holds (see mask_ranges)."""
    ranges = mask_ranges(mask, first_row)
    return dict(zip(ranges.keys, ranges.digests, strict=True))


@dataclass(frozen=True)
class MaskRanges:
    """The non-empty 2^16-row ranges of a block of a mask, each once: its number, how many rows hold, its
    roaring container (portable format, no runs) and its SetDigest range digest."""

    keys: list[int]
    cardinality: list[int]
    bodies: list[bytes]
    digests: list[bytes]


def mask_ranges(mask: np.ndarray, first_row: int) -> MaskRanges:
    """The ranges of a block of a mask that starts at `first_row`, a multiple of the range size, so blocks
    taken apart (on several threads) never share a range. A range's rows are listed once: as the digest's
    input and, up to ARRAY_LIMIT, as its array container; a denser one is its packed bits verbatim."""
    if first_row % RANGE_SIZE:
        raise ValueError(f"a block must start on a range boundary (a multiple of {RANGE_SIZE}), not {first_row}")
    found = MaskRanges([], [], [], [])
    for offset in range(0, len(mask), RANGE_SIZE):
        part = mask[offset : offset + RANGE_SIZE]
        low = np.flatnonzero(part).astype("<u2")
        if not len(low):
            continue
        found.keys.append((first_row + offset) >> RANGE_BITS)
        found.cardinality.append(len(low))
        found.bodies.append(_bitset(part) if len(low) > ARRAY_LIMIT else low.tobytes())
        found.digests.append(hashlib.sha256(low).digest())
    return found


def _bitset(part: np.ndarray) -> bytes:
    packed = np.zeros(CONTAINER // 8, np.uint8)
    packed[: (len(part) + 7) // 8] = np.packbits(part, bitorder="little")
    return packed.tobytes()


def _merged(parts: list[dict[int, bytes]]) -> dict[int, bytes]:
    return {key: digest for part in parts for key, digest in part.items()}


def _bitmap_of(ranges: list[MaskRanges]) -> BitMap:
    keys = np.array([k for r in ranges for k in r.keys], np.int64)
    cardinality = np.array([c for r in ranges for c in r.cardinality], np.int64)
    return BitMap.deserialize(_portable(keys, cardinality, [b for r in ranges for b in r.bodies]))


def assess(population: Population, scope: DirectiveScope, workers: int = WORKERS) -> AffectedSet:
    """The affected set of a scope over the whole view: the same users for every model.

    One pass over blocks of rows, on `workers` threads: each block's membership, its ranges (container and
    digest), its breakdown counts and per model its users entitled to it; then the set from the containers and
    its digest from the range digests.
    """
    columns = population.columns()
    entitled = {model: columns.entitled_to(model) for model in scope.models}

    def block_of(start: int) -> tuple[MaskRanges, np.ndarray, int, list[int]]:
        affected, unknown_only = member_block(columns, scope, start)  # no mask of the whole view is kept
        ranges = mask_ranges(affected, start)
        holding = [np.count_nonzero(affected & entitled[m][start : start + len(affected)]) for m in scope.models]
        return ranges, _tally_block(columns, affected, start), int(np.count_nonzero(unknown_only)), holding

    parts = blockwise(len(columns), block_of, workers)
    ranges = [p[0] for p in parts]
    digest = SetDigest.from_ranges({k: d for r in ranges for k, d in zip(r.keys, r.digests, strict=True)})
    by_country, by_account_type = _labelled(sum((p[1] for p in parts), _no_counts()))
    users = _bitmap_of(ranges)
    return AffectedSet(
        by_model={model: BitMap(users) for model in scope.models},
        unknown_only=sum(p[2] for p in parts),
        by_country=by_country,
        by_account_type=by_account_type,
        set_digests={model: digest.copy() for model in scope.models},
        losing={model: sum(int(p[3][i]) for p in parts) for i, model in enumerate(scope.models)},
    )


COUNTRY_KEYS = len(COUNTRIES) + 1  # + 1: unknown residence (NONE) first


def _tally_block(columns: Columns, affected: np.ndarray, start: int) -> np.ndarray:
    """Counts of the rows of the block starting at `start` per (residence, account type, affected: the block's
    mask), from one bincount.

    Each row becomes one small key and a bincount over the keys counts them all at once: cheaper than
    gathering the affected rows and counting twice.
    """
    key = columns.residence[start : start + BLOCK].astype(np.int16)
    key += 1
    key *= len(ACCOUNT_TYPES)
    key += columns.account_type[start : start + BLOCK]
    key <<= 1
    key |= affected
    return np.bincount(key, minlength=2 * COUNTRY_KEYS * len(ACCOUNT_TYPES))


def _no_counts() -> np.ndarray:
    return np.zeros(2 * COUNTRY_KEYS * len(ACCOUNT_TYPES), np.int64)


def _labelled(counts: np.ndarray) -> tuple[dict[str, int], dict[str, int]]:
    """Affected rows per residence country and per account type, from the summed block counts."""
    chosen = counts.reshape(COUNTRY_KEYS, len(ACCOUNT_TYPES), 2)[:, :, 1]
    labels = (UNKNOWN_COUNTRY, *COUNTRIES)
    by_country = {labels[i]: int(n) for i, n in enumerate(chosen.sum(axis=1)) if n}
    return by_country, {ACCOUNT_TYPES[i]: int(n) for i, n in enumerate(chosen.sum(axis=0)) if n}


def _tallies(columns: Columns, affected: np.ndarray) -> tuple[dict[str, int], dict[str, int]]:
    """Affected rows per residence country and per account type."""
    blocks = blockwise(len(affected), lambda start: _tally_block(columns, affected[start : start + BLOCK], start))
    return _labelled(sum(blocks, _no_counts()))


def breakdown(population: Population, by_model: dict[str, BitMap]) -> AffectedSet:
    """An AffectedSet for given per-model sets (a lift's restored sets), with the breakdown of their users."""
    users = bitmap_ids(union(by_model.values())).astype(np.int64)
    columns = population.columns(users)
    by_country, by_account_type = _tallies(columns, np.ones(len(users), bool))
    return AffectedSet(by_model=by_model, by_country=by_country, by_account_type=by_account_type)
