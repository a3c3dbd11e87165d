"""Settings of the notifier service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.runtime.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    """Notifier settings (env prefix COUNTERMAND_NOTIFIER_; Kafka from COUNTERMAND_KAFKA_)."""

    model_config = SettingsConfigDict(env_prefix="COUNTERMAND_NOTIFIER_", extra="forbid")

    http_host: str = Field("127.0.0.1", description="Address of the health endpoints (/healthz, /readyz).")
    http_port: int = Field(
        0,
        ge=0,
        le=65535,
        description='Port of the health endpoints (0: any free port, logged in the "service ready" line).',
    )

    group_id: str = Field(
        "countermand-notifier", min_length=1, description="Consumer group for the impact and enforcement topics."
    )
    outbox_path: Path | None = Field(None, description="JSONL outbox file; default state_dir/notifier/outbox.jsonl.")
    batch_size: int = Field(1000, ge=1, description="Notices per ledger transaction and sink write.")
    publish_group: int = Field(300, ge=1, description="Messages published concurrently before awaiting acks.")
    progress_every: int = Field(10_000, ge=1, description="Log progress every this many notices.")
    registry_fetch: int = Field(20_000, ge=1, description="Most user records read from Kafka per fetch.")
    registry_wait_s: float = Field(
        60.0,
        ge=0,
        description="How long a dispatch waits for the user view to reach the offsets the impact was computed at.",
    )

    @property
    def home(self) -> Path:
        """Folder of the notifier's durable state."""
        return self.state_dir / "notifier"

    @property
    def outbox(self) -> Path:
        """Where the outbox sink appends notices."""
        return self.outbox_path or self.home / "outbox.jsonl"
