"""Notifier benchmark: its channels to a local aiosmtpd and webhook receiver, and the whole notifier on Kafka.

`python -m bench.notify` (`make bench-notify`): EmailChannel and WebhookChannel send 100,000 notices in batches
as the notifier does, each receiver in its own process (aiosmtpd; the webhook receiver built from bench/hookreceiver,
Go, verifying every signature); then its own broker (.run/bench-kafka-notify), the
notifier as a process (`python -m services.notifier`), 100,000 users, an assessment, and the confirmation
timed to each notice's arrival at aiosmtpd. Writes bench/results/notify.json."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import signal
import statistics
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
from pyroaring import BitMap

from bench.report import publish
from devtools.broker import LocalBroker
from devtools.hooks import HookReceiver
from devtools.mailbox import Mailbox
from devtools.messages import directive_enforced, impact_assessment, user_upserted
from devtools.ports import free_port
from devtools.processes import signal_group
from devtools.stack import Stack
from services.notifier.email_channel import EmailChannel
from services.notifier.notices import Contact, Notice
from services.notifier.settings import ChannelLimits, NotifierSettings, WebhookEndpoint
from services.notifier.sink import Letter
from services.notifier.smtp import SmtpServer
from services.notifier.webhook_channel import WebhookChannel
from services.notifier.webhooks import UrlPolicy, new_secret
from services.notifier.wording import Wording
from shared.contracts.catalogue import ENFORCEMENT, IMPACT, USERS
from shared.contracts.enforcement import DirectiveEnforced
from shared.contracts.users import user_key
from shared.runtime.event_loop import event_loop_factory
from shared.runtime.kafka import admin, producing
from shared.runtime.settings import KafkaSettings
from shared.runtime.topics import apply_topics

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / ".run" / "bench-notify"
CRASH_RUN = ROOT / ".run" / "bench-notify-crash"
KAFKA_DATA = ROOT / ".run" / "bench-kafka-notify"
SENDER = "notices@bench.example"
MODEL = "fable-5"
CLUSTERS = ("bench-us-east", "bench-eu-west", "bench-ap-south")
BASE = 3_500_000_000  # user ids of the end-to-end run
TIMEOUT_S = 900.0
HOOK_RECEIVER = ROOT / "bench" / "hookreceiver"


# -- receivers, each in a process of its own (as a mail server or a customer's endpoint would be) --------------


def _serve_mail(conn: Connection) -> None:
    with Mailbox() as box:
        conn.send(box.port)
        while (ask := conn.recv()) != "stop":
            if ask == "count":
                conn.send(len(box.unique()))
            else:  # arrivals: idempotency key -> when the first copy was accepted
                conn.send({m.notice: m.at for m in box.unique().values()})


def _serve_hooks(conn: Connection, secret: str) -> None:
    async def serve() -> None:
        hooks = await HookReceiver([secret]).start()
        conn.send(hooks.port)
        loop = asyncio.get_running_loop()
        while (ask := await loop.run_in_executor(None, conn.recv)) != "stop":
            conn.send(len(hooks.received) if ask == "count" else {})
        await hooks.stop()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve())


class GoHooks:
    """The webhook receiver built from bench/hookreceiver (Go: verifies every signature as devtools/hooks.py does,
    keeps one copy per webhook-id) in its own process, so the receiving side does not take the notifier's CPU."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> GoHooks:
        binary = ROOT / ".run" / "bench-hookreceiver"
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=HOOK_RECEIVER, check=True)
        self._process = subprocess.Popen(
            [str(binary), "-secrets", self._secret], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(30)

    def count(self) -> int:
        """Distinct webhook-ids held (each verified)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/count", timeout=30) as answer:
            return int(answer.read().split()[0])


def hook_receiver(secret: str) -> GoHooks | Receiver:
    """The Go receiver when a Go toolchain is there, else the Python one (devtools/hooks.py) in a process of its own."""
    return GoHooks(secret) if shutil.which("go") else Receiver(_serve_hooks, secret)


class Receiver:
    """A receiving server in a child process: its port, how many distinct notices it holds, when each came."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self._conn, theirs = multiprocessing.get_context("spawn").Pipe()
        self._process = multiprocessing.get_context("spawn").Process(target=target, args=(theirs, *args))

    def __enter__(self) -> Receiver:
        self._process.start()
        self.port = int(self._conn.recv())
        return self

    def __exit__(self, *_: object) -> None:
        self._conn.send("stop")
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()

    def count(self) -> int:
        self._conn.send("count")
        return int(self._conn.recv())

    def arrivals(self) -> dict[str, float]:
        self._conn.send("arrivals")
        return dict(self._conn.recv())


# -- channel throughput -------------------------------------------------------------------------------------


def _letters(count: int, org: str | None = None) -> list[Letter]:
    wording = Wording()
    letters = []
    for user in range(count):
        notice = Notice(f"BENCH:1:restricted:{user}", user, "BENCH", 1, "restricted", (MODEL,))
        letters.append(Letter(notice, Contact(f"u{user}@example.com", "en", None, org), *wording.render(notice)))
    return letters


async def _throughput(
    deliver: Callable[[list[Letter]], Awaitable[list[Any]]], letters: list[Letter], batch: int
) -> float:
    """Notices a second over every batch, sent one batch after the other as the notifier sends them."""
    started = time.perf_counter()
    outcomes = []
    for i in range(0, len(letters), batch):
        outcomes += await deliver(letters[i : i + batch])
    elapsed = time.perf_counter() - started
    assert all(o.verdict == "delivered" for o in outcomes), {o.reason for o in outcomes}
    return len(letters) / elapsed


async def smtp_per_s(count: int, limits: ChannelLimits, batch: int) -> float:
    letters = _letters(count)
    with Receiver(_serve_mail) as mail:
        channel = EmailChannel(SmtpServer("127.0.0.1", mail.port, SENDER), limits)
        try:
            rate = await _throughput(channel.deliver, letters, batch)
        finally:
            await channel.close()
        assert mail.count() == count, "the SMTP server holds fewer distinct notices than were sent"
    return rate


async def webhook_per_s(count: int, limits: ChannelLimits, batch: int) -> float:
    secret = new_secret()
    letters = _letters(count, "org")
    with hook_receiver(secret) as hooks:
        endpoint = WebhookEndpoint(url=f"http://127.0.0.1:{hooks.port}/hook", secrets=[secret])
        channel = WebhookChannel({"org": endpoint}, UrlPolicy(("127.0.0.1",)), limits)
        try:
            rate = await _throughput(channel.deliver, letters, batch)
        finally:
            await channel.close()
        assert hooks.count() == count, "the receiver holds fewer distinct notices than were sent"
    return rate


# -- enforcement confirmed -> delivered, the whole notifier on Kafka --------------------------------------------


async def _load_users(settings: KafkaSettings, count: int) -> None:
    async with producing(settings, "bench-notify-users") as producer:
        pending = []
        for i in range(count):
            locale = "fr" if i % 4 == 0 else "en"
            record = user_upserted(BASE + i, f"u{i}@example.com", [MODEL], producer="bench", locale=locale)
            pending.append(await producer.send(USERS.name, record.model_dump_json().encode(), user_key(BASE + i)))
        await asyncio.gather(*pending)


def _assessment(directive: str, users: BitMap) -> list[bytes]:
    """Impact's assessment restricting `users` from MODEL, as the values of its records."""
    messages = impact_assessment(directive, 1, "restrict", {MODEL: users}, producer="bench")
    return [message.model_dump_json().encode() for message in messages]


async def _consumed(settings: KafkaSettings, group: str, topic: str, end: int) -> bool:
    async with admin(settings, "bench-notify-lag") as client:
        offsets = await client.list_consumer_group_offsets(group)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0) >= end


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.5)


