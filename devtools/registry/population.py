"""A synthetic, deterministic user population, generated column-wise with numpy (no loop per user)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from devtools.registry.demography import (
    ACCOUNT_TYPES,
    COUNTRIES,
    EMPLOYEE,
    EMPLOYEE_SHARES,
    ENTERPRISE_MEMBER,
    LOCALES,
    MIGRATION_SHARES,
    MODELS,
    NATIONALITY_SHARES,
    NO_ORGANISATION,
    ORGANISATIONS,
    UNKNOWN,
    US,
    organisation_id,
)
from shared.contracts.users import MAX_USER_ID

BLOCK = 1 << 16  # users per random stream, always drawn whole: user i never depends on n

ACCOUNT_TYPE_SHARES = np.array([0.85, 0.13, 0.02])  # consumer, enterprise_member, employee
DUAL_SHARE = 0.03
DUAL_WITH_US_SHARE = 0.4  # of dual nationals whose first nationality is not US
UNKNOWN_NATIONALITY_SHARE = 0.02
UNKNOWN_RESIDENCE_SHARE = 0.005
LIVING_ABROAD_SHARE = 0.08
LIVING_IN_SECOND_COUNTRY_SHARE = 0.3  # of dual nationals who live in one of their countries
EMPLOYEES_IN_US_SHARE = 0.7
MEMBERS_FROM_ORG_COUNTRY_SHARE = 0.6
# Probability of each model bit, per account type (rows) and model (columns, in MODELS order).
ENTITLEMENT_ODDS = np.array(
    [
        [0.45, 0.40, 0.50, 0.70],  # consumer
        [0.70, 0.65, 0.60, 0.60],  # enterprise_member
        [0.95, 0.95, 0.90, 0.90],  # employee
    ]
)
FALLBACK_ENTITLEMENT = 1 << 3  # sonnet-3, so every user is entitled to at least one model


@dataclass(frozen=True, eq=False)
class Population:
    """Users as columns; index i of every column is one user. Country columns index COUNTRIES, -1 = unknown."""

    seed: int
    user_id: np.ndarray  # uint32, consecutive
    nat1: np.ndarray  # int16, -1 when nationality is unknown
    nat2: np.ndarray  # int16, -1 for single nationals (and unknown)
    nat_unknown: np.ndarray  # bool, nationality not recorded (then nat1 == nat2 == -1)
    residence: np.ndarray  # int16, -1 when unknown
    account_type: np.ndarray  # int8, index of demography.ACCOUNT_TYPES
    organisation: np.ndarray  # int32, 0 = the provider, 1..ORGANISATIONS customers, -1 = none
    entitlements: np.ndarray  # uint8, bitmask over demography.MODELS

    def __len__(self) -> int:
        return len(self.user_id)


COLUMNS = ("nat1", "nat2", "nat_unknown", "residence", "account_type", "organisation", "entitlements")
DTYPES = {
    "nat1": np.int16,
    "nat2": np.int16,
    "nat_unknown": np.bool_,
    "residence": np.int16,
    "account_type": np.int8,
    "organisation": np.int32,
    "entitlements": np.uint8,
}


def generate(n: int, seed: int, first_id: int = 1) -> Population:
    """n users with ids first_id.., the same for the same (seed, first_id); user i never depends on n."""
    _check(n, seed, first_id)
    org_country = _organisation_countries(seed)
    columns = {name: np.empty(n, dtype=DTYPES[name]) for name in COLUMNS}
    for block, start in enumerate(range(0, n, BLOCK)):
        stop = min(start + BLOCK, n)
        drawn = _block(np.random.default_rng([seed, 1, block]), BLOCK, org_country)
        for name in COLUMNS:
            columns[name][start:stop] = drawn[name][: stop - start]
    user_id = np.arange(first_id, first_id + n, dtype=np.uint64).astype(np.uint32)
    return Population(seed=seed, user_id=user_id, **columns)


def _check(n: int, seed: int, first_id: int) -> None:
    if n < 0:
        raise ValueError(f"users: must be >= 0, got {n}")
    if seed < 0:
        raise ValueError(f"seed: must be >= 0, got {seed}")
    if first_id < 0 or first_id + max(n, 1) - 1 > MAX_USER_ID:
        raise ValueError(f"first_id: ids {first_id}..{first_id + n - 1} must lie in 0..{MAX_USER_ID}")


def _organisation_countries(seed: int) -> np.ndarray:
    """Home country of every organisation; index 0, the provider, is American."""
    countries = _draw(np.random.default_rng([seed, 0]), ORGANISATIONS + 1, NATIONALITY_SHARES)
    countries[0] = US
    return countries


def _draw(rng: np.random.Generator, size: int, shares: np.ndarray) -> np.ndarray:
    """`size` country indices drawn with probabilities `shares`."""
    picked = np.searchsorted(np.cumsum(shares), rng.random(size), side="right")
    return np.minimum(picked, len(shares) - 1).astype(np.int16)


def _block(rng: np.random.Generator, size: int, org_country: np.ndarray) -> dict[str, np.ndarray]:
    account = _draw(rng, size, ACCOUNT_TYPE_SHARES).astype(np.int8)
    organisation = _organisations(rng, account)
    nat1 = _first_nationalities(rng, account, organisation, org_country)
    nat2 = _second_nationalities(rng, nat1)
    unknown = rng.random(size) < UNKNOWN_NATIONALITY_SHARE
    residence = _residences(rng, account, nat1, nat2, unknown)
    nat1[unknown] = UNKNOWN
    nat2[unknown] = UNKNOWN
    return {
        "nat1": nat1,
        "nat2": nat2,
        "nat_unknown": unknown,
        "residence": residence,
        "account_type": account,
        "organisation": organisation,
        "entitlements": _entitlements(rng, account),
    }


def _organisations(rng: np.random.Generator, account: np.ndarray) -> np.ndarray:
    # u**3 skews members towards low org numbers: a few large customers, a long tail of small ones.
    customer = 1 + (ORGANISATIONS * rng.random(len(account)) ** 3).astype(np.int32)
    organisation = np.full(len(account), NO_ORGANISATION, dtype=np.int32)
    organisation[account == ENTERPRISE_MEMBER] = customer[account == ENTERPRISE_MEMBER]
    organisation[account == EMPLOYEE] = 0
    return organisation


def _first_nationalities(
    rng: np.random.Generator, account: np.ndarray, organisation: np.ndarray, org_country: np.ndarray
) -> np.ndarray:
    size = len(account)
    nat = _draw(rng, size, NATIONALITY_SHARES)
    staff = _draw(rng, size, EMPLOYEE_SHARES)
    nat = np.where(account == EMPLOYEE, staff, nat)
    local_member = (account == ENTERPRISE_MEMBER) & (rng.random(size) < MEMBERS_FROM_ORG_COUNTRY_SHARE)
    nat[local_member] = org_country[organisation[local_member]]
    return nat


def _second_nationalities(rng: np.random.Generator, nat1: np.ndarray) -> np.ndarray:
    """-1 for single nationals; dual nationals include US + another and pairs without the US."""
    size = len(nat1)
    non_us = NATIONALITY_SHARES.copy()
    non_us[US] = 0.0
    partner = _draw(rng, size, non_us / non_us.sum())
    with_us = rng.random(size) < DUAL_WITH_US_SHARE
    second = np.where((nat1 != US) & with_us, np.int16(US), partner)
    second = np.where(second == nat1, (second + 1) % len(COUNTRIES), second).astype(np.int16)
    dual = rng.random(size) < DUAL_SHARE
    return np.where(dual, second, np.int16(UNKNOWN)).astype(np.int16)


def _residences(
    rng: np.random.Generator, account: np.ndarray, nat1: np.ndarray, nat2: np.ndarray, unknown_nationality: np.ndarray
) -> np.ndarray:
    size = len(nat1)
    home = np.where((nat2 >= 0) & (rng.random(size) < LIVING_IN_SECOND_COUNTRY_SHARE), nat2, nat1)
    home = np.where(unknown_nationality, _draw(rng, size, NATIONALITY_SHARES), home)
    abroad = _draw(rng, size, MIGRATION_SHARES)
    abroad = np.where(abroad == home, (abroad + 1) % len(COUNTRIES), abroad)
    residence = np.where(rng.random(size) < LIVING_ABROAD_SHARE, abroad, home)
    in_us = (account == EMPLOYEE) & (rng.random(size) < EMPLOYEES_IN_US_SHARE)
    residence = np.where(in_us, US, residence).astype(np.int16)
    residence[rng.random(size) < UNKNOWN_RESIDENCE_SHARE] = UNKNOWN
    return residence


def _entitlements(rng: np.random.Generator, account: np.ndarray) -> np.ndarray:
    odds = ENTITLEMENT_ODDS[account]  # (size, models)
    bits = rng.random(odds.shape) < odds
    mask = (bits * (1 << np.arange(odds.shape[1]))).sum(axis=1).astype(np.uint8)
    mask[mask == 0] = FALLBACK_ENTITLEMENT
    return mask


# ---- records: the population as UserUpserted payloads, for producing -------------------------------

PRODUCER = "registry"
GENERATED_AT = datetime(2026, 1, 1, tzinfo=UTC)  # default occurred_at: records stay a pure function
_OR_NONE = COUNTRIES + (None,)  # indexing with -1 (unknown) yields None
_LOCALE_OR_DEFAULT = LOCALES + ("en",)
_MODEL_LISTS = tuple(
    tuple(model for bit, model in enumerate(MODELS) if mask >> bit & 1) for mask in range(1 << len(MODELS))
)


def records(
    pop: Population, start: int, stop: int, *, occurred_at: datetime = GENERATED_AT, event_prefix: str | None = None
) -> list[dict[str, Any]]:
    """UserUpserted-valid dicts for users [start, stop); event ids are event_prefix + user id."""
    prefix, at = _prefix(pop, event_prefix), occurred_at.isoformat()
    return [_record(prefix, at, *row) for row in _rows(pop, start, stop)]


def _rows(pop: Population, start: int, stop: int) -> Iterator[tuple[int, ...]]:
    """(user_id, nat1, nat2, residence, account_type, organisation, entitlements) as Python ints."""
    if not 0 <= start <= stop <= len(pop):
        raise ValueError(f"start/stop: need 0 <= start <= stop <= {len(pop)}, got {start}, {stop}")
    window = slice(start, stop)
    return zip(
        pop.user_id[window].tolist(),
        pop.nat1[window].tolist(),
        pop.nat2[window].tolist(),
        pop.residence[window].tolist(),
        pop.account_type[window].tolist(),
        pop.organisation[window].tolist(),
        pop.entitlements[window].tolist(),
        strict=True,
    )


def _prefix(pop: Population, event_prefix: str | None) -> str:
    prefix = f"registry-s{pop.seed}-" if event_prefix is None else event_prefix
    if not _SAFE_PREFIX.fullmatch(prefix):
        raise ValueError(f"event_prefix: {prefix!r} may only hold letters, digits and . _ : -")
    return prefix


def _record(
    prefix: str,
    at: str,
    uid: int,
    nat1: int,
    nat2: int,
    residence: int,
    account: int,
    organisation: int,
    entitlements: int,
) -> dict[str, Any]:
    return {
        "event_id": f"{prefix}{uid}",
        "schema_version": 1,
        "occurred_at": at,
        "producer": PRODUCER,
        "correlation_id": None,
        "causation_id": None,
        "type": "UserUpserted",
        "user_id": uid,
        "email": f"user{uid}@example.com",
        "nationalities": None if nat1 < 0 else [COUNTRIES[nat1]] if nat2 < 0 else [COUNTRIES[nat1], COUNTRIES[nat2]],
        "residence": _OR_NONE[residence],
        "account_type": ACCOUNT_TYPES[account],
        "organisation": organisation_id(organisation),
        "entitlements": list(_MODEL_LISTS[entitlements]),
        "locale": _LOCALE_OR_DEFAULT[nat1 if nat1 >= 0 else residence],
        "org_admin": False,
    }


def encoded(
    pop: Population, start: int, stop: int, *, occurred_at: datetime = GENERATED_AT, event_prefix: str | None = None
) -> list[tuple[bytes, bytes]]:
    """(Kafka key, JSON value) pairs of users [start, stop): the same payloads as `records`, rendered
    from pre-encoded fragments because this is the loader's hot path."""
    head = (
        f'{{"event_id":"{_prefix(pop, event_prefix)}%d","schema_version":1,"occurred_at":"{occurred_at.isoformat()}",'
        f'"producer":"{PRODUCER}","correlation_id":null,"causation_id":null,"type":"UserUpserted",'
        f'"user_id":%d,"email":"user%d@example.com","nationalities":'
    )
    return [
        (
            b"%d" % uid,
            (
                head % (uid, uid, uid)
                + _NATIONALITY_JSON[n1][n2]
                + ',"residence":'
                + _COUNTRY_JSON[res]
                + ',"account_type":'
                + _ACCOUNT_JSON[acc]
                + ',"organisation":'
                + _organisation_json(org)
                + ',"entitlements":'
                + _MODELS_JSON[ent]
                + ',"locale":'
                + _LOCALE_JSON[n1 if n1 >= 0 else res]
                + ',"org_admin":false}'  # the generator makes no organisation administrators
            ).encode(),
        )
        for uid, n1, n2, res, acc, org, ent in _rows(pop, start, stop)
    ]


def _organisation_json(index: int) -> str:
    return "null" if index < 0 else f'"{organisation_id(index)}"'


_SAFE_PREFIX = re.compile(r"[A-Za-z0-9._:-]*")
# Pre-encoded JSON fragments; the last entry of each country table is the -1 (unknown) slot.
_COUNTRY_JSON = [f'"{code}"' for code in COUNTRIES] + ["null"]
_NATIONALITY_JSON = [
    [f'["{first}"]' if second is None else f'["{first}","{second}"]' for second in COUNTRIES + (None,)]
    for first in COUNTRIES
]
_NATIONALITY_JSON.append(["null"] * (len(COUNTRIES) + 1))
_LOCALE_JSON = [f'"{locale}"' for locale in _LOCALE_OR_DEFAULT]
_ACCOUNT_JSON = [f'"{name}"' for name in ACCOUNT_TYPES]
_MODELS_JSON = [orjson.dumps(list(models)).decode() for models in _MODEL_LISTS]
