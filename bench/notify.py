"""Notifier channel throughput: the notifier's own EmailChannel to a local aiosmtpd and WebhookChannel to a
local verifying receiver, plus this process's RSS. `make bench-notify` -> bench/results/notify.json.

confirm_to_delivered_p95_s (enforcement confirmed -> delivered, 100,000 notices through Kafka) needs the
whole notifier on a broker and is reported as not measured here (see the note)."""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

from bench.report import publish
from devtools.hooks import HookReceiver
from devtools.mailbox import Mailbox
from services.notifier.email_channel import EmailChannel
from services.notifier.notices import Contact, Notice
from services.notifier.settings import ChannelLimits, WebhookEndpoint
from services.notifier.sink import Letter
from services.notifier.smtp import SmtpServer
from services.notifier.webhook_channel import WebhookChannel
from services.notifier.webhooks import UrlPolicy, new_secret
from services.notifier.wording import Wording


def _letters(count: int, org: str | None = None) -> list[Letter]:
    wording = Wording()
    letters = []
    for user in range(count):
        notice = Notice(f"BENCH:1:restricted:{user}", user, "BENCH", 1, "restricted", ("fable-5",))
        letters.append(Letter(notice, Contact(f"u{user}@example.com", "en", None, org), *wording.render(notice)))
    return letters


async def smtp_per_s(count: int, concurrency: int) -> float:
    with Mailbox() as box:
        channel = EmailChannel(
            SmtpServer("127.0.0.1", box.port, "notices@bench.example"), ChannelLimits(concurrency=concurrency)
        )
        letters = _letters(count)
        started = time.perf_counter()
        outcomes = await channel.deliver(letters)
        elapsed = time.perf_counter() - started
    assert all(o.verdict == "delivered" for o in outcomes), {o.reason for o in outcomes}
    return count / elapsed


async def webhook_per_s(count: int, concurrency: int) -> float:
    secret = new_secret()
    receiver = await HookReceiver([secret]).start()
    endpoint = WebhookEndpoint(url=receiver.url(), secrets=[secret])
    channel = WebhookChannel({"org": endpoint}, UrlPolicy(("127.0.0.1",)), ChannelLimits(concurrency=concurrency))
    try:
        letters = _letters(count, "org")
        started = time.perf_counter()
        outcomes = await channel.deliver(letters)
        elapsed = time.perf_counter() - started
    finally:
        await channel.close()
        await receiver.stop()
    assert all(o.verdict == "delivered" for o in outcomes), {o.reason for o in outcomes}
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    smtp = asyncio.run(smtp_per_s(args.notices, args.concurrency))
    hooks = asyncio.run(webhook_per_s(args.notices, args.concurrency))
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    where = f"{args.notices:,} notices, concurrency {args.concurrency}, sender and receiver in one process"
    publish(
        "notify",
        [
            {"metric": "smtp_per_s", "value": round(smtp, 1), "unit": "notices/s", "target": ">= 1000", "note": where},
            {
                "metric": "webhook_per_s",
                "value": round(hooks, 1),
                "unit": "notices/s",
                "target": ">= 3000",
                "note": where,
            },
            {
                "metric": "confirm_to_delivered_p95_s",
                "value": None,
                "unit": "s",
                "target": "<= 60",
                "note": "not measured: needs the notifier on Kafka with 100,000 notices (not built yet)",
            },
            {
                "metric": "notifier_rss_mib",
                "value": round(rss_mib, 1),
                "unit": "MiB",
                "target": "",
                "note": "peak RSS of this process",
            },
        ],
        "notifier channels",
    )


if __name__ == "__main__":
    main()
