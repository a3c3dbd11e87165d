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
        ready_fields=lambda settings, _: {
            "email": settings.email_channel,
            "smtp": f"{settings.smtp_host}:{settings.smtp_port}",
            "webhook_endpoints": len(settings.webhooks),
            "group": settings.group_id,
        },
    )
