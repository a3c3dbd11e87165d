"""The column mapping: which column of the file holds which field of a user record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

FIELDS: dict[str, str] = {
    "user_id": "numeric account id, 0..4294967295 (required)",
    "email": "contact address, 3..320 characters (required)",
    "nationalities": "ISO 3166-1 alpha-2 codes; empty = unknown (required column)",
    "residence": "ISO 3166-1 alpha-2 code; empty = unknown (required column)",
    "account_type": "consumer, enterprise_member or employee (required)",
    "organisation": "organisation id, at most 200 characters; empty = none",
    "entitlements": "model names, e.g. fable-5; empty = none",
    "locale": "language for notices, at most 35 characters; empty = en",
    "stateless": "true when the user holds no nationality (nationalities then empty)",
    "deleted": "true to delete the user (a tombstone); other fields are then ignored",
}
REQUIRED = ("user_id", "email", "nationalities", "residence", "account_type")
LIST_FIELDS = ("nationalities", "entitlements")
FLAG_FIELDS = ("stateless", "deleted")


class MappingError(ValueError):
    """A --map option that does not name a field, or names one twice."""


def parse_mapping(options: Iterable[str]) -> dict[str, str]:
    """Field -> column name, from the defaults (each field's own name) and `field=column` options."""
    mapping = dict(zip(FIELDS, FIELDS, strict=True))
    renamed: set[str] = set()
    for option in options:
        field, sep, column = (part.strip() for part in option.partition("="))
        if not sep or not column:
            raise MappingError(f"--map {option!r}: expected field=column, e.g. user_id=id")
        if field not in FIELDS:
            raise MappingError(f"--map {option!r}: {field!r} is not a field; fields: {', '.join(FIELDS)}")
        if field in renamed:
            raise MappingError(f"--map {option!r}: {field} is mapped twice")
        renamed.add(field)
        mapping[field] = column
    _refuse_shared_columns(mapping)
    return mapping


def missing_required(mapping: Mapping[str, str], columns: Iterable[str]) -> list[str]:
    """Required fields whose column the file lacks, as 'field (column "name")' descriptions."""
    present = set(columns)
    return [_describe(field, mapping[field]) for field in REQUIRED if mapping[field] not in present]


def mapping_help() -> str:
    """The mapping as the command's help shows it."""
    return "; ".join(f"{field}: {what}" for field, what in FIELDS.items())


def _describe(field: str, column: str) -> str:
    return field if field == column else f"{field} (column {column!r})"


def _refuse_shared_columns(mapping: Mapping[str, str]) -> None:
    seen: dict[str, str] = {}
    for field, column in mapping.items():
        if column in seen:
            raise MappingError(f"fields {seen[column]} and {field} both read column {column!r}")
        seen[column] = field
