"""The fence around aiokafka's record batch builder (cli.imports.aiokafka_fence), checked on aiokafka 0.14.0:
a batch filled in one call is byte for byte the batch `BatchBuilder.append` builds, and the cut is safe."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import version

import pyarrow as pa
import pytest
from aiokafka.producer.message_accumulator import BatchBuilder

from cli.imports import aiokafka_fence
from cli.imports.aiokafka_fence import fill
from cli.imports.encoding import value_of, values_of
from cli.imports.producing import by_partition

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEYS = [str(n).encode() for n in range(1, 400)]
BODIES = [b'"type":"UserUpserted","user_id":%d,"x":"%s"}' % (n, b"y" * (n % 50)) for n in range(1, 400)]


def test_the_installed_aiokafka_is_the_one_the_fence_was_checked_against() -> None:
    assert version("aiokafka") == aiokafka_fence.CHECKED_AGAINST["aiokafka"], (
        "aiokafka changed: re-check cli/imports/aiokafka_fence.py, then update CHECKED_AGAINST"
    )


def test_a_filled_batch_is_the_batch_append_builds() -> None:
    values = values_of(BODIES, AT)
    public, fenced = BatchBuilder(1 << 20, 0), BatchBuilder(1 << 20, 0)
    for key, value in zip(KEYS, values, strict=True):
        assert public.append(timestamp=1_700_000_000_000, key=key, value=value) is not None
    fill(fenced, KEYS, values, 1_700_000_000_000)
    assert fenced.record_count() == public.record_count() == len(KEYS)
    assert bytes(fenced._build()) == bytes(public._build())


def test_values_in_bulk_are_the_values_one_by_one() -> None:
    value = value_of(AT)
    assert values_of(BODIES, AT) == [value(body) for body in BODIES]


@pytest.mark.parametrize("batch_size", [2_000, 10_000, 1 << 20])
def test_every_cut_batch_fits_and_keeps_file_order_per_partition(batch_size: int) -> None:
    parts = by_partition(pa.array(KEYS, pa.binary()), pa.array(BODIES, pa.binary()), AT, 6, batch_size)
    assert sorted(key for part in parts for key in part.keys) == sorted(KEYS)
    for part in parts:
        assert [int(k) for k in part.keys] == sorted(int(k) for k in part.keys)
        for start, stop in zip(part.bounds, part.bounds[1:], strict=False):
            batch = BatchBuilder(batch_size, 0)
            fill(batch, part.keys[start:stop], part.values[start:stop], 1_700_000_000_000)
            assert len(batch._build()) <= batch_size


def test_a_record_larger_than_a_batch_is_refused_naming_the_user() -> None:
    with pytest.raises(ValueError, match="user 7: the record does not fit"):
        by_partition(pa.array([b"7"], pa.binary()), pa.array([b"z" * 5000], pa.binary()), AT, 6, 1000)
