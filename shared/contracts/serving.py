"""Serving-cluster messages: commands (serving.commands.v1) and acks/heartbeats (serving.acks.v1).

Both topics are keyed by cluster id so each cluster's messages stay in order.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from shared.contracts.directives import CAUSED_BY_EXAMPLE, CausedBy, DirectiveId, ModelName, OnStale
from shared.contracts.envelope import Event, Message
from shared.contracts.limits import MAX_MODELS
from shared.contracts.set_copies import SetReference

ClusterId = Annotated[
    str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", examples=["us-east"], description="Serving cluster id.")
]


class RestrictCommand(Event):
    """Deny these users these models: one directive revision for one cluster.

    By reference (`sets`): the sets of the models this cluster serves, each published once on serving.sets.v1 and
    read by the agent from there (one command per send, chunk 0 of 1). Inline (`model` and `users`, the earlier
    form, still accepted): one chunk of the revision; an agent stages chunks and replaces the directive's sets
    atomically once all have arrived.
    """

    type: Literal["RestrictCommand"] = "RestrictCommand"
    cluster_id: ClusterId
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Directive revision.", examples=[1])
    model: ModelName | None = Field(None, description="Inline form: the model of this chunk.", examples=["fable-5"])
    chunk: int = Field(..., ge=0, description="Index of this chunk across the revision.", examples=[0])
    chunks: int = Field(..., ge=1, description="Chunks in the revision for this cluster.", examples=[2])
    users: str | None = Field(
        None,
        description="Inline form: base64 portable roaring bitmap of user ids.",
        examples=["OjAAAAEAAAAAAAEAEAAAAAEAAgA="],
    )
    sets: list[SetReference] | None = Field(
        None,
        max_length=MAX_MODELS,
        description="By reference: per served model, where its set sits on serving.sets.v1 and its digests.",
    )
    expected_digest: str = Field(
        ..., description="Scope digest over the models this cluster serves.", examples=["9f86d081..."]
    )
    effective_from: AwareDatetime | None = Field(None, description="Start of the directive's window.", examples=[None])
    expires_at: AwareDatetime | None = Field(None, description="End of the directive's window.", examples=[None])
    on_stale: OnStale = Field(
        "keep",
        description="When the agent has not heard from the control plane within its "
        "staleness bound: keep the held sets, or deny the directive's "
        "models to every user (copied from the directive's scope).",
        examples=["keep"],
    )
    caused_by: CausedBy | None = Field(
        None,
        description="Who caused the revision, as its assessment records it (null: none recorded).",
        examples=[CAUSED_BY_EXAMPLE],
    )

    @model_validator(mode="after")
    def _one_form(self) -> RestrictCommand:
        if (self.sets is None) == (self.users is None):
            raise ValueError("a restrict command carries either `sets` (by reference) or `users` (inline), not both")
        if self.users is not None and self.model is None:
            raise ValueError("model: an inline restrict command names the model of its users")
        if self.sets is not None and (self.model is not None or self.chunks != 1):
            raise ValueError("sets: a restrict command by reference is one chunk of one and names no single model")
        models = [ref.model for ref in self.sets or ()]
        if len(set(models)) != len(models):
            raise ValueError("sets: each model is referenced once")
        for ref in self.sets or ():
            if len(ref.offsets) != len(ref.chunk_digests):
                counts = f"{len(ref.offsets)} offsets but {len(ref.chunk_digests)} digests"
                raise ValueError(f"sets: {ref.model} lists {counts}")
        return self


class DeltaCommand(Event):
    """Add and remove users of one directive revision's set for one model, in seq order."""

    type: Literal["DeltaCommand"] = "DeltaCommand"
    cluster_id: ClusterId
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Directive revision.", examples=[1])
    seq: int = Field(..., ge=1, description="Delta sequence number.", examples=[1])
    model: ModelName
    added: str = Field(
        ..., description="Base64 roaring bitmap of users to deny.", examples=["OjAAAAEAAAAAAAEAEAAAAAEAAgA="]
    )
    removed: str = Field(..., description="Base64 roaring bitmap of users to serve again.", examples=["OjAAAAAAAAA="])
    caused_by: CausedBy | None = Field(
        None,
        description="What caused the delta, as impact's delta records it (null: not known).",
        examples=[CAUSED_BY_EXAMPLE],
    )


