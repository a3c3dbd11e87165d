"""Run the notifier: `python -m services.notifier`."""

from __future__ import annotations

import asyncio
import signal

from services.notifier.app import build
from services.notifier.settings import NotifierSettings
from shared.runtime.logging import configure_logging


async def main() -> None:
    settings = NotifierSettings()
    log = configure_logging(settings.log, "notifier")
    notifier = build(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await notifier.start()
    log.info("service ready", outbox=str(settings.outbox), group=settings.group_id)
    try:
        await stopping.wait()
    finally:
        await notifier.stop()
        log.info("service stopped")


if __name__ == "__main__":
    asyncio.run(main())