async def confirm_to_delivered(count: int, env: dict[str, str]) -> dict[str, Any]:
    """Seconds from DirectiveEnforced produced to each notice accepted by aiosmtpd, and the notifier's peak RSS."""
    shutil.rmtree(RUN, ignore_errors=True)
    directive, group = "BENCH-NOTIFY", "countermand-notifier"
    with LocalBroker(KAFKA_DATA, agents=CLUSTERS) as kafka, Receiver(_serve_mail) as mail:
        kafka.access.export()  # this process logs in as tooling
        settings = KafkaSettings(bootstrap=kafka.bootstrap)
        await apply_topics(settings)
        await _load_users(settings, count)
        stack = Stack(kafka.bootstrap, RUN, clusters=(), extra_env={"COUNTERMAND_LOG_LEVEL": "WARNING"})
        stack.access = kafka.access
        state = RUN / "notifier"
        notifier = stack.spawn(
            "notifier",
            "notifier",
            {
                **stack.base_env("notifier"),
                **stack.signing_env("notifier"),
                "COUNTERMAND_NOTIFIER_STATE_DIR": str(state),
                "COUNTERMAND_NOTIFIER_HTTP_PORT": str(free_port()),
                "COUNTERMAND_NOTIFIER_SMTP_PORT": str(mail.port),
                "COUNTERMAND_NOTIFIER_SMTP_SENDER": SENDER,
                **env,
            },
        )
        peak = 0

        async def sample() -> None:
            nonlocal peak
            process = psutil.Process(notifier.popen.pid)
            while True:
                peak = max(peak, process.memory_info().rss)
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        try:
            await asyncio.to_thread(stack.wait_ready, 180)
            users = BitMap(range(BASE, BASE + count))
            async with producing(settings, "bench-notify-impact") as producer:
                for value in _assessment(directive, users):
                    await producer.send_and_wait(IMPACT.name, value, directive.encode())
                # The assessment comes long before the confirmation in production: wait until it is stored.
                await _until(lambda: _consumed(settings, group, IMPACT.name, 2), "the assessment to be stored")
                confirmed = _enforced(directive)
                produced = time.time()
                await producer.send_and_wait(ENFORCEMENT.name, confirmed.model_dump_json().encode(), directive.encode())

            async def all_arrived() -> bool:
                stack.check_alive()
                return await asyncio.to_thread(mail.count) >= count

            await _until(all_arrived, f"{count:,} notices at the SMTP server")
            arrivals = sorted(at - produced for key, at in mail.arrivals().items() if key.startswith(directive))
        finally:
            sampler.cancel()
            stack.stop()
    assert len(arrivals) == count, f"{len(arrivals)} distinct notices arrived, {count} expected"
    return {
        "p95": arrivals[int(0.95 * (count - 1))],
        "p50": statistics.median(arrivals),
        "last": arrivals[-1],
        "first": arrivals[0],
        "rss_mib": peak / 2**20,
    }


