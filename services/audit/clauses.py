"""Which clause of a selector matched one user, and why: the selector as recorded (a JSON document) evaluated
over the user's registry record in three-valued logic (unknown stays unknown until the whole selector is decided),
each clause with its verdict. Pure. Tested equal to the reference evaluation (devtools.registry.oracle)."""

from __future__ import annotations

from typing import Any

from shared.contracts.kleene import Truth, all_of, any_of, negate


def explain_selector(clause: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """{kind, truth, why, of: [sub-clauses]} for the clause over the user record."""
    kind = clause.get("kind")
    if kind in ("all_of", "any_of"):
        parts = [explain_selector(c, user) for c in clause["of"]]
        truths = [p["truth"] for p in parts]
        truth = all_of(truths) if kind == "all_of" else any_of(truths)
        return {"kind": kind, "truth": truth, "why": f"{kind.replace('_', ' ')} of {len(parts)} clauses", "of": parts}
    if kind == "not":
        inner = explain_selector(clause["of"], user)
        return {
            "kind": kind,
            "truth": negate(inner["truth"]),
            "why": "not",
            "of": [inner],
        }
    truth, why = _leaf(kind, clause, user)
    return {"kind": kind, "truth": truth, "why": why, "of": []}


def decision(truth: Truth, unknown_attribute: str) -> bool:
    """Whether the directive covers the user: matched, or unknown and the directive fails closed."""
    return truth is True or (truth is None and unknown_attribute == "restrict")


def _leaf(kind: str | None, clause: dict, user: dict) -> tuple[Truth, str]:
    if kind == "everyone":
        return True, "everyone"
    if kind == "foreign_national":
        held, home = user.get("nationalities"), clause["home_country"]
        if held is None:
            return None, f"no nationality recorded (unknown); home country {home}"
        return home not in held, f"nationalities {held or 'none (stateless)'}; home country {home}"
    if kind == "nationality":
        held = user.get("nationalities")
        if held is None:
            return None, "no nationality recorded (unknown)"
        return any(c in clause["any_of"] for c in held), f"nationalities {held} vs {clause['any_of']}"
    if kind == "residence":
        country = user.get("residence")
        if country is None:
            return None, "no residence recorded (unknown)"
        return country in clause["any_of"], f"residence {country} vs {clause['any_of']}"
    if kind == "account_type":
        return user.get("account_type") in clause[
            "any_of"
        ], f"account type {user.get('account_type')} vs {clause['any_of']}"
    if kind == "organisation":
        org = user.get("organisation")
        return org is not None and org in clause["any_of"], f"organisation {org} vs {clause['any_of']}"
    if kind == "entitlement":
        held = user.get("entitlements") or []
        return any(m in clause["any_of"] for m in held), f"entitlements {held} vs {clause['any_of']}"
    raise ValueError(f"selector.kind: unsupported {kind!r}")
