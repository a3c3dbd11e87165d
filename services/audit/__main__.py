"""`python -m services.audit`: run the audit service until SIGTERM or SIGINT."""

from __future__ import annotations

from services.audit.app import SERVICE, AuditService, build
from services.audit.signing_key import RunSettings
from shared.runtime.service import run

if __name__ == "__main__":
    run(
        SERVICE,
        build,
        RunSettings,  # refuses to start without a signing key unless in unsigned dev mode
        http=AuditService.http_server,
        ready_fields=lambda settings, _: {"ledger": str(settings.ledger_path)},
    )
