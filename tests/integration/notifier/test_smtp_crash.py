"""On real Kafka and a real SMTP server (aiosmtpd): kill -9 the notifier in the middle of a large batch and
restart it. The ledger records after the send, so the crash window re-sends; the receiver deduplicates by
Message-ID (derived from the idempotency key), and then every recipient holds exactly one notice.

The kill is deterministic: the SMTP server itself sends SIGKILL the moment it has the KILL_AT-th message,
before it answers, half-way through a ledger batch: that batch's sends are on the server, none recorded."""

from __future__ import annotations

import asyncio
import os
import signal
import zlib
from collections import Counter
from pathlib import Path

import pytest

from devtools.broker import KafkaAccess
from devtools.mailbox import Mailbox
from devtools.messages import user_upserted
from devtools.processes import signal_group
from devtools.stack import Stack
from devtools.waiting import eventually
from services.notifier.smtp import message_id
from shared.contracts.users import user_key
from shared.runtime.kafka import producing
from shared.runtime.settings import KafkaSettings
from tests.integration.notifier.conftest import assessment, confirmation, produce

USERS = int(os.environ.get("COUNTERMAND_TEST_CRASH_NOTICES", "20000"))  # the 100,000: set it so
BATCH = 500
KILL_AT = (USERS // 4 // BATCH) * BATCH + BATCH // 2  # the middle of the batch a quarter of the way through
SENDER = "notices@provider.example"


async def _load_registry(bootstrap: str, base: int) -> None:
    async with producing(KafkaSettings(bootstrap=bootstrap), "tests-notifier-crash") as producer:
        sent = []
        for i in range(USERS + 1):
            entitled = ["fable-5"] if i < USERS else ["lyric-4"]  # the last one is covered but holds nothing lost
            record = user_upserted(base + i, f"u{i}@example.com", entitled)
            sent.append(await producer.send("identity.users.v1", record.model_dump_json().encode(), user_key(base + i)))
        await asyncio.gather(*sent)


def _spawn(stack: Stack, state: Path, box: Mailbox, group: str):
    env = stack.base_env()
    env.update(
        {
            "COUNTERMAND_NOTIFIER_STATE_DIR": str(state),
            "COUNTERMAND_NOTIFIER_GROUP_ID": group,
            "COUNTERMAND_NOTIFIER_SMTP_PORT": str(box.port),
            "COUNTERMAND_NOTIFIER_SMTP_SENDER": SENDER,
            "COUNTERMAND_NOTIFIER_BATCH_SIZE": str(BATCH),
            "COUNTERMAND_NOTIFIER_PROGRESS_EVERY": "5000",
        }
    )
    return stack.spawn("notifier", "notifier", env, mode="ab")


@pytest.mark.timeout(max(1800, USERS // 10))  # a hang guard (two notifier runs, 20,000+ notices), not a timing
async def test_kill_9_mid_batch_then_restart_leaves_exactly_one_notice_per_recipient(
    bootstrap: str, unique: str, tmp_path: Path, kafka_access: KafkaAccess
) -> None:
    directive, base = f"CRASH-{unique}", 3_000_000_000 + zlib.crc32(unique.encode()) % 40_000 * 25_000  # 20,001 ids
    await _load_registry(bootstrap, base)
    stack = Stack(bootstrap, tmp_path, access=kafka_access)  # the notifier process logs in to the broker
    killed = asyncio.Event()
    loop = asyncio.get_running_loop()
    processes = []

    def kill() -> None:  # in the SMTP server's thread, before it answers the KILL_AT-th message
        signal_group(processes[0].popen, signal.SIGKILL)  # no goodbye: whatever was in flight is lost
        loop.call_soon_threadsafe(killed.set)

    with Mailbox(tmp_path / "mailbox.jsonl", on_count=(KILL_AT, kill)) as box:
        processes.append(_spawn(stack, tmp_path / "state", box, f"notifier-{unique}"))
        try:
            covered = {"fable-5": list(range(base, base + USERS + 1))}
            await produce(bootstrap, assessment(directive, 1, "restrict", covered))
            await produce(bootstrap, [confirmation(directive, 1, "restrict")])
            await asyncio.wait_for(killed.wait(), timeout=600)
        finally:
            signal_group(processes[0].popen, signal.SIGKILL)
            processes[0].popen.wait()
        at_kill = box.count()
        others = len({m.message_id for m in box.received if not m.notice.startswith(f"{directive}:")})
        assert KILL_AT <= at_kill < USERS, "the batch finished before the kill: nothing was interrupted"

        _spawn(stack, tmp_path / "state", box, f"notifier-{unique}")  # same state and group: it resumes
        try:
            await eventually(lambda: len(box.unique()) >= USERS + others, timeout=max(300, USERS / 20))
            await asyncio.sleep(2)  # anything still on its way would show up as a second recipient copy
        finally:
            stack.stop()

    # A fresh group reads the impact topic from its beginning: other tests' directives may arrive here too.
    kept = {k: m for k, m in box.unique().items() if m.notice.startswith(f"{directive}:")}
    per_address = Counter(m.to for m in kept.values())
    assert set(per_address) == {f"u{i}@example.com" for i in range(USERS)}  # none missing, nothing for u20000
    assert set(per_address.values()) == {1}  # exactly one per recipient after deduplicating by Message-ID
    assert set(kept) == {message_id(f"{directive}:1:restricted:{base + i}", "provider.example") for i in range(USERS)}
    resent = sum(m.notice.startswith(f"{directive}:") for m in box.received) - len(kept)
    assert resent > 0, "nothing was sent twice: the kill missed the window between send and record"
    print(f"killed after {at_kill} messages; {resent} re-sent in the crash window, dropped by Message-ID")
