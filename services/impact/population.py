"""The columnar user view: one numpy column per attribute, indexed by user id (ids < 2**32)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pycountry

from shared.contracts.users import UserUpserted

COUNTRIES: tuple[str, ...] = tuple(sorted(c.alpha_2 for c in pycountry.countries))
COUNTRY_INDEX: dict[str, int] = {code: i for i, code in enumerate(COUNTRIES)}
ACCOUNT_TYPES: tuple[str, ...] = ("consumer", "enterprise_member", "employee")
ACCOUNT_CODE: dict[str, int] = {name: i for i, name in enumerate(ACCOUNT_TYPES)}
NONE = -1  # no country / no organisation in an index column
NATIONALITY_SLOTS = 4  # starting width; widened when a user holds more


@dataclass(frozen=True)
class Columns:
    """The attribute columns of a set of rows (all users, or a selection), aligned row by row."""

    present: np.ndarray          # bool: the user exists (not deleted, not a gap)
    nationalities: np.ndarray    # int16 (rows, slots): country indices, NONE for an empty slot
    nationality_unknown: np.ndarray  # bool: nationalities null in the registry
    residence: np.ndarray        # int16: country index, NONE when unknown
    account_type: np.ndarray     # int8: index into ACCOUNT_TYPES
    organisation: np.ndarray     # int32: index into organisations, NONE for no organisation (a known fact)
    entitled: dict[str, np.ndarray]  # model -> bool column
    organisations: dict[str, int]

    def __len__(self) -> int:
        return len(self.present)

    def entitled_to(self, model: str) -> np.ndarray:
        column = self.entitled.get(model)
        return np.zeros(len(self), bool) if column is None else column


class Population:
    """The user registry materialised as growable columns; row i is user id i."""

    def __init__(self, capacity: int = 1024) -> None:
        self.size = 0  # one past the highest user id ever seen
        self._present = np.zeros(capacity, bool)
        self._nationalities = np.full((capacity, NATIONALITY_SLOTS), NONE, np.int16)
        self._nationality_unknown = np.zeros(capacity, bool)
        self._residence = np.full(capacity, NONE, np.int16)
        self._account_type = np.zeros(capacity, np.int8)
        self._organisation = np.full(capacity, NONE, np.int32)
        self._entitled: dict[str, np.ndarray] = {}
        self._organisations: dict[str, int] = {}

    @property
    def users(self) -> int:
        return int(self._present[: self.size].sum())

    def upsert(self, users: list[UserUpserted]) -> None:
        """Replace the records of these users (the last record of an id wins)."""
        if not users:
            return
        ids = np.fromiter((u.user_id for u in users), np.int64, len(users))
        self._reserve(int(ids.max()) + 1)
        self._widen(max(len(u.nationalities or ()) for u in users))
        self._present[ids] = True
        self._nationalities[ids] = self._nationality_rows(users)
        self._nationality_unknown[ids] = [u.nationalities is None for u in users]
        self._residence[ids] = [COUNTRY_INDEX[u.residence] if u.residence else NONE for u in users]
        self._account_type[ids] = [ACCOUNT_CODE[u.account_type] for u in users]
        self._organisation[ids] = [self._organisation_index(u.organisation) for u in users]
        self._set_entitlements(ids, users)

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
        return self._columns(ids)

    def _columns(self, rows: slice | np.ndarray) -> Columns:
        return Columns(
            present=self._present[rows], nationalities=self._nationalities[rows],
            nationality_unknown=self._nationality_unknown[rows], residence=self._residence[rows],
            account_type=self._account_type[rows], organisation=self._organisation[rows],
            entitled={m: c[rows] for m, c in self._entitled.items()}, organisations=dict(self._organisations),
        )

    def _nationality_rows(self, users: list[UserUpserted]) -> np.ndarray:
        rows = np.full((len(users), self._nationalities.shape[1]), NONE, np.int16)
        for row, user in enumerate(users):
            codes = [COUNTRY_INDEX[c] for c in user.nationalities or ()]
            rows[row, : len(codes)] = codes
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

    def _reserve(self, size: int, remember: bool = True) -> None:
        """Grow every column geometrically so ids < size fit; remember the highest id seen."""
        capacity = len(self._present)
        if size > capacity:
            capacity = max(size, capacity * 2)
            self._present = _grown(self._present, capacity, False)
            self._nationalities = _grown(self._nationalities, capacity, NONE)
            self._nationality_unknown = _grown(self._nationality_unknown, capacity, False)
            self._residence = _grown(self._residence, capacity, NONE)
            self._account_type = _grown(self._account_type, capacity, 0)
            self._organisation = _grown(self._organisation, capacity, NONE)
            self._entitled = {m: _grown(c, capacity, False) for m, c in self._entitled.items()}
        if remember:
            self.size = max(self.size, size)

    def _widen(self, slots: int) -> None:
        extra = slots - self._nationalities.shape[1]
        if extra > 0:
            pad = np.full((len(self._nationalities), extra), NONE, np.int16)
            self._nationalities = np.hstack([self._nationalities, pad])


def _grown(column: np.ndarray, capacity: int, fill: object) -> np.ndarray:
    grown = np.full((capacity, *column.shape[1:]), fill, column.dtype)
    grown[: len(column)] = column
    return grown
