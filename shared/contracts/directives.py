"""Directive messages (topic compliance.directives.v1) and the population selector grammar."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, model_validator

from shared.contracts.countries import CountryCode
from shared.contracts.envelope import Event, Message
from shared.contracts.limits import (
    AUTHORITY_CHARS,
    DIRECTIVE_ID_CHARS,
    IDEMPOTENCY_KEY_CHARS,
    MAX_ACCOUNT_TYPES,
    MAX_APPROVERS,
    MAX_COUNTRIES,
    MAX_MODELS,
    MAX_ORGANISATIONS,
    MODEL_NAME_CHARS,
    ORGANISATION_CHARS,
    REASON_CHARS,
    SELECTOR_CLAUSES,
    SUBJECT_CHARS,
    TITLE_CHARS,
    check_list,
    check_selector,
)

AccountType = Literal["consumer", "enterprise_member", "employee"]
OnStale = Literal["keep", "deny_models"]
DirectiveId = Annotated[
    str,
    Field(
        max_length=DIRECTIVE_ID_CHARS,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        examples=["EXP-2026-001"],
        description="Stable id of the directive, chosen by the issuing team.",
    ),
]
ModelName = Annotated[
    str,
    Field(
        max_length=MODEL_NAME_CHARS,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        examples=["fable-5"],
        description="Name of a served model.",
    ),
]
OrganisationId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=ORGANISATION_CHARS,
        examples=["org-00042"],
        description="Enterprise organisation id, as in the user registry.",
    ),
]
IdempotencyKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=IDEMPOTENCY_KEY_CHARS,
        pattern=r"^[!-~]+$",
        examples=["0b7e3f0c-8d4c-4b8e-9d43-2f3c7c1d2a55"],
        description="A client's Idempotency-Key for one request (visible ASCII).",
    ),
]
Subject = Annotated[
    str,
    Field(
        min_length=1,
        max_length=SUBJECT_CHARS,
        examples=["alice@example.com"],
        description="An authenticated caller: the `sub` of their token (or an API key's subject).",
    ),
]
PROPOSAL_ID_PATTERN = r"^p-[0-9a-f]{12}$"
ProposalId = Annotated[
    str,
    Field(
        pattern=PROPOSAL_ID_PATTERN,
        examples=["p-3f9a0c1d2e4b"],
        description="Id of a proposal (a directive, an amendment or a lift awaiting approval).",
    ),
]
Reason = Annotated[str, Field(max_length=REASON_CHARS, description="Why, in words.", examples=["Scope too wide"])]


def _bounded(limit: int, name: str) -> BeforeValidator:
    """Refuse a list longer than the limit before its items are validated (one problem, not one per item)."""
    return BeforeValidator(lambda items: check_list(items, limit, name))


class Everyone(Message):
    """Matches every user."""

    kind: Literal["everyone"] = "everyone"


class ForeignNational(Message):
    """Matches users holding none of the home country's nationality (unknown if none recorded)."""

    kind: Literal["foreign_national"] = "foreign_national"
    home_country: CountryCode = Field(..., description="The home country.", examples=["US"])


class Nationality(Message):
    """Matches users holding at least one of the listed nationalities."""

    kind: Literal["nationality"] = "nationality"
    any_of: Annotated[list[CountryCode], _bounded(MAX_COUNTRIES, "MAX_COUNTRIES")] = Field(
        ..., min_length=1, max_length=MAX_COUNTRIES, description="Nationalities.", examples=[["CN", "RU"]]
    )


class Residence(Message):
    """Matches users whose country of residence is one of the listed ones."""

    kind: Literal["residence"] = "residence"
    any_of: Annotated[list[CountryCode], _bounded(MAX_COUNTRIES, "MAX_COUNTRIES")] = Field(
        ..., min_length=1, max_length=MAX_COUNTRIES, description="Countries of residence.", examples=[["US"]]
    )


class AccountTypeIs(Message):
    """Matches users whose account type is one of the listed ones."""

    kind: Literal["account_type"] = "account_type"
    any_of: Annotated[list[AccountType], _bounded(MAX_ACCOUNT_TYPES, "MAX_ACCOUNT_TYPES")] = Field(
        ..., min_length=1, max_length=MAX_ACCOUNT_TYPES, description="Account types.", examples=[["employee"]]
    )


