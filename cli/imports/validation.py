"""Check every row against the UserUpserted contract on whole Arrow columns: a refused row gets a RowError per
bad value and the other rows go on; no Python loop per row."""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cli.imports.normalise import as_flag, as_ids, as_list, as_text
from cli.imports.problems import RowError, row_errors
from cli.imports.reader import RawRows
from shared.contracts.countries import ALPHA_2
from shared.contracts.directives import AccountType, ModelName
from shared.contracts.users import MAX_USER_ID, UserUpserted

COUNTRIES = pa.array(sorted(ALPHA_2))
ACCOUNT_TYPES = pa.array(typing.get_args(AccountType))
CONTROL = r"[\x00-\x1f]"
DEFAULT_LOCALE = UserUpserted.model_fields["locale"].default


def _pattern(annotated: object) -> str:
    """The regex pattern of an Annotated[str, Field(pattern=...)] contract type (one definition of a name)."""
    for info in typing.get_args(annotated)[1:]:
        for constraint in getattr(info, "metadata", []):
            if getattr(constraint, "pattern", None):
                return constraint.pattern
    raise LookupError(f"{annotated} declares no pattern")


MODEL_PATTERN = _pattern(ModelName)


@dataclass
class Checked:
    """The outcome of validation: what to upsert, what to delete, and why the other rows were refused."""

    upserts: pa.Table  # canonical columns, see Rows.upserts
    upsert_lines: np.ndarray
    deletions: np.ndarray  # user ids with deleted=true
    ids_in_file: np.ndarray  # every readable user id, refused rows included: a snapshot keeps them (unsorted)
    errors: list[RowError] = field(default_factory=list)

    @property
    def refused_rows(self) -> int:
        return len({error.line for error in self.errors})


def check(raw: RawRows) -> Checked:
    """Validate every row of `raw`; the malformed lines the reader found are among the errors."""
    rows = _Rows(raw)
    ids, id_ok = rows.ids()
    deleted, _ = rows.flag("deleted")
    rows.duplicates(ids, id_ok)
    rows.upsert_fields(~deleted)
    good = ~rows.refused
    keep = good & ~deleted
    return Checked(
        upserts=rows.upserts(ids, keep),
        upsert_lines=raw.lines[keep],
        deletions=ids[good & deleted],
        ids_in_file=ids[id_ok],
        errors=sorted(raw.errors + rows.errors),
    )


