"""Affected sets: per model a roaring bitmap of user ids, with the breakdown an assessment reports."""

from __future__ import annotations

import array
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from pyroaring import BitMap

from services.impact.selection import BLOCK, blockwise, membership
from services.impact.user_columns import ACCOUNT_TYPES, COUNTRIES, Columns, Population, consecutive
from shared.contracts.bitmaps import bitmap_ids, ids_digest, scope_digest, set_digest, union
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
            same = self.known_digests.get(model) or next(
                (digests[m] for m in digests if self.by_model[m] == users), None
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


def rows_digest(mask: np.ndarray) -> str:
    """set_digest of rows_bitmap(mask), hashed block by block straight from the mask (the fast variant)."""
    return ids_digest(_row_blocks(mask))


def _row_blocks(mask: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(mask), 4 * BLOCK):
        ids = np.flatnonzero(mask[start : start + 4 * BLOCK]).astype("<u4")
        ids += np.uint32(start)
        yield ids


def assess(population: Population, scope: DirectiveScope) -> AffectedSet:
    """The affected set of a scope over the whole view: the same users for every model."""
    columns = population.columns()
    member = membership(columns, scope)
    with ThreadPoolExecutor(1) as pool:  # the digest is one sequential hash: it runs beside the rest
        digest = pool.submit(rows_digest, member.affected)
        users = rows_bitmap(member.affected)
        by_country, by_account_type = _tallies(columns, member.affected)
        return AffectedSet(
            by_model={model: BitMap(users) for model in scope.models},
            unknown_only=int(np.count_nonzero(member.unknown_only)),
            by_country=by_country,
            by_account_type=by_account_type,
            known_digests=dict.fromkeys(scope.models, digest.result()),
        )


def _tallies(columns: Columns, affected: np.ndarray) -> tuple[dict[str, int], dict[str, int]]:
    """Affected rows per residence country and per account type, from one count per block.

    Each row becomes one small key (residence, account type, affected) and a bincount over the keys
    counts them all at once: cheaper than gathering the affected rows and counting twice.
    """
    countries, accounts = len(COUNTRIES) + 1, len(ACCOUNT_TYPES)  # + 1: unknown residence (NONE) first

    def block_of(start: int) -> np.ndarray:
        key = columns.residence[start : start + BLOCK].astype(np.int16)
        key += 1
        key *= accounts
        key += columns.account_type[start : start + BLOCK]
        key <<= 1
        key |= affected[start : start + BLOCK]
        return np.bincount(key, minlength=2 * countries * accounts)

    counts = np.zeros(2 * countries * accounts, np.int64)
    for block in blockwise(len(affected), block_of):
        counts += block
    chosen = counts.reshape(countries, accounts, 2)[:, :, 1]
    labels = (UNKNOWN_COUNTRY, *COUNTRIES)
    by_country = {labels[i]: int(n) for i, n in enumerate(chosen.sum(axis=1)) if n}
    return by_country, {ACCOUNT_TYPES[i]: int(n) for i, n in enumerate(chosen.sum(axis=0)) if n}


def breakdown(population: Population, by_model: dict[str, BitMap]) -> AffectedSet:
    """An AffectedSet for given per-model sets (a lift's restored sets), with the breakdown of their users."""
    users = bitmap_ids(union(by_model.values())).astype(np.int64)
    columns = population.columns(users)
    by_country, by_account_type = _tallies(columns, np.ones(len(users), bool))
    return AffectedSet(by_model=by_model, by_country=by_country, by_account_type=by_account_type)
