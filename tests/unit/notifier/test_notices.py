"""Building notices from a confirmed set: one per user, the models that user lost or regained."""

from __future__ import annotations

from pyroaring import BitMap

from services.notifier.notices import Contact, addressed, batches, due, notices_for
from shared.contracts.impact import AssessmentKey

RESTRICT = AssessmentKey("EXP-1", 2, "restrict")
LIFT = AssessmentKey("EXP-1", 2, "lift")


def test_one_notice_per_user_naming_the_models_whose_set_holds_them() -> None:
    sets = {"mythos-5": BitMap([2, 3]), "fable-5": BitMap([1, 2])}
    notices = list(notices_for(RESTRICT, sets))
    assert [(n.recipient, n.models) for n in notices] == [
        (1, ("fable-5",)),
        (2, ("fable-5", "mythos-5")),
        (3, ("mythos-5",)),
    ]
    assert {n.action for n in notices} == {"restricted"}
    assert notices[1].notification_id == "EXP-1:2:restricted:2"


def test_a_lift_gives_restored_notices_with_their_own_ids() -> None:
    notices = list(notices_for(LIFT, {"fable-5": BitMap([7])}))
    assert [(n.action, n.notification_id, n.revision) for n in notices] == [("restored", "EXP-1:2:restored:7", 2)]


def test_ids_are_deterministic_across_builds() -> None:
    sets = {"fable-5": BitMap(range(100))}
    assert [n.notification_id for n in notices_for(RESTRICT, sets)] == [
        n.notification_id for n in notices_for(RESTRICT, {"fable-5": BitMap(range(100))})
    ]


def test_an_empty_set_gives_no_notice() -> None:
    assert list(notices_for(RESTRICT, {"fable-5": BitMap()})) == []


def test_notices_already_in_the_ledger_are_not_due() -> None:
    notices = list(notices_for(RESTRICT, {"fable-5": BitMap([1, 2, 3])}))
    fresh = due(notices, {"EXP-1:2:restricted:2"})
    assert [n.recipient for n in fresh] == [1, 3]


def test_batches_cover_every_notice_once() -> None:
    notices = list(notices_for(RESTRICT, {"fable-5": BitMap(range(25))}))
    groups = list(batches(notices, 10))
    assert [len(g) for g in groups] == [10, 10, 5]
    assert [n for g in groups for n in g] == notices


def test_recipients_without_a_registry_record_fail_with_a_reason() -> None:
    notices = list(notices_for(RESTRICT, {"fable-5": BitMap([1, 2])}))
    split = addressed(notices, {1: Contact("a@example.com", "en")})
    assert [(n.recipient, c.email) for n, c in split.deliverable] == [(1, "a@example.com")]
    assert [(n.recipient, "no record" in reason) for n, reason in split.failed] == [(2, True)]


def test_a_notice_names_only_the_models_the_recipient_is_entitled_to() -> None:
    notices = list(notices_for(RESTRICT, {"fable-5": BitMap([1, 2, 3]), "mythos-5": BitMap([1, 2, 3])}))
    contacts = {
        1: Contact("a@example.com", "en", frozenset({"fable-5", "lyric-4"})),
        2: Contact("b@example.com", "en", frozenset({"fable-5", "mythos-5"})),
        3: Contact("c@example.com", "en", frozenset({"lyric-4"})),
    }
    split = addressed(notices, contacts)
    assert [(n.recipient, n.models) for n, _ in split.deliverable] == [(1, ("fable-5",)), (2, ("fable-5", "mythos-5"))]
    assert split.failed == [] and split.unaffected == 1  # user 3 is covered but lost nothing: no notice