class Organisation(Message):
    """Matches users belonging to one of the listed organisations."""

    kind: Literal["organisation"] = "organisation"
    any_of: Annotated[list[OrganisationId], _bounded(MAX_ORGANISATIONS, "MAX_ORGANISATIONS")] = Field(
        ..., min_length=1, max_length=MAX_ORGANISATIONS, description="Organisation ids.", examples=[["org-00042"]]
    )


class Entitlement(Message):
    """Matches users entitled to at least one of the listed models."""

    kind: Literal["entitlement"] = "entitlement"
    any_of: Annotated[list[ModelName], _bounded(MAX_MODELS, "MAX_MODELS")] = Field(
        ..., min_length=1, max_length=MAX_MODELS, description="Models.", examples=[["fable-5"]]
    )


class AllOf(Message):
    """Matches users every clause matches."""

    kind: Literal["all_of"] = "all_of"
    of: Annotated[list[Clause], _bounded(SELECTOR_CLAUSES, "SELECTOR_CLAUSES")] = Field(
        ..., min_length=1, max_length=SELECTOR_CLAUSES, description="Clauses."
    )


class AnyOf(Message):
    """Matches users at least one clause matches."""

    kind: Literal["any_of"] = "any_of"
    of: Annotated[list[Clause], _bounded(SELECTOR_CLAUSES, "SELECTOR_CLAUSES")] = Field(
        ..., min_length=1, max_length=SELECTOR_CLAUSES, description="Clauses."
    )


class Not(Message):
    """Matches users the clause does not match."""

    kind: Literal["not"] = "not"
    of: Clause = Field(..., description="The negated clause.")


Clause = Annotated[
    Everyone
    | ForeignNational
    | Nationality
    | Residence
    | AccountTypeIs
    | Organisation
    | Entitlement
    | AllOf
    | AnyOf
    | Not,
    Field(discriminator="kind"),
]
# A whole selector: its depth, clause and value counts are checked on the raw data (limits.check_selector)
# before pydantic descends into it, so no nesting can exhaust a reader's recursion.
Selector = Annotated[Clause, BeforeValidator(check_selector)]
AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()

MISSION_SELECTOR_EXAMPLE = {"kind": "foreign_national", "home_country": "US"}


class DirectiveScope(Message):
    """What a directive covers: models, population, unknown-attribute rule and time window."""

    models: Annotated[list[ModelName], _bounded(MAX_MODELS, "MAX_MODELS")] = Field(
        ...,
        min_length=1,
        max_length=MAX_MODELS,
        description="Models the directive stops serving.",
        examples=[["fable-5", "mythos-5"]],
    )
    selector: Selector = Field(..., description="Population the directive covers.", examples=[MISSION_SELECTOR_EXAMPLE])
    unknown_attribute: Literal["restrict", "allow"] = Field(
        "restrict",
        description="What happens to a user whose attribute needed by the selector is unknown "
        "(restrict fails closed, the default).",
        examples=["restrict"],
    )
    effective_from: AwareDatetime | None = Field(
        None, description="When the directive starts to apply (now if absent).", examples=[None]
    )
    expires_at: AwareDatetime | None = Field(
        None, description="When the directive stops applying (never if absent).", examples=[None]
    )
    enforcement_deadline_s: int = Field(
        300,
        ge=1,
        le=7 * 24 * 3600,
        description="Seconds after issue by which every cluster must have acknowledged.",
        examples=[300],
    )
    on_stale: OnStale = Field(
        "keep",
        description="What a serving cluster's agent does when it has not heard from the control plane within "
        "its staleness bound: keep what it holds (the default) or deny the directive's models to "
        "every user until it hears again.",
        examples=["keep"],
    )

    @model_validator(mode="after")
    def _window(self) -> DirectiveScope:
        if self.effective_from and self.expires_at and self.expires_at <= self.effective_from:
            raise ValueError("expires_at must be later than effective_from")
        if len(set(self.models)) != len(self.models):
            raise ValueError("models must not repeat")
        return self