async def crash(count: int) -> dict[str, int]:
    """kill -9 of the notifier half-way through a ledger batch a quarter of the way into `count` notices (the SMTP
    server kills it the moment it holds that message, before answering), then a restart on the same state: per
    recipient, how many distinct notices (by Message-ID) the server holds, and how many copies it dropped."""
    shutil.rmtree(CRASH_RUN, ignore_errors=True)
    directive, batch = "BENCH-CRASH", 500
    kill_at = (count // 4 // batch) * batch + batch // 2
    killed = threading.Event()
    notifiers: list[Any] = []

    def kill() -> None:  # in the SMTP server's thread, before it answers the kill_at-th message
        signal_group(notifiers[0].popen, signal.SIGKILL)
        killed.set()

    with LocalBroker(KAFKA_DATA, agents=CLUSTERS) as kafka, Mailbox(on_count=(kill_at, kill)) as box:
        kafka.access.export()
        settings = KafkaSettings(bootstrap=kafka.bootstrap)
        await apply_topics(settings)
        await _load_users(settings, count)
        stack = Stack(kafka.bootstrap, CRASH_RUN, clusters=(), extra_env={"COUNTERMAND_LOG_LEVEL": "WARNING"})
        stack.access = kafka.access
        env = {
            **stack.base_env("notifier"),
            **stack.signing_env("notifier"),
            "COUNTERMAND_NOTIFIER_STATE_DIR": str(CRASH_RUN / "notifier"),
            "COUNTERMAND_NOTIFIER_SMTP_PORT": str(box.port),
            "COUNTERMAND_NOTIFIER_SMTP_SENDER": SENDER,
            "COUNTERMAND_NOTIFIER_BATCH_SIZE": str(batch),
        }
        try:
            notifiers.append(stack.spawn("notifier", "notifier", {**env, "COUNTERMAND_NOTIFIER_HTTP_PORT": "0"}))
            async with producing(settings, "bench-notify-impact") as producer:
                for value in _assessment(directive, BitMap(range(BASE, BASE + count))):
                    await producer.send_and_wait(IMPACT.name, value, directive.encode())
                confirmed = _enforced(directive)
                await producer.send_and_wait(ENFORCEMENT.name, confirmed.model_dump_json().encode(), directive.encode())
            await _until(lambda: asyncio.to_thread(killed.wait, 1), "the kill")
            notifiers[0].popen.wait()
            at_kill = box.count()
            stack.spawn("notifier", "notifier", {**env, "COUNTERMAND_NOTIFIER_HTTP_PORT": "0"}, mode="ab")

            async def all_there() -> bool:
                stack.check_alive()
                return len(box.unique()) >= count

            await _until(all_there, f"{count:,} distinct notices after the restart")
            await asyncio.sleep(2)  # anything still on its way would show up as a second copy
        finally:
            stack.stop()
        kept = [m for m in box.unique().values() if m.notice.startswith(f"{directive}:")]
        copies = sum(m.notice.startswith(f"{directive}:") for m in box.received)
    per_address = Counter(m.to for m in kept)
    expected = {f"u{i}@example.com" for i in range(count)}
    return {
        "missing": len(expected - set(per_address)),
        "duplicates": sum(n - 1 for n in per_address.values()) + len(set(per_address) - expected),
        "resent": copies - len(kept),
        "at_kill": at_kill,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=100_000)
    parser.add_argument("--skip-kafka", action="store_true", help="channels only (no broker, no notifier process)")
    parser.add_argument("--skip-crash", action="store_true", help="without the kill -9 run")
    args = parser.parse_args()
    defaults = NotifierSettings()
    batch = defaults.batch_size
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:  # the services' event loop
        smtp = runner.run(smtp_per_s(args.notices, defaults.smtp, batch))
        print(f"smtp_per_s {smtp:.1f}", flush=True)  # each figure as soon as it is measured (a long run)
        hooks = runner.run(webhook_per_s(args.notices, defaults.webhook, batch))
        print(f"webhook_per_s {hooks:.1f}", flush=True)
        e2e = None if args.skip_kafka else runner.run(confirm_to_delivered(args.notices, {}))
        crashed = None if args.skip_kafka or args.skip_crash else runner.run(crash(args.notices))
    channels = (
        f"{args.notices:,} notices in batches of {batch}, the default limits (SMTP {defaults.smtp.concurrency} "
        f"connections, webhooks {defaults.webhook.concurrency} requests in flight); receiver in its own process "
        f"({'Go, bench/hookreceiver' if shutil.which('go') else 'Python'} for webhooks)"
    )
    rows: list[dict[str, Any]] = [
        {"metric": "smtp_per_s", "value": round(smtp, 1), "unit": "notices/s", "target": ">= 1000", "note": channels},
        {
            "metric": "webhook_per_s",
            "value": round(hooks, 1),
            "unit": "notices/s",
            "target": ">= 3000",
            "note": channels,
        },
    ]
    if e2e is None:
        rows.append(
            {
                "metric": "confirm_to_delivered_p95_s",
                "value": None,
                "unit": "s",
                "target": "<= 60",
                "note": "not measured (--skip-kafka)",
            }
        )
    else:
        where = (
            f"{args.notices:,} notices: DirectiveEnforced produced on Kafka -> each accepted by aiosmtpd "
            f"(own process); the notifier as a process with its default settings; p50 {e2e['p50']:.1f} s, "
            f"first {e2e['first']:.1f} s, last {e2e['last']:.1f} s"
        )
        rows += [
            {
                "metric": "confirm_to_delivered_p95_s",
                "value": round(e2e["p95"], 1),
                "unit": "s",
                "target": "<= 60",
                "note": where,
            },
            {
                "metric": "notifier_rss_mib",
                "value": round(e2e["rss_mib"], 1),
                "unit": "MiB",
                "target": "",
                "note": "peak RSS of the notifier process during the end-to-end run (sampled every 0.25 s)",
            },
        ]
    if crashed is not None:
        how = (
            f"{args.notices:,} notices on Kafka and aiosmtpd; kill -9 of the notifier at message "
            f"{crashed['at_kill']:,} (mid-batch, before the server answered), restart: "
            f"{crashed['resent']:,} copies re-sent in the crash window, dropped by Message-ID"
        )
        rows += [
            {
                "metric": "crash_duplicates",
                "value": crashed["duplicates"],
                "unit": "notices",
                "target": "<= 0",
                "note": how,
            },
            {"metric": "crash_missing", "value": crashed["missing"], "unit": "notices", "target": "<= 0", "note": how},
        ]
    publish("notify", rows, "notifier")


def _enforced(directive: str) -> DirectiveEnforced:
    """Enforcement's confirmation that every cluster applied revision 1 of `directive`."""
    return directive_enforced(directive, 1, "restrict", clusters=CLUSTERS, producer="bench")


if __name__ == "__main__":
    main()
