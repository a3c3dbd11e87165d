"""Enforcement status (topic compliance.enforcement.v1, key = directive id)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from shared.contracts.directives import DirectiveId, ModelName
from shared.contracts.envelope import Event, Message

# drifted: a heartbeat showed the cluster no longer holds what it acknowledged (re-sent at once).
ClusterState = Literal["pending", "applied", "overdue", "drifted", "failed"]


class ClusterProgress(Message):
    """Where one cluster stands for one directive revision."""

    state: ClusterState = Field(..., description="pending, applied, overdue, drifted or failed.", examples=["applied"])
    sent_at: AwareDatetime | None = Field(None, description="When commands were last sent.", examples=[None])
    acked_at: AwareDatetime | None = Field(None, description="When the matching ack arrived.", examples=[None])
    attempts: int = Field(0, ge=0, description="How many times commands were sent.", examples=[1])
    digest: str | None = Field(None, description="Digest the cluster acknowledged.", examples=[None])
    reason: str | None = Field(None, description="Why it failed or is overdue.", examples=[None])
    expected_digest: str | None = Field(
        None,
        description="Digest this cluster must acknowledge (scope digest over the models it serves).",
        examples=[None],
    )
    models: list[ModelName] = Field(
        default_factory=list,
        description="The directive's models this cluster serves (its share of the scope); empty for a lift, or "
        "when not stated (then read as every model of the directive).",
        examples=[["fable-5"]],
    )
    replicas: dict[str, str] = Field(
        default_factory=dict,
        description="Replica id of the cluster's agent (empty: its single agent) -> the digest that replica last "
        "acknowledged or showed holding for this revision; the cluster is applied once every live replica "
        "holds the expected digest. Left off the wire for a cluster with a single agent.",
        examples=[{"agent-us-east-0": "9f86d081...", "agent-us-east-1": "9f86d081..."}],
        exclude_if=lambda replicas: set(replicas) <= {""},
    )


class EnforcementProgressed(Event):
    """A directive revision's enforcement changed state on at least one cluster."""

    type: Literal["EnforcementProgressed"] = "EnforcementProgressed"
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Directive revision.", examples=[1])
    action: Literal["restrict", "lift"] = Field(..., description="What is being enforced.", examples=["restrict"])
    expected_digest: str = Field(..., description="Digest every cluster must acknowledge.", examples=["9f86d081..."])
    clusters: dict[str, ClusterProgress] = Field(..., description="Cluster id -> progress.")
    deadline: AwareDatetime = Field(
        ..., description="When every cluster must have acknowledged.", examples=["2026-11-27T09:05:00Z"]
    )


class DirectiveEnforced(Event):
    """Every cluster that must act acknowledged the revision with the expected digest."""

    type: Literal["DirectiveEnforced"] = "DirectiveEnforced"
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Directive revision.", examples=[1])
    action: Literal["restrict", "lift"] = Field(..., description="What was enforced.", examples=["restrict"])
    digest: str = Field(..., description="The digest every cluster holds.", examples=["9f86d081..."])
    clusters: dict[str, ClusterProgress] = Field(..., description="Cluster id -> final progress.")
    ack_latency_s: dict[str, float] = Field(
        ..., description="Cluster id -> seconds from first send to ack.", examples=[{"us-east": 0.21}]
    )


class EnforcementOverdue(Event):
    """Clusters missed the directive's deadline; commands are being re-sent."""

    type: Literal["EnforcementOverdue"] = "EnforcementOverdue"
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Directive revision.", examples=[1])
    action: Literal["restrict", "lift"] = Field(..., description="What is overdue.", examples=["restrict"])
    overdue_clusters: list[str] = Field(
        ..., min_length=1, description="Clusters without an ack.", examples=[["ap-south"]]
    )


EnforcementEvent = Annotated[
    EnforcementProgressed | DirectiveEnforced | EnforcementOverdue, Field(discriminator="type")
]
