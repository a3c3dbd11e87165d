"""The records the importer produces: byte for byte UserUpserted, deterministic, on the default partitioner's
partitions."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from cli.imports.columns import parse_mapping
from cli.imports.encoding import encode, event_id
from cli.imports.partitions import partitions_for
from cli.imports.reader import read
from cli.imports.validation import check
from shared.contracts.catalogue import USERS
from shared.contracts.users import UserUpserted, user_key
from shared.runtime.topics import partition_for

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROWS = (
    "1,a@example.com,US;IE,DE,consumer,org-1,fable-5|mythos-5,de,,",
    '2,"x""y\\z@example.com",,,employee,,,,true,',
    "3,ü@example.de,,US,enterprise_member,,,,,",
)


def values(files, rows=ROWS, at=AT) -> list[bytes]:
    return encode(check(read(files.csv(*rows), parse_mapping([]))).upserts).values(at)


def test_values_are_what_the_contract_serializes(files) -> None:
    for value in values(files):
        assert UserUpserted.model_validate_json(value).model_dump_json().encode() == value


def test_the_event_id_is_a_digest_of_the_record_body(files) -> None:
    for value in values(files):
        body = value[value.index(b'"type":') :]
        assert UserUpserted.model_validate_json(value).event_id == event_id(body)


def test_the_same_rows_give_the_same_values_and_a_change_a_new_event(files) -> None:
    first, again = values(files), values(files)
    assert first == again
    changed = values(files, (ROWS[0].replace("DE", "FR"), *ROWS[1:]))
    assert changed[1:] == first[1:]
    assert UserUpserted.model_validate_json(changed[0]).event_id != UserUpserted.model_validate_json(first[0]).event_id


def test_keys_are_the_decimal_ids(files) -> None:
    encoded = encode(check(read(files.csv(*ROWS), parse_mapping([]))).upserts)
    assert encoded.keys.to_pylist() == [user_key(1), user_key(2), user_key(3)]


def test_partitions_agree_with_the_shared_partitioner() -> None:
    ids = np.concatenate(
        [
            np.arange(0, 3000),
            np.random.default_rng(7).integers(0, 2**32, 5000),
            np.random.default_rng(8).permutation(100_000)[:2000],
        ]
    )
    keys = pa.array(ids).cast(pa.string()).cast(pa.binary())
    expected = [partition_for(USERS, key) for key in keys.to_pylist()]
    assert partitions_for(keys, USERS.partitions).tolist() == expected
    assert partitions_for(keys.slice(1234, 999), USERS.partitions).tolist() == expected[1234:2233]