Title = Annotated[
    str,
    Field(
        min_length=1, max_length=TITLE_CHARS, description="Human title.", examples=["Export control: frontier models"]
    ),
]
Authority = Annotated[
    str, Field(max_length=AUTHORITY_CHARS, description="Issuing authority or legal basis.", examples=["Order 2026/17"])
]
LiftReason = Annotated[
    str, Field(max_length=REASON_CHARS, description="Why it was lifted.", examples=["Order revoked"])
]


class DirectiveRequest(Message):
    """A directive as a person submits it (intake issues or amends it, impact dry-runs it); no revision yet."""

    directive_id: DirectiveId
    title: Title
    authority: Authority = ""
    scope: DirectiveScope = Field(..., description="What the directive covers.")


class Accountable(Message):
    """Who caused a directive event: its proposer and approvers (four eyes), or an emergency issuer acting alone.

    Every field is optional, so directive events published before four eyes existed still parse."""

    proposal_id: ProposalId | None = Field(
        None,
        description="The proposal this event enacts (None: an emergency action or an older event).",
        examples=["p-3f9a0c1d2e4b"],
    )
    proposed_by: Subject | None = Field(
        None, description="Who proposed it (or, in an emergency, who acted alone).", examples=["alice@example.com"]
    )
    proposed_at: AwareDatetime | None = Field(
        None, description="When it was proposed.", examples=["2026-11-27T08:55:00Z"]
    )
    approved_by: list[Subject] = Field(
        default_factory=list,
        max_length=MAX_APPROVERS,
        description="Who approved it, in order; none other than the proposer.",
        examples=[["bob@example.com"]],
    )
    emergency: bool = Field(
        False, description="True when the emergency role acted alone, without an approval.", examples=[False]
    )
    emergency_reason: Reason = Field(
        "", description="Why the emergency role acted alone (required when emergency).", examples=[""]
    )

    @model_validator(mode="after")
    def _emergency_reason(self) -> Accountable:
        if self.emergency and not self.emergency_reason.strip():
            raise ValueError("an emergency action needs an emergency_reason")
        return self


MAX_REGISTRY_PRODUCERS = 4  # producers named in one registry-driven delta's cause (the first in name order)


class CausedBy(Accountable):
    """Who caused an assessment or a command: copied from its directive event (proposer, approvers, emergency), or
    for a registry-driven delta the producers of the registry records that changed. Signed with the message."""

    registry_producers: list[Subject] = Field(
        default_factory=list,
        max_length=MAX_REGISTRY_PRODUCERS,
        description="For a registry-driven delta: the producers of the user records whose change caused it "
        "(empty otherwise, and after a restart's re-evaluation, where no record is known).",
        examples=[["identity-sync"]],
    )

    @classmethod
    def of(cls, event: Accountable) -> CausedBy | None:
        """The cause a directive event records; None when it records none (an event from before four eyes)."""
        fields = {name: getattr(event, name) for name in Accountable.model_fields}
        cause = cls(**fields)
        return cause if cause.proposed_by or cause.approved_by or cause.proposal_id else None

    @classmethod
    def registry(cls, producers: Iterable[str]) -> CausedBy | None:
        """The cause of a registry-driven delta: the records' producers (None when none is known)."""
        names = sorted({p[:SUBJECT_CHARS] for p in producers if p})[:MAX_REGISTRY_PRODUCERS]
        return cls(registry_producers=names) if names else None


CAUSED_BY_EXAMPLE = {
    "proposal_id": "p-3f9a0c1d2e4b",
    "proposed_by": "alice@example.com",
    "proposed_at": "2026-11-27T08:55:00Z",
    "approved_by": ["bob@example.com"],
    "emergency": False,
    "emergency_reason": "",
    "registry_producers": [],
}


class DirectiveIssued(Event, Accountable):
    """A directive was issued or amended; a later revision replaces the scope."""

    type: Literal["DirectiveIssued"] = "DirectiveIssued"
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Revision; an older one arriving late is ignored.", examples=[1])
    title: Title
    authority: Authority = ""
    scope: DirectiveScope = Field(..., description="What the directive covers.")
    idempotency_key: IdempotencyKey | None = Field(
        None,
        description="The Idempotency-Key of the request that issued this revision, if any (a repeat is "
        "answered with this event).",
        examples=[None],
    )
    request_digest: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of that request, to refuse the key's reuse for a different one.",
        examples=[None],
    )


