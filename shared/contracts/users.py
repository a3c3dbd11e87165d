"""User registry changelog (topic identity.users.v1, compacted, key = user id).

An upsert carries the whole current record; a deletion is a Kafka tombstone (null value) on the key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.contracts.countries import CountryCode
from shared.contracts.directives import AccountType, ModelName
from shared.contracts.envelope import Event

MAX_USER_ID = 2**32 - 1  # affected sets are 32-bit roaring bitmaps


class UserUpserted(Event):
    """The current record of one user in the provider's identity system."""

    type: Literal["UserUpserted"] = "UserUpserted"
    user_id: int = Field(..., ge=0, le=MAX_USER_ID, description="Numeric account id.", examples=[1042])
    email: str = Field(
        ..., min_length=3, max_length=320, description="Contact address for notices.", examples=["ada@example.com"]
    )
    nationalities: list[CountryCode] | None = Field(
        ..., description="Every nationality the user holds; null when unknown.", examples=[["US", "IE"]]
    )
    residence: CountryCode | None = Field(..., description="Country of residence; null when unknown.", examples=["DE"])
    account_type: AccountType = Field(..., description="Kind of account.", examples=["consumer"])
    organisation: str | None = Field(
        None, max_length=200, description="Enterprise organisation id, if any.", examples=["org-00042"]
    )
    entitlements: list[ModelName] = Field(
        default_factory=list, description="Models the user may use.", examples=[["fable-5", "mythos-5"]]
    )
    locale: str = Field("en", max_length=35, description="Language for notices.", examples=["en"])
    org_admin: bool = Field(
        False,
        description="Administers its organisation: gets one notice per directive change summing up the "
        "organisation's enterprise members (who are then not told one by one).",
        examples=[False],
    )


def user_key(user_id: int) -> bytes:
    """Kafka key of a user record: the decimal id, so compaction keeps the last record per user."""
    return str(user_id).encode()
