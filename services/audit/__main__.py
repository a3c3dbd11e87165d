"""`python -m services.audit`: run the audit service until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

from services.audit.app import SERVICE, build
from services.audit.settings import AuditSettings
from shared.runtime.logging import configure_logging


async def main() -> None:
    settings = AuditSettings()
    log = configure_logging(settings.log, SERVICE)
    audit = build(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await audit.start()
    log.info("service ready", ledger=str(settings.ledger_path))
    try:
        await stopping.wait()
    finally:
        await audit.stop()
        log.info("service stopped")


if __name__ == "__main__":
    asyncio.run(main())
