"""The columnar user view: one numpy column per attribute, indexed by user id (ids < 2**32)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pycountry

from shared.contracts.users import UserUpserted

COUNTRIES: tuple[str, ...] = tuple(sorted(c.alpha_2 for c in pycountry.countries))
COUNTRY_INDEX: dict[str, int] = {code: i for i, code in enumerate(COUNTRIES)}
ACCOUNT_TYPES: tuple[str, ...] = ("consumer", "enterprise_member", "employee")
ACCOUNT_CODE: dict[str, int] = {name: i for i, name in enumerate(ACCOUNT_TYPES)}
NONE = -1  # no country / no organisation in an index column
NATIONALITY_SLOTS = 2  # starting width; widened when a user holds more


@dataclass(frozen=True)
class Columns:
    """The attribute columns of a set of rows (all users, or a selection), aligned row by row."""

    present: np.ndarray  # bool: the user exists (not deleted, not a gap)
    nationalities: np.ndarray  # int16 (rows, slots): country indices, NONE for an empty slot; a view of
    # slot-major storage, so nationalities.T[slot] is one contiguous column
    nationality_unknown: np.ndarray  # bool: nationalities null in the registry
    residence: np.ndarray  # int16: country index, NONE when unknown
    account_type: np.ndarray  # int8: index into ACCOUNT_TYPES
    organisation: np.ndarray  # int32: index into organisations, NONE for no organisation (a known fact)
    entitled: dict[str, np.ndarray]  # model -> bool column
    organisations: Mapping[str, int]  # organisation id -> index in the organisation column

    def __len__(self) -> int:
        return len(self.present)

    def entitled_to(self, model: str) -> np.ndarray:
        column = self.entitled.get(model)
        return np.zeros(len(self), bool) if column is None else column

    def rows(self, start: int, stop: int) -> Columns:
        """Rows start..stop-1 as views (no copy): the unit of blockwise evaluation."""
        return Columns(
            present=self.present[start:stop],
            nationalities=self.nationalities[start:stop],
            nationality_unknown=self.nationality_unknown[start:stop],
            residence=self.residence[start:stop],
            account_type=self.account_type[start:stop],
            organisation=self.organisation[start:stop],
            entitled={m: c[start:stop] for m, c in self.entitled.items()},
            organisations=self.organisations,
        )


@dataclass(frozen=True)
class CodedUsers:
    """Users given as code columns over lookup tables, for a bulk load without one record per user.

    Country columns index `countries` (-1 unknown / empty slot), account_type indexes `account_types`,
    organisation indexes `organisations` (-1 none), entitlements is a bitmask over `models`.
    """

    user_ids: np.ndarray
    nationalities: Sequence[np.ndarray]  # one column per slot
    nationality_unknown: np.ndarray
    residence: np.ndarray
    account_type: np.ndarray
    organisation: np.ndarray
    entitlements: np.ndarray
    countries: Sequence[str]
    account_types: Sequence[str]
    organisations: Sequence[str]
    models: Sequence[str]


class Population:
    """The user registry materialised as growable columns; row i is user id i."""

    def __init__(self, capacity: int = 1024) -> None:
        self.size = 0  # one past the highest user id ever seen
        self._present = np.zeros(capacity, bool)
        self._nationalities = np.full((NATIONALITY_SLOTS, capacity), NONE, np.int16)
        self._nationality_unknown = np.zeros(capacity, bool)
        self._residence = np.full(capacity, NONE, np.int16)
        self._account_type = np.zeros(capacity, np.int8)
        self._organisation = np.full(capacity, NONE, np.int32)
        self._entitled: dict[str, np.ndarray] = {}
        self._organisations: dict[str, int] = {}

    @classmethod
    def from_columns(cls, columns: Columns) -> Population:
        """A view holding exactly these rows (row i is user id i): the inverse of columns(), for snapshots."""
        view = cls(capacity=0)
        view.size = len(columns)
        view._present = np.asarray(columns.present, bool)
        view._nationalities = np.ascontiguousarray(np.asarray(columns.nationalities, np.int16).T)
        view._nationality_unknown = np.asarray(columns.nationality_unknown, bool)
        view._residence = np.asarray(columns.residence, np.int16)
        view._account_type = np.asarray(columns.account_type, np.int8)
        view._organisation = np.asarray(columns.organisation, np.int32)
        view._entitled = {model: np.asarray(column, bool) for model, column in columns.entitled.items()}
        view._organisations = dict(columns.organisations)
        return view

    @property
    def users(self) -> int:
        return int(np.count_nonzero(self._present[: self.size]))

    def upsert(self, users: list[UserUpserted]) -> None:
        """Replace the records of these users (the last record of an id wins)."""
        if not users:
            return
        ids = np.fromiter((u.user_id for u in users), np.int64, len(users))
        self._reserve(int(ids.max()) + 1)
        self._widen(max(len(u.nationalities or ()) for u in users))
        self._present[ids] = True
        self._nationalities[:, ids] = self._nationality_rows(users)
        self._nationality_unknown[ids] = [u.nationalities is None for u in users]
        self._residence[ids] = [COUNTRY_INDEX[u.residence] if u.residence else NONE for u in users]
        self._account_type[ids] = [ACCOUNT_CODE[u.account_type] for u in users]
        self._organisation[ids] = [self._organisation_index(u.organisation) for u in users]
        self._set_entitlements(ids, users)

    def load(self, coded: CodedUsers) -> None:
        """Replace these users from code columns, vectorised: the same view `upsert` builds from records."""
        if not len(coded.user_ids):
            return
        ids = _rows_of(coded.user_ids)
        country = _lookup("countries", coded.countries, COUNTRY_INDEX, np.int16)
        account = _lookup("account_types", coded.account_types, ACCOUNT_CODE, np.int8)
        self._reserve(int(coded.user_ids.max()) + 1)
        self._widen(len(coded.nationalities))
        self._present[ids] = True
        self._nationalities[:, ids] = NONE
        for slot, column in enumerate(coded.nationalities):
            self._nationalities[slot, ids] = country[column]
        self._nationality_unknown[ids] = coded.nationality_unknown
        self._residence[ids] = country[coded.residence]
        self._account_type[ids] = account[coded.account_type]
        organisation = np.array([*map(self._organisation_index, coded.organisations), NONE], np.int32)
        self._organisation[ids] = organisation[coded.organisation]
        self._load_entitlements(ids, coded.models, coded.entitlements)

    def delete(self, user_ids: Iterable[int]) -> None:
        """Forget these users (a registry tombstone)."""
        ids = np.fromiter((i for i in user_ids if i < self.size), np.int64)
        self._present[ids] = False
        for column in self._entitled.values():
            column[ids] = False

    def columns(self, ids: np.ndarray | None = None) -> Columns:
        """All rows up to the highest id seen, or the given ids (ids beyond the view are absent users)."""
        if ids is None:
            return self._columns(slice(0, self.size))
        ids = np.asarray(ids, np.int64)
        self._reserve(int(ids.max()) + 1 if len(ids) else 0, remember=False)
        return self._columns(_rows_of(ids) if len(ids) else ids)

    def _columns(self, rows: slice | np.ndarray) -> Columns:
        return Columns(
            present=self._present[rows],
            nationalities=self._nationalities[:, rows].T,
            nationality_unknown=self._nationality_unknown[rows],
            residence=self._residence[rows],
            account_type=self._account_type[rows],
            organisation=self._organisation[rows],
            entitled={m: c[rows] for m, c in self._entitled.items()},
            organisations=MappingProxyType(self._organisations),  # read-only, not copied: a change evaluates often
        )

    def _nationality_rows(self, users: list[UserUpserted]) -> np.ndarray:
        rows = np.full((self._nationalities.shape[0], len(users)), NONE, np.int16)
        for row, user in enumerate(users):
            codes = [COUNTRY_INDEX[c] for c in user.nationalities or ()]
            rows[: len(codes), row] = codes
        return rows

    def _organisation_index(self, organisation: str | None) -> int:
        if organisation is None:
            return NONE
        return self._organisations.setdefault(organisation, len(self._organisations))

    def _set_entitlements(self, ids: np.ndarray, users: list[UserUpserted]) -> None:
        for model in {m for u in users for m in u.entitlements}:
            self._entitled.setdefault(model, np.zeros(len(self._present), bool))
        for model, column in self._entitled.items():
            column[ids] = [model in u.entitlements for u in users]

    def _load_entitlements(self, ids: np.ndarray | slice, models: Sequence[str], bits: np.ndarray) -> None:
        for model in models:
            self._entitled.setdefault(model, np.zeros(len(self._present), bool))
        for column in self._entitled.values():
            column[ids] = False
        for bit, model in enumerate(models):
            column = self._entitled[model]
            column[ids] = (bits >> bit) & 1

    def _reserve(self, size: int, remember: bool = True) -> None:
        """Grow every column geometrically so ids < size fit; remember the highest id seen."""
        capacity = len(self._present)
        if size > capacity:
            capacity = max(size, capacity * 2)
            self._present = _grown(self._present, capacity, False)
            self._nationalities = _grown_slots(self._nationalities, capacity)
            self._nationality_unknown = _grown(self._nationality_unknown, capacity, False)
            self._residence = _grown(self._residence, capacity, NONE)
            self._account_type = _grown(self._account_type, capacity, 0)
            self._organisation = _grown(self._organisation, capacity, NONE)
            self._entitled = {m: _grown(c, capacity, False) for m, c in self._entitled.items()}
        if remember:
            self.size = max(self.size, size)

    def _widen(self, slots: int) -> None:
        extra = slots - self._nationalities.shape[0]
        if extra > 0:
            pad = np.full((extra, self._nationalities.shape[1]), NONE, np.int16)
            self._nationalities = np.vstack([self._nationalities, pad])


def _grown(column: np.ndarray, capacity: int, fill: object) -> np.ndarray:
    grown = np.full((capacity, *column.shape[1:]), fill, column.dtype)
    grown[: len(column)] = column
    return grown


def _grown_slots(nationalities: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.full((len(nationalities), capacity), NONE, nationalities.dtype)
    grown[:, : nationalities.shape[1]] = nationalities
    return grown


def consecutive(ids: np.ndarray) -> bool:
    """True when the ids are first, first + 1, ... in that order (a whole range of the view)."""
    return bool(len(ids)) and int(ids[-1]) - int(ids[0]) + 1 == len(ids) and bool(np.all(ids[1:] > ids[:-1]))


def distinct_ids(ids: np.ndarray) -> np.ndarray:
    """The ids sorted without repeats, as int64. Sort-based: numpy's hash-based np.unique takes seconds
    on millions of ids, and a whole id range (everyone re-evaluated) is returned as it is."""
    ids = np.asarray(ids, np.int64)
    if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):
        return ids
    ordered = np.sort(ids)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def _rows_of(user_ids: np.ndarray) -> np.ndarray | slice:
    """A slice when the ids are consecutive (the bulk case: views and plain copies), else the ids."""
    if consecutive(user_ids):
        return slice(int(user_ids[0]), int(user_ids[-1]) + 1)
    return np.asarray(user_ids, np.int64)


def _lookup(field: str, table: Sequence[str], index: Mapping[str, int], dtype: type) -> np.ndarray:
    """Codes of a table in this view's numbering; the extra last entry maps code -1 to NONE."""
    unknown = [name for name in table if name not in index]
    if unknown:
        raise ValueError(f"{field}: unknown names {unknown[:5]}")
    return np.array([*(index[name] for name in table), NONE], dtype)