class _Rows:
    """The columns of one file under validation, with the refused mask and errors found so far."""

    def __init__(self, raw: RawRows) -> None:
        self.table, self.lines = raw.table, raw.lines
        self.size = raw.table.num_rows
        self.refused = np.zeros(self.size, dtype=bool)
        self.errors: list[RowError] = []
        self.canonical: dict[str, pa.Array] = {}

    def refuse(self, bad: np.ndarray, field: str, values: pa.Array | np.ndarray | Callable, why: str) -> None:
        """Refuse the rows where `bad`, naming their values (a callable: computed only when some are bad)."""
        if not bad.any():
            return
        values = values() if callable(values) else values
        at = np.flatnonzero(bad)
        shown = values.take(pa.array(at)).to_pylist() if isinstance(values, pa.Array) else values[at].tolist()
        self.errors += row_errors(self.lines[at], field, shown, why)
        self.refused |= bad

    def column(self, name: str) -> pa.Array:
        return self.table.column(name) if name in self.table.column_names else pa.nulls(self.size)

    def ids(self) -> tuple[np.ndarray, np.ndarray]:
        ids, ok = as_ids(self.column("user_id"), "user_id", MAX_USER_ID)
        self.refuse(
            ~ok,
            "user_id",
            lambda: as_text(self.column("user_id"), "user_id"),
            f"must be a whole number in 0..{MAX_USER_ID}",
        )
        return ids, ok

    def flag(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        value, bad = as_flag(self.column(name), name)
        self.refuse(bad, name, lambda: as_text(self.column(name), name), "must be true or false")
        return value, bad

    def duplicates(self, ids: np.ndarray, ok: np.ndarray) -> None:
        at = np.flatnonzero(ok)
        if at.size < 2 or np.all(np.diff(ids[at]) > 0):  # ascending ids: the usual export, checked cheaply
            return
        order = at[np.argsort(ids[at], kind="stable")]
        sorted_ids = ids[order]
        repeat = np.concatenate(([False], sorted_ids[1:] == sorted_ids[:-1]))
        run_start = np.maximum.accumulate(np.where(~repeat, np.arange(order.size), 0))
        again, first = order[repeat], order[run_start[repeat]]
        self.errors += [
            RowError(int(self.lines[a]), "user_id", str(ids[a]), f"duplicate of line {self.lines[f]}")
            for a, f in zip(again, first, strict=True)
        ]
        self.refused[again] = True

    def upsert_fields(self, upsert: np.ndarray) -> None:
        """Check the fields of the rows to upsert (deleted rows need only their id)."""
        self.email(upsert)
        self.countries(upsert)
        self.account_type(upsert)
        self.organisation(upsert)
        self.entitlements(upsert)
        self.locale(upsert)

    def email(self, upsert: np.ndarray) -> None:
        email = as_text(self.column("email"), "email")
        length = pc.utf8_length(email).fill_null(0).to_numpy(zero_copy_only=False)
        self.refuse(upsert & (length < 3), "email", email, "required, at least 3 characters")
        self.refuse(upsert & (length > 320), "email", email, "at most 320 characters")
        self.refuse(upsert & _matches(email, CONTROL), "email", email, "contains a control character")
        self.canonical["email"] = email

    def countries(self, upsert: np.ndarray) -> None:
        stateless, _ = self.flag("stateless")
        nationalities = as_list(self.column("nationalities"), "nationalities")
        self.canonical["nationalities"] = self.nationalities(upsert, nationalities, stateless)
        residence = pc.utf8_upper(as_text(self.column("residence"), "residence"))
        unknown_code = ~pc.is_in(residence, COUNTRIES).to_numpy(zero_copy_only=False)
        self.refuse(
            upsert & unknown_code & ~_null(residence), "residence", residence, "not an ISO 3166-1 alpha-2 country code"
        )
        self.canonical["residence"] = residence

    def nationalities(self, upsert: np.ndarray, lists: pa.ListArray, stateless: np.ndarray) -> pa.ListArray:
        codes = pc.utf8_upper(pc.list_flatten(lists))
        bad_item = ~pc.is_in(codes, COUNTRIES).to_numpy(zero_copy_only=False)
        parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
        wrong = upsert[parents] & bad_item
        if wrong.any():
            self.errors += row_errors(
                self.lines[parents[wrong]],
                "nationalities",
                codes.filter(pa.array(wrong)).to_pylist(),
                "not an ISO 3166-1 alpha-2 country code",
            )
            self.refused[parents[wrong]] = True
        length = pc.list_value_length(lists).fill_null(-1).to_numpy(zero_copy_only=False)
        self.refuse(
            upsert & stateless & (length > 0),
            "stateless",
            lambda: as_text(self.column("stateless"), "stateless"),
            "stateless (holds no nationality), yet nationalities are listed",
        )
        self.refuse(
            upsert & ~stateless & (length == 0),
            "nationalities",
            lambda: np.full(self.size, "[]", dtype=object),
            "an empty list means 'holds none': set stateless=true for that, or leave the value "
            "empty/null when the nationality is unknown",
        )
        upper = pa.ListArray.from_arrays(_offsets_of(lists), codes, mask=pc.is_null(lists))
        holds_none = pa.array([], pa.string())
        empty = pa.ListArray.from_arrays(pa.array(np.zeros(self.size + 1, dtype=np.int32)), holds_none)
        return pc.if_else(pa.array(stateless), empty, upper)

    def account_type(self, upsert: np.ndarray) -> None:
        kind = pc.utf8_lower(as_text(self.column("account_type"), "account_type"))
        unknown = ~pc.is_in(kind, ACCOUNT_TYPES).to_numpy(zero_copy_only=False)
        self.refuse(upsert & unknown, "account_type", kind, f"must be one of {', '.join(ACCOUNT_TYPES.to_pylist())}")
        self.canonical["account_type"] = kind

    def organisation(self, upsert: np.ndarray) -> None:
        organisation = as_text(self.column("organisation"), "organisation")
        length = pc.utf8_length(organisation).fill_null(0).to_numpy(zero_copy_only=False)
        self.refuse(upsert & (length > 200), "organisation", organisation, "at most 200 characters")
        self.refuse(
            upsert & _matches(organisation, CONTROL), "organisation", organisation, "contains a control character"
        )
        self.canonical["organisation"] = organisation

    def entitlements(self, upsert: np.ndarray) -> None:
        lists = as_list(self.column("entitlements"), "entitlements")
        names = pc.list_flatten(lists)
        parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
        wrong = upsert[parents] & ~_matches(names, MODEL_PATTERN)
        if wrong.any():
            self.errors += row_errors(
                self.lines[parents[wrong]],
                "entitlements",
                names.filter(pa.array(wrong)).to_pylist(),
                f"not a model name (pattern {MODEL_PATTERN})",
            )
            self.refused[parents[wrong]] = True
        self.canonical["entitlements"] = lists.fill_null(pa.scalar([], pa.list_(pa.string())))

    def locale(self, upsert: np.ndarray) -> None:
        locale = as_text(self.column("locale"), "locale").fill_null(DEFAULT_LOCALE)
        length = pc.utf8_length(locale).to_numpy(zero_copy_only=False)
        self.refuse(upsert & (length > 35), "locale", locale, "at most 35 characters")
        self.refuse(upsert & _matches(locale, CONTROL), "locale", locale, "contains a control character")
        self.canonical["locale"] = locale

    def upserts(self, ids: np.ndarray, keep: np.ndarray) -> pa.Table:
        """The rows to upsert, in the contract's field order, canonical: codes upper-cased, blanks null."""
        mask = pa.array(keep)
        columns = {"user_id": pa.array(ids[keep])}
        for name in ("email", "nationalities", "residence", "account_type", "organisation", "entitlements", "locale"):
            columns[name] = self.canonical[name].filter(mask)
        return pa.table(columns)


def _matches(values: pa.Array, pattern: str) -> np.ndarray:
    return pc.match_substring_regex(values, pattern).fill_null(False).to_numpy(zero_copy_only=False)


def _null(values: pa.Array) -> np.ndarray:
    return pc.is_null(values).to_numpy(zero_copy_only=False)


def _offsets_of(lists: pa.ListArray) -> pa.Array:
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
    return pa.array(np.concatenate(([0], np.cumsum(lengths))).astype(np.int32))
