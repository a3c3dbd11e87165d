"""Settings of the notifier service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.runtime.settings import ServiceSettings


class WebhookEndpoint(BaseModel):
    """Where an organisation's notices are POSTed, and the secrets they are signed with (several while rotating)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(..., description="https URL (plain http only on loopback), inside webhook_allowed_hosts.")
    secrets: list[str] = Field(..., min_length=1, description="Active signing secrets, whsec_ + base64.")


class ChannelLimits(BaseModel):
    """How hard one channel is driven, and how long a transient failure is retried."""

    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(8, ge=1, description="SMTP connections, or requests in flight per webhook endpoint.")
    rate_per_s: float = Field(0, ge=0, description="Most sends per second over the channel (0: unlimited).")
    timeout_s: float = Field(10.0, gt=0, description="How long one attempt may take.")
    attempts: int = Field(5, ge=1, description="Attempts before a transient failure is given up as failed.")
    backoff_base_s: float = Field(0.5, ge=0, description="Backoff base: attempt n waits up to base * 2**n.")
    backoff_cap_s: float = Field(30.0, ge=0, description="Longest wait between two attempts.")


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
    email_channel: Literal["smtp", "outbox"] = Field(
        "smtp",
        description="How email notices leave: smtp (production), or outbox (a local JSONL file, development only).",
    )
    outbox_path: Path | None = Field(None, description="JSONL outbox file; default state_dir/notifier/outbox.jsonl.")
    smtp_host: str = Field("127.0.0.1", min_length=1, description="SMTP server (submission) host.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP server port.")
    smtp_sender: str = Field(
        "notices@countermand.invalid",
        min_length=3,
        description="Envelope and From address; its domain ends Message-IDs.",
    )
    smtp_username: str = Field("", description="SMTP AUTH user (none when empty).")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP AUTH password.")
    smtp_starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    smtp: ChannelLimits = Field(default_factory=ChannelLimits, description="Concurrency, rate and retries of SMTP.")
    webhooks: dict[str, WebhookEndpoint] = Field(
        default_factory=dict,
        description="Webhook endpoint per organisation id: its members' notices go there instead of email.",
    )
    internal_webhook: WebhookEndpoint | None = Field(
        None,
        description="The internal channel: employees' notices are POSTed (signed) to this endpoint of the provider's "
        "own instead of emailed; none: employees are emailed like everyone else.",
    )
    webhook_allowed_hosts: list[str] = Field(
        default_factory=list, description="Host names (and their subdomains) webhooks may be sent to."
    )
    webhook: ChannelLimits = Field(
        default_factory=ChannelLimits, description="Per-endpoint concurrency, rate and retries of webhooks."
    )
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
