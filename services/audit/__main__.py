"""`python -m services.audit`: run the audit service until SIGTERM or SIGINT."""

from __future__ import annotations

from services.audit.app import SERVICE, AuditService, build
from services.audit.settings import AuditSettings
from shared.runtime.service import run

if __name__ == "__main__":
    run(
        SERVICE,
        build,
        AuditSettings,
        http=AuditService.http_server,
        ready_fields=lambda settings, _: {"ledger": str(settings.ledger_path)},
    )
