"""Registry records become contacts; tombstones delete; bad records raise naming the problem."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services.notifier.directory import UserDirectory
from services.notifier.notices import Contact
from services.notifier.registry_feed import apply_record
from shared.contracts.users import UserUpserted


def _user(user_id: int, email: str) -> bytes:
    return (
        UserUpserted(
            producer="test",
            user_id=user_id,
            email=email,
            nationalities=["US"],
            residence="US",
            account_type="consumer",
            locale="de",
        )
        .model_dump_json()
        .encode()
    )


def test_upserts_and_tombstones_maintain_the_contacts() -> None:
    directory = UserDirectory()
    apply_record(directory, b"1", _user(1, "old@example.com"))
    apply_record(directory, b"1", _user(1, "new@example.com"))
    apply_record(directory, b"2", _user(2, "two@example.com"))
    apply_record(directory, b"2", None)
    assert directory.contacts == {1: Contact("new@example.com", "de", frozenset(), None, "consumer")}


def test_a_tombstone_without_a_numeric_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="key"):
        apply_record(UserDirectory(), b"abc", None)


def test_an_invalid_record_is_rejected_and_changes_nothing() -> None:
    directory = UserDirectory()
    with pytest.raises(ValidationError):
        apply_record(directory, b"1", b'{"user_id": -1}')
    assert directory.contacts == {}


def test_the_view_knows_which_offsets_it_reflects() -> None:
    directory = UserDirectory()
    directory.advance(0, 10)
    assert directory.reached({0: 10}) and not directory.reached({0: 10, 1: 1})
    directory.advance(0, 3)  # never moves back
    assert directory.reached({0: 10})


def test_a_known_user_given_new_entitlements_is_reported_as_a_grant() -> None:
    directory = UserDirectory()
    assert apply_record(directory, b"1", _user(1, "a@example.com")) is None  # a first record is no grant
    more = json.loads(_user(1, "a@example.com"))
    more["entitlements"] = sorted({*more["entitlements"], "lyric-9"})
    user, _, gained = apply_record(directory, b"1", json.dumps(more).encode())
    assert user == 1 and gained == {"lyric-9"}
    fewer = {**more, "entitlements": []}
    assert apply_record(directory, b"1", json.dumps(fewer).encode()) is None  # a revocation needs no notice