class LiftCommand(Event):
    """Drop a directive's restrictions; pairs other directives cover stay denied."""

    type: Literal["LiftCommand"] = "LiftCommand"
    cluster_id: ClusterId
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Revision lifted.", examples=[1])
    caused_by: CausedBy | None = Field(
        None,
        description="Who caused the lift, as its assessment records it (null: none recorded).",
        examples=[CAUSED_BY_EXAMPLE],
    )


class ClusterSynced(Event):
    """Every restriction in force for this cluster was sent before this message (same partition, in order).

    Enforcement sends it in answer to a heartbeat saying ready=false, after the broker acknowledged the
    commands that heartbeat caused. An agent new to the control plane answers checks only once it has
    consumed one for its own cluster.
    """

    type: Literal["ClusterSynced"] = "ClusterSynced"
    cluster_id: ClusterId
    heartbeat_event_id: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="event_id of the not-ready heartbeat this answers.",
        examples=["5f0c1b0e9d2a4c7e8b1f2a3c4d5e6f70"],
    )


ClusterCommand = Annotated[RestrictCommand | DeltaCommand | LiftCommand | ClusterSynced, Field(discriminator="type")]


# The one agent of a cluster that runs no replicas (and every agent before replicas existed) names none; it is
# left off the wire then, so such an agent's records read the same to readers that predate replicas.
DEFAULT_REPLICA = ""
ReplicaId = Annotated[
    str,
    Field(
        pattern=r"^([a-z0-9][a-z0-9-]{0,62})?$",
        examples=["agent-us-east-0"],
        description="Which replica of the cluster's agent speaks (absent or empty: the cluster's single agent).",
        exclude_if=lambda replica: replica == DEFAULT_REPLICA,
    ),
]


class CommandApplied(Event):
    """An agent applied a directive revision (restrict or lift) and holds this digest for it."""

    type: Literal["CommandApplied"] = "CommandApplied"
    cluster_id: ClusterId
    replica_id: ReplicaId = DEFAULT_REPLICA
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Revision applied.", examples=[1])
    action: Literal["restrict", "lift", "delta"] = Field(..., description="What was applied.", examples=["restrict"])
    digest: str = Field(
        ...,
        description="Scope digest of what the agent now holds for the directive (digest of empty sets after a lift).",
        examples=["9f86d081..."],
    )
    seq: int = Field(0, ge=0, description="Last delta seq applied (0 if none).", examples=[0])


# A CommandFailed whose reason starts so is a refusal: the command itself was not acceptable (unsigned, forged,
# altered, signed by an unknown or retired key, replayed, expired), not a failure to apply a valid one.
REFUSED = "refused: "


class CommandFailed(Event):
    """An agent could not apply a command, or refused it (reason `refused: ...`); its state is unchanged."""

    type: Literal["CommandFailed"] = "CommandFailed"
    cluster_id: ClusterId
    replica_id: ReplicaId = DEFAULT_REPLICA
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Revision concerned.", examples=[1])
    reason: str = Field(
        ...,
        description="Why it was rejected; `refused: <why>` when the command was refused (bad signature, replayed, "
        "expired) rather than failed.",
        examples=["corrupt bitmap in chunk 3", "refused: bad signature (key id 'enforcement-1')"],
    )


class HeldDirective(Message):
    """What an agent holds for one directive."""

    revision: int = Field(..., ge=1, description="Revision held.", examples=[1])
    digest: str = Field(..., description="Scope digest held.", examples=["9f86d081..."])


class AgentHeartbeat(Event):
    """An agent is alive: its cluster, models served and what it holds."""

    type: Literal["AgentHeartbeat"] = "AgentHeartbeat"
    cluster_id: ClusterId
    replica_id: ReplicaId = DEFAULT_REPLICA
    region: str = Field("", max_length=64, description="Region of the cluster.", examples=["us-east-1"])
    models: list[ModelName] = Field(..., description="Models this cluster serves.", examples=[["fable-5"]])
    held: dict[str, HeldDirective] = Field(default_factory=dict, description="Directive id -> what is held.")
    offsets: dict[int, int] = Field(
        default_factory=dict,
        description="Last applied offsets: serving.commands.v1 "
        "partition -> the next offset; what is held reflects every command before it.",
        examples=[{4: 1207}],
    )
    ready: bool = Field(
        ...,
        description="Whether the agent answers checks: caught up with its commands and synced "
        "with the control plane (false until then; enforcement answers a "
        "false with ClusterSynced).",
        examples=[True],
    )


AckEvent = Annotated[CommandApplied | CommandFailed | AgentHeartbeat, Field(discriminator="type")]
