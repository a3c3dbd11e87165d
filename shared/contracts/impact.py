"""Impact messages (topic compliance.impact.v1, key = directive id): assessments, their affected sets in
chunks, and deltas. Chunk numbering and amendment parts: shared/README.md (Assessments on the wire).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

from pydantic import Field

from shared.contracts.directives import CAUSED_BY_EXAMPLE, CausedBy, DirectiveId, DirectiveScope, ModelName
from shared.contracts.envelope import Event

Action = Literal["restrict", "lift"]


class AssessmentKey(NamedTuple):
    """One directive revision and action: the unit an assessment is chunked in, rolled out and noticed for."""

    directive_id: str
    revision: int
    action: Action

    @classmethod
    def of(cls, message: Any) -> AssessmentKey:
        """The key of a message carrying directive_id, revision and action (a delta's action is restrict)."""
        return cls(message.directive_id, message.revision, getattr(message, "action", "restrict"))


Part = Literal["whole", "added", "removed"]


class ImpactAssessed(Event):
    """The exact affected (user, model) set of a directive revision was computed."""

    type: Literal["ImpactAssessed"] = "ImpactAssessed"
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Directive revision assessed.", examples=[1])
    action: Action = Field(
        ..., description="restrict: users lose the models; lift: these users get them back.", examples=["restrict"]
    )
    scope: DirectiveScope = Field(..., description="Scope of the revision assessed.")
    affected_by_model: dict[str, int] = Field(
        ...,
        description="Users affected per model (for a lift: restored, net of other active directives).",
        examples=[{"fable-5": 61234, "mythos-5": 61234}],
    )
    affected_users: int = Field(..., ge=0, description="Distinct users affected.", examples=[61234])
    losing_by_model: dict[str, int] | None = Field(
        None,
        description="Per model, the covered users who are also entitled to it at evaluation time: those who "
        "actually lose it (for a lift: regain it). Null in assessments from before this field.",
        examples=[{"fable-5": 20811, "mythos-5": 9402}],
    )
    by_country: dict[str, int] = Field(
        default_factory=dict, description="Affected users by residence (?? unknown).", examples=[{"DE": 1200, "??": 30}]
    )
    by_account_type: dict[str, int] = Field(
        default_factory=dict,
        description="Affected users by account type.",
        examples=[{"consumer": 50000, "employee": 40}],
    )
    unknown_only: int = Field(
        0, ge=0, description="Users affected only because an attribute is unknown.", examples=[2100]
    )
    model_digests: dict[str, str] = Field(
        ...,
        description="Per-model set digest: SHA-256 of each 2^16-id range's ids, combined per 256 ranges, then "
        "over those groups (shared/README.md, Digests).",
        examples=[{"fable-5": "ab12..."}],
    )
    digest: str = Field(..., description="Scope digest over the model digests.", examples=["9f86d081..."])
    registry_offsets: dict[int, int] = Field(
        ...,
        description="identity.users.v1 partition -> next offset the user view reflected.",
        examples=[{0: 100000}],
    )
    chunks: int = Field(
        ..., ge=1, description='Number of AffectedSetChunk messages of part "whole" that follow.', examples=[2]
    )
    amended_from: int | None = Field(
        None,
        ge=1,
        description="For an amendment: the revision it replaces (the difference follows as "
        '"added"/"removed" chunks); null for a first assessment or a lift.',
        examples=[1],
    )
    added_by_model: dict[str, int] | None = Field(
        None,
        description="For an amendment: users newly affected per model compared with the set amended_from "
        "held when this revision arrived (its assessment plus later deltas).",
        examples=[{"fable-5": 120, "mythos-5": 0}],
    )
    removed_by_model: dict[str, int] | None = Field(
        None,
        description="For an amendment: users no longer affected by this directive per model compared with "
        "amended_from (other active directives may still cover them).",
        examples=[{"fable-5": 30, "mythos-5": 61234}],
    )
    diff_chunks: int = Field(
        0,
        ge=0,
        description='Number of "added"/"removed" chunks after the whole ones (0 unless an amendment).',
        examples=[2],
    )
    caused_by: CausedBy | None = Field(
        None,
        description="Who caused the revision or lift assessed, copied from its directive event (null: none recorded).",
        examples=[CAUSED_BY_EXAMPLE],
    )


class AffectedSetChunk(Event):
    """One chunk of an assessment's affected set for one model."""

    type: Literal["AffectedSetChunk"] = "AffectedSetChunk"
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Directive revision.", examples=[1])
    action: Action = Field(..., description="Action of the assessment.", examples=["restrict"])
    model: ModelName
    chunk: int = Field(..., ge=0, description="Index of this chunk across the assessment.", examples=[0])
    chunks: int = Field(
        ...,
        ge=1,
        description='Chunks in the assessment: the whole chunks for part "whole"; whole '
        'plus diff chunks for "added"/"removed".',
        examples=[2],
    )
    users: str = Field(
        ..., description="Base64 portable roaring bitmap of user ids.", examples=["OjAAAAEAAAAAAAEAEAAAAAEAAgA="]
    )
    part: Part = Field(
        "whole",
        description="whole: the revision's affected set; added/removed: an amendment's "
        "difference from the revision it replaces.",
        examples=["whole"],
    )


class AffectedSetDelta(Event):
    """A registry change altered an active directive's affected set."""

    type: Literal["AffectedSetDelta"] = "AffectedSetDelta"
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Directive revision the delta applies to.", examples=[1])
    seq: int = Field(..., ge=1, description="Delta sequence number per directive revision, from 1.", examples=[1])
    model: ModelName
    added: str = Field(
        ..., description="Base64 roaring bitmap of users newly affected.", examples=["OjAAAAEAAAAAAAEAEAAAAAEAAgA="]
    )
    removed: str = Field(
        ..., description="Base64 roaring bitmap of users no longer affected.", examples=["OjAAAAAAAAA="]
    )
    model_digest: str = Field(
        ..., description="Set digest for the model after the delta (per-range, as model_digests).", examples=["ab12..."]
    )
    caused_by: CausedBy | None = Field(
        None,
        description="What caused the delta: the producers of the registry records that changed (null: not "
        "known, as after a restart's re-evaluation).",
        examples=[CAUSED_BY_EXAMPLE],
    )


ImpactEvent = Annotated[ImpactAssessed | AffectedSetChunk | AffectedSetDelta, Field(discriminator="type")]