class DirectiveLifted(Event, Accountable):
    """A directive was lifted: access it took comes back unless another directive covers it."""

    type: Literal["DirectiveLifted"] = "DirectiveLifted"
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Revision of the directive being lifted.", examples=[1])
    reason: LiftReason = ""
    idempotency_key: IdempotencyKey | None = Field(
        None,
        description="The Idempotency-Key of the request that lifted it, if any (a repeat is answered with this event).",
        examples=[None],
    )
    request_digest: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of that request, to refuse the key's reuse for a different one.",
        examples=[None],
    )


class DirectiveProposed(Event):
    """A directive, an amendment or a lift was proposed; it takes effect once approved by someone else."""

    type: Literal["DirectiveProposed"] = "DirectiveProposed"
    proposal_id: ProposalId
    directive_id: DirectiveId
    action: Literal["issue", "lift"] = Field(
        ..., description="Issue (or amend) the directive, or lift it.", examples=["issue"]
    )
    base_revision: int = Field(
        ...,
        ge=0,
        description="The directive's revision when proposed (0: new); approval is refused once it moved.",
        examples=[0],
    )
    title: Title | None = Field(None, description="Title of the directive (action issue).", examples=["Export control"])
    authority: Authority = ""
    scope: DirectiveScope | None = Field(None, description="What the directive would cover (action issue).")
    reason: LiftReason = ""
    proposed_by: Subject
    expires_at: AwareDatetime = Field(
        ..., description="When the proposal lapses unless approved.", examples=["2026-11-28T08:55:00Z"]
    )
    approvals_needed: int = Field(
        ...,
        ge=1,
        le=MAX_APPROVERS,
        description="Approvals by distinct subjects other than the proposer it takes.",
        examples=[1],
    )
    idempotency_key: IdempotencyKey | None = Field(
        None, description="The Idempotency-Key of the request that proposed it, if any.", examples=[None]
    )
    request_digest: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of that request, to refuse the key's reuse.",
        examples=[None],
    )

    @model_validator(mode="after")
    def _complete(self) -> DirectiveProposed:
        if self.action == "issue" and (self.title is None or self.scope is None):
            raise ValueError("a proposal to issue names the title and the scope")
        return self


class ProposalApproved(Event):
    """Someone other than the proposer approved a proposal (the last approval is the enacting directive event)."""

    type: Literal["ProposalApproved"] = "ProposalApproved"
    proposal_id: ProposalId
    directive_id: DirectiveId
    approved_by: Subject
    reason: Reason = ""
    idempotency_key: IdempotencyKey | None = Field(
        None, description="The Idempotency-Key of the approving request, if any.", examples=[None]
    )
    request_digest: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of that request, to refuse the key's reuse.",
        examples=[None],
    )


class ProposalRejected(Event):
    """A proposal was rejected (or withdrawn by its proposer); it can no longer be approved."""

    type: Literal["ProposalRejected"] = "ProposalRejected"
    proposal_id: ProposalId
    directive_id: DirectiveId
    rejected_by: Subject
    reason: Reason = Field(..., min_length=1, description="Why it was rejected.", examples=["Scope too wide"])
    idempotency_key: IdempotencyKey | None = Field(
        None, description="The Idempotency-Key of the rejecting request, if any.", examples=[None]
    )
    request_digest: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of that request, to refuse the key's reuse.",
        examples=[None],
    )


ProposalEvent = DirectiveProposed | ProposalApproved | ProposalRejected
# Four eyes at work: every consumer of the directive topic but intake ignores these (nothing is in force yet).
PROPOSAL_EVENTS: tuple[type, ...] = (DirectiveProposed, ProposalApproved, ProposalRejected)
DirectiveEvent = Annotated[
    DirectiveIssued | DirectiveLifted | DirectiveProposed | ProposalApproved | ProposalRejected,
    Field(discriminator="type"),
]
