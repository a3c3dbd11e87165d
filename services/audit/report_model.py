"""The directive report an auditor takes away: its JSON shape, published as a JSON Schema (docs/schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DiscrepancyKind = Literal[
    "missing_ack",
    "digest_mismatch",
    "enforced_after_deadline",
    "missing_notice",
    "failed_notice",
    "emergency_issue",
    "reproduction_mismatch",
    "command_failed",
    "drift_healed",
    "forged_record",
    "cause_mismatch",
]


class Part(BaseModel):
    """Base of every part of the report: unknown fields refused."""

    model_config = ConfigDict(extra="forbid")


class Revision(Part):
    """One revision of the directive as issued, with who proposed and approved it where recorded."""

    revision: int
    issued_at: datetime
    title: str
    authority: str = ""
    models: list[str]
    selector: dict
    unknown_attribute: str
    enforcement_deadline_s: int
    proposed_by: str | None = None
    approved_by: str | None = None
    emergency: bool = False


class Lift(Part):
    """The directive was lifted."""

    revision: int
    lifted_at: datetime
    reason: str = ""
    proposed_by: str | None = None
    approved_by: str | None = None
    emergency: bool = False


class Assessment(Part):
    """Who the revision affects, as impact computed it, and whether the registry at its offsets gives it again."""

    revision: int
    action: str
    assessed_at: datetime
    affected_users: int
    affected_by_model: dict[str, int]
    losing_by_model: dict[str, int] | None = Field(
        None, description="Per model, the covered users entitled to it: those who lose (regain) it and are told."
    )
    by_country: dict[str, int]
    by_account_type: dict[str, int]
    digest: str
    registry_offsets: dict[str, int]
    reproduced_digest: str | None = Field(None, description="Digest recomputed from the registry (null: not run).")


class ClusterEnforcement(Part):
    """One cluster's enforcement of one revision and action."""

    cluster: str
    revision: int
    action: str
    state: str
    sent_at: datetime | None = None
    acked_at: datetime | None = None
    time_to_enforce_s: float | None = Field(None, description="Seconds from the directive's issue to the ack.")
    deadline: datetime | None = None
    digest: str | None = None
    expected_digest: str | None = None


class CommandGroup(Part):
    """Commands of one revision and action (restrict, lift or registry delta) that name the same cause."""

    revision: int
    action: str
    clusters: list[str]
    first_at: datetime
    caused_by: str | None = Field(None, description="Who the commands say caused them (null: they name no one).")


class Notices(Part):
    """Notices of one revision and action."""

    revision: int
    action: str
    requested: int
    delivered: int
    failed: int
    first_at: datetime | None = None
    last_at: datetime | None = None


class Discrepancy(Part):
    """One thing that does not add up, named so it can be followed up one by one."""

    kind: DiscrepancyKind
    revision: int | None = None
    cluster: str | None = None
    user: int | None = None
    at: datetime | None = None
    detail: str


class TimelineLine(Part):
    """One line of the directive's timeline."""

    at: datetime
    topic: str
    event: str
    summary: str
    forged: bool = Field(False, description="A record that failed its signature check: shown, never used.")


class ForgedRecord(Part):
    """A record on a signed topic that is unsigned, altered, or signed by an unknown or retired key."""

    topic: str
    partition: int
    offset: int
    at: datetime
    event: str
    reason: str


class CheckpointVerification(Part):
    """The ledger checked against the latest signed tree head (when a ledger and heads were given)."""

    chain_intact: bool
    entries: int
    root: str
    signed_head_size: int | None = None
    signed_head_key: str | None = None
    signed_head_at: datetime | None = None
    problems: list[str] = Field(default_factory=list)


class DirectiveReport(Part):
    """Everything the topics say about one directive, in one document."""

    directive_id: str
    generated_at: datetime
    window_from: datetime | None = None
    window_to: datetime | None = None
    events: int = Field(..., description="Events of the directive read in the window.")
    revisions: list[Revision]
    lifts: list[Lift]
    assessments: list[Assessment]
    clusters: list[ClusterEnforcement]
    commands: list[CommandGroup] = Field(
        default_factory=list, description="The commands sent, grouped by revision, action and the cause they name."
    )
    notices: list[Notices]
    discrepancies: list[Discrepancy]
    discrepancies_total: int = Field(..., description="All discrepancies (the list stops at a limit).")
    timeline: list[TimelineLine]
    forgeries: list[ForgedRecord] = Field(
        default_factory=list, description="Records of the directive that failed signature verification."
    )
    signed_topics: list[str] = Field(
        default_factory=list, description="Topics whose records were checked against their key sets."
    )
    checkpoint: CheckpointVerification | None = None


def report_schema() -> dict:
    """The JSON Schema of the report (docs/schemas/audit-report.json)."""
    schema = DirectiveReport.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://countermand.example/schemas/audit-report.json"
    return schema


if __name__ == "__main__":  # python -m services.audit.report_model > docs/schemas/audit-report.json
    import json

    print(json.dumps(report_schema(), indent=2, sort_keys=True))
