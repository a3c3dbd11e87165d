"""Directive messages (topic compliance.directives.v1) and the population selector grammar."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import AwareDatetime, Field, model_validator

from shared.contracts.countries import CountryCode
from shared.contracts.envelope import Event, Message

AccountType = Literal["consumer", "enterprise_member", "employee"]
OnStale = Literal["keep", "deny_models"]
DirectiveId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", examples=["EXP-2026-001"],
               description="Stable id of the directive, chosen by the issuing team.")
]
ModelName = Annotated[
    str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", examples=["fable-5"],
               description="Name of a served model.")
]


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
    any_of: list[CountryCode] = Field(..., min_length=1, description="Nationalities.", examples=[["CN", "RU"]])


class Residence(Message):
    """Matches users whose country of residence is one of the listed ones."""

    kind: Literal["residence"] = "residence"
    any_of: list[CountryCode] = Field(..., min_length=1, description="Countries of residence.", examples=[["US"]])


class AccountTypeIs(Message):
    """Matches users whose account type is one of the listed ones."""

    kind: Literal["account_type"] = "account_type"
    any_of: list[AccountType] = Field(..., min_length=1, description="Account types.", examples=[["employee"]])


class Organisation(Message):
    """Matches users belonging to one of the listed organisations."""

    kind: Literal["organisation"] = "organisation"
    any_of: list[str] = Field(..., min_length=1, description="Organisation ids.", examples=[["org-00042"]])


class Entitlement(Message):
    """Matches users entitled to at least one of the listed models."""

    kind: Literal["entitlement"] = "entitlement"
    any_of: list[ModelName] = Field(..., min_length=1, description="Models.", examples=[["fable-5"]])


class AllOf(Message):
    """Matches users every clause matches."""

    kind: Literal["all_of"] = "all_of"
    of: list[Selector] = Field(..., min_length=1, description="Clauses.")


class AnyOf(Message):
    """Matches users at least one clause matches."""

    kind: Literal["any_of"] = "any_of"
    of: list[Selector] = Field(..., min_length=1, description="Clauses.")


class Not(Message):
    """Matches users the clause does not match."""

    kind: Literal["not"] = "not"
    of: Selector = Field(..., description="The negated clause.")


Selector = Annotated[
    Union[Everyone, ForeignNational, Nationality, Residence, AccountTypeIs, Organisation,
          Entitlement, AllOf, AnyOf, Not],
    Field(discriminator="kind"),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()

MISSION_SELECTOR_EXAMPLE = {"kind": "foreign_national", "home_country": "US"}


class DirectiveScope(Message):
    """What a directive covers: models, population, unknown-attribute rule and time window."""

    models: list[ModelName] = Field(
        ..., min_length=1, description="Models the directive stops serving.", examples=[["fable-5", "mythos-5"]]
    )
    selector: Selector = Field(
        ..., description="Population the directive covers.", examples=[MISSION_SELECTOR_EXAMPLE]
    )
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
        300, ge=1, le=7 * 24 * 3600,
        description="Seconds after issue by which every cluster must have acknowledged.", examples=[300],
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


Title = Annotated[str, Field(min_length=1, max_length=500, description="Human title.",
                             examples=["Export control: frontier models"])]
Authority = Annotated[str, Field(max_length=500, description="Issuing authority or legal basis.",
                                 examples=["Order 2026/17"])]


class DirectiveRequest(Message):
    """A directive as a person submits it (intake issues or amends it, impact dry-runs it); no revision yet."""

    directive_id: DirectiveId
    title: Title
    authority: Authority = ""
    scope: DirectiveScope = Field(..., description="What the directive covers.")


class DirectiveIssued(Event):
    """A directive was issued or amended; a later revision replaces the scope."""

    type: Literal["DirectiveIssued"] = "DirectiveIssued"
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Revision; an older one arriving late is ignored.", examples=[1])
    title: Title
    authority: Authority = ""
    scope: DirectiveScope = Field(..., description="What the directive covers.")


class DirectiveLifted(Event):
    """A directive was lifted: access it took comes back unless another directive covers it."""

    type: Literal["DirectiveLifted"] = "DirectiveLifted"
    directive_id: DirectiveId
    revision: int = Field(..., ge=1, description="Revision of the directive being lifted.", examples=[1])
    reason: str = Field("", max_length=1000, description="Why it was lifted.", examples=["Order revoked"])


DirectiveEvent = Annotated[Union[DirectiveIssued, DirectiveLifted], Field(discriminator="type")]
