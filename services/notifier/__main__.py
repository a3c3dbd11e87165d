"""Run the notifier: `python -m services.notifier`."""

from __future__ import annotations

from services.notifier.app import SERVICE, NotifierService, build
from services.notifier.settings import NotifierSettings
from shared.runtime.service import run

if __name__ == "__main__":
    run(
        SERVICE,
        build,
        NotifierSettings,
        http=NotifierService.http_server,
        ready_fields=lambda settings, _: {"outbox": str(settings.outbox), "group": settings.group_id},
    )
