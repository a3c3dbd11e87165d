"""Where the registry import reaches past aiokafka's public BatchBuilder: checked against aiokafka==0.14.0.

`BatchBuilder.append` is a Python method (keyword arguments, a serializer hook, a closed check) around the
record batch builder that aiokafka compiles (`_builder`, DefaultRecordBatchBuilder). The import appends a
whole batch of records that it knows fit straight to that builder, in one `map`: no Python frame per record.
tests/unit/imports/test_aiokafka_fence.py holds the batch equal to one built through `append`, and fails
loudly if an upgrade changes either.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

from aiokafka.producer.message_accumulator import BatchBuilder

CHECKED_AGAINST = {"aiokafka": "0.14.0"}
BATCH_HEADER_BYTES = 61  # DefaultRecordBase.HEADER_STRUCT.size: the v2 batch header
RECORD_OVERHEAD_BYTES = 32  # at most, besides key and value: length, attributes, deltas, key/value lengths, headers


def fill(batch: BatchBuilder, keys: Sequence[bytes], values: Sequence[bytes | None], timestamp_ms: int) -> None:
    """Append every (key, value) to an empty batch, all with one timestamp; ValueError if they do not all fit
    (see fits())."""
    builder = batch._builder
    appended = list(map(builder.append, range(len(keys)), repeat(timestamp_ms), keys, values, repeat([])))
    if None in appended:
        raise ValueError(f"{appended.count(None)} of {len(keys)} records did not fit the batch")
    batch._relative_offset = len(keys)
