"""`python -m services.agent`: run one cluster's agent until SIGTERM/SIGINT."""

from __future__ import annotations

from services.agent.app import SERVICE, build
from services.agent.settings import AgentSettings
from shared.runtime.service import run

if __name__ == "__main__":
    run(
        SERVICE,
        build,
        AgentSettings,
        ready_fields=lambda settings, agent: {
            "cluster_id": settings.cluster_id,
            "http_port": agent.http_port,
            "group": settings.group,
        },
    )
