"""On real Kafka and a real SMTP server: amendments, registry deltas and later entitlements tell exactly the
users whose access changed, once each, and only after every cluster confirmed the change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pyroaring import BitMap

from devtools.mailbox import Mailbox
from devtools.waiting import eventually
from shared.contracts.bitmaps import encode_bitmap, scope_digest, set_digest
from shared.contracts.enforcement import ClusterProgress, EnforcementProgressed
from shared.contracts.impact import AffectedSetDelta, AssessmentKey
from tests.integration.notifier.conftest import (
    as_record,
    assessment,
    confirmation,
    mailing,
    produce,
    replaying,
    started,
    user,
    user_base,
)


def _copies(box: Mailbox, directive: str) -> int:
    """Every message of the directive the server received, copies included (a fresh consumer group replays
    other tests' directives too: they are not counted)."""
    return sum(m.notice.startswith(f"{directive}:") for m in box.received)


def _told(box: Mailbox, directive: str) -> dict[str, str]:
    """Idempotency key -> recipient address, of every notice of the directive the receiver kept."""
    return {m.notice: m.to for m in box.unique().values() if m.notice.startswith(f"{directive}:")}


async def test_an_amendment_tells_only_who_lost_or_regained_access_once_confirmed(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, b = f"AMEND-{unique}", user_base(unique)
    await produce(bootstrap, [user(b + i, f"user{i}@example.com") for i in range(4)])
    with Mailbox() as box:
        settings = await mailing(bootstrap, tmp_path, unique, box, replay=True)
        notifier = await started(settings)
        try:
            await produce(bootstrap, assessment(directive, 1, "restrict", {"fable-5": [b, b + 1, b + 2]}))
            await produce(bootstrap, [confirmation(directive, 1, "restrict")])
            await eventually(lambda: len(_told(box, directive)) >= 3, what="revision 1 notices")
            # Revision 2 covers b+1, b+2 (unchanged), b+3 (new); b is no longer covered.
            amended = assessment(
                directive,
                2,
                "restrict",
                {"fable-5": [b + 1, b + 2, b + 3]},
                amended_from=1,
                added={"fable-5": [b + 3]},
                removed={"fable-5": [b]},
            )
            await produce(bootstrap, amended)
            confirmed = confirmation(directive, 2, "restrict")
            assert set(_told(box, directive)) == {f"{directive}:1:restricted:{b + i}" for i in range(3)}
            await produce(bootstrap, [confirmed])
            await eventually(lambda: len(_told(box, directive)) >= 5, what="amendment notices")
        finally:
            await notifier.stop()
        # A replay of everything by a fresh consumer group on the same ledger sends nothing again.
        again = await replaying(settings)
        try:
            await eventually(lambda: again.handlers.pairing.is_done((directive, 2, "restrict")), what="replayed")
        finally:
            await again.stop()
        told = _told(box, directive)
    assert told == {
        **{f"{directive}:1:restricted:{b + i}": f"user{i}@example.com" for i in range(3)},
        f"{directive}:2:restricted:{b + 3}": "user3@example.com",  # newly covered by the amendment
        f"{directive}:2:restored:{b}": "user0@example.com",  # no longer covered
    }
    assert _copies(box, directive) == len(told)  # not even a duplicate for the receiver to drop
    restored = next(m for m in box.unique().values() if m.notice == f"{directive}:2:restored:{b}")
    assert restored.language == "fr" and "fable-5" in restored.subject


APPLIED, PENDING = ("applied", [], None), ("pending", [], None)  # serving every model, no digest stated


def _progress(
    directive: str,
    states: dict[str, tuple[str, list[str], str | None]],
    expected: str = "all",
    action: str = "restrict",
) -> tuple[str, bytes, bytes]:
    """A progress report of revision 1: cluster -> (state, models it serves, digest it applied)."""
    event = EnforcementProgressed(
        producer="test",
        correlation_id=directive,
        directive_id=directive,
        revision=1,
        action=action,  # type: ignore[arg-type]
        expected_digest=expected,
        clusters={c: ClusterProgress(state=s, models=m, digest=d) for c, (s, m, d) in states.items()},
        deadline=datetime.now(UTC),
    )
    return as_record("compliance.enforcement.v1", directive, event)


def _delta(directive: str, seq: int, model: str, added: list[int], removed: list[int], after: BitMap):
    event = AffectedSetDelta(
        producer="test",
        correlation_id=directive,
        directive_id=directive,
        revision=1,
        seq=seq,
        model=model,
        added=encode_bitmap(BitMap(added)),
        removed=encode_bitmap(BitMap(removed)),
        model_digest=set_digest(after),
    )
    return as_record("compliance.impact.v1", directive, event)


async def test_a_registry_delta_is_told_once_every_cluster_holds_it(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, b = f"DELTA-{unique}", user_base(unique)
    key = AssessmentKey(directive, 1, "restrict")
    await produce(bootstrap, [user(b + i, f"user{i}@example.com") for i in range(4)])
    first = BitMap([b, b + 1])
    digests = {"fable-5": set_digest(first), "mythos-5": set_digest(BitMap())}
    after = BitMap([b + 1, b + 2])  # b+2 became covered (a changed nationality), b stopped being covered
    confirmed = scope_digest({**digests, "fable-5": set_digest(after)})
    with Mailbox() as box:
        settings = await mailing(bootstrap, tmp_path, unique, box, replay=True)
        notifier = await started(settings)
        try:
            head = assessment(directive, 1, "restrict", {"fable-5": list(first), "mythos-5": []}, model_digests=digests)
            await produce(bootstrap, [*head, confirmation(directive, 1, "restrict", scope_digest(digests))])
            await eventually(lambda: len(_told(box, directive)) >= 2, what="revision 1 notices")
            await produce(bootstrap, [_delta(directive, 1, "fable-5", [b + 2], [b], after)])
            # One cluster still pending: not confirmed. The marker after it shows the notifier read past it.
            await produce(bootstrap, [_progress(directive, {"eu-1": APPLIED, "us-1": PENDING}, confirmed)])
            await produce(bootstrap, [_progress(directive, {"eu-1": APPLIED, "us-1": APPLIED}, "marker")])
            await eventually(lambda: "marker" in notifier.handlers.delta_pairing.confirmed_digests(key), what="marker")
            assert set(_told(box, directive)) == {f"{directive}:1:restricted:{b}", f"{directive}:1:restricted:{b + 1}"}
            await produce(bootstrap, [_progress(directive, {"eu-1": APPLIED, "us-1": APPLIED}, confirmed)])
            await eventually(lambda: len(_told(box, directive)) >= 4, what="delta notices")
        finally:
            await notifier.stop()
        again = await replaying(settings)
        try:
            await eventually(
                lambda: (
                    confirmed in again.handlers.delta_pairing.confirmed_digests(key)
                    and again.handlers.delta_pairing.ready() == []
                ),
                what="replayed",
            )
        finally:
            await again.stop()
        told = _told(box, directive)
    assert told == {
        f"{directive}:1:restricted:{b}": "user0@example.com",
        f"{directive}:1:restricted:{b + 1}": "user1@example.com",
        f"{directive}:1:restricted:{b + 2}:delta-1": "user2@example.com",  # became covered
        f"{directive}:1:restored:{b}:delta-1": "user0@example.com",  # stopped being covered
    }
    assert _copies(box, directive) == len(told)
    restored = next(m for m in box.unique().values() if m.notice == f"{directive}:1:restored:{b}:delta-1")
    assert "fable-5" in restored.subject and restored.language == "fr"


async def test_a_later_entitlement_is_told_and_restored_access_skips_users_another_directive_covers(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    a, b_directive, b = f"GRANT-A-{unique}", f"GRANT-B-{unique}", user_base(unique)
    both = ["fable-5", "mythos-5"]
    await produce(bootstrap, [user(b, "ada@example.com", ["fable-5"], "en"), user(b + 1, "bo@example.com", both, "en")])
    with Mailbox() as box:
        settings = await mailing(bootstrap, tmp_path, unique, box, replay=True)
        notifier = await started(settings)
        try:
            await produce(
                bootstrap,
                [*assessment(a, 1, "restrict", {m: [b, b + 1] for m in both}), confirmation(a, 1, "restrict")],
            )
            await produce(
                bootstrap,
                [
                    *assessment(b_directive, 1, "restrict", {"fable-5": [b + 1]}),
                    confirmation(b_directive, 1, "restrict"),
                ],
            )
            await eventually(
                lambda: len(_told(box, a)) == 2 and len(_told(box, b_directive)) == 1, what="first notices"
            )
            # ada is granted mythos-5, which A denies her; bo loses mythos-5 (a revocation needs no notice).
            await produce(
                bootstrap, [user(b, "ada@example.com", both, "en"), user(b + 1, "bo@example.com", ["fable-5"], "en")]
            )
            await eventually(lambda: len(_told(box, a)) == 3, what="the grant's notice")
            # A's revision 2 drops fable-5: ada regains it; bo does not (B still covers him), so he is not told.
            amended = assessment(
                a, 2, "restrict", {"mythos-5": [b, b + 1]}, amended_from=1, removed={"fable-5": [b, b + 1]}
            )
            await produce(bootstrap, [*amended, confirmation(a, 2, "restrict")])
            await eventually(lambda: len(_told(box, a)) == 4, what="the amendment's notice")
        finally:
            await notifier.stop()
        again = await replaying(settings)
        try:
            await eventually(
                lambda: again.handlers.pairing.is_done((a, 2, "restrict")) and again.ready(), what="replay"
            )
        finally:
            await again.stop()
        told = _told(box, a)
        granted = [m for m in box.unique().values() if m.notice.startswith(f"{a}:1:restricted:{b}:entitled-")]
    assert {k for k in told if ":entitled-" not in k} == {
        f"{a}:1:restricted:{b}",
        f"{a}:1:restricted:{b + 1}",
        f"{a}:2:restored:{b}",
    }
    [grant] = granted
    assert grant.to == "ada@example.com" and "mythos-5" in grant.subject and "fable-5" not in grant.subject
    assert _copies(box, a) == len(told)  # nothing sent twice, replay included


async def test_a_notice_goes_out_once_the_clusters_serving_its_models_applied_whatever_the_others_do(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, b = f"SERVED-{unique}", user_base(unique)
    key = AssessmentKey(directive, 1, "restrict")
    await produce(bootstrap, [user(b + i, f"user{i}@example.com") for i in range(3)])
    with Mailbox() as box:
        settings = await mailing(bootstrap, tmp_path, unique, box)
        notifier = await started(settings)
        try:
            # b loses fable-5 (served by eu-1 only), b+1 mythos-5 (us-1 only), b+2 both.
            await produce(
                bootstrap, assessment(directive, 1, "restrict", {"fable-5": [b, b + 2], "mythos-5": [b + 1, b + 2]})
            )
            pending = {"us-1": ("pending", ["mythos-5"], None)}
            await produce(bootstrap, [_progress(directive, {"eu-1": ("applied", ["fable-5"], "f1"), **pending})])
            await eventually(lambda: _told(box, directive) == {f"{directive}:1:restricted:{b}": "user0@example.com"})
            # A later report read means the first one was handled whole: nobody else was told on it.
            await produce(bootstrap, [_progress(directive, {"eu-1": ("applied", ["fable-5"], "marker"), **pending})])
            await eventually(
                lambda: "marker" in notifier.handlers.delta_pairing.held_digests(key, "eu-1"), what="marker"
            )
            assert set(_told(box, directive)) == {f"{directive}:1:restricted:{b}"}
            both = {"eu-1": ("applied", ["fable-5"], "f1"), "us-1": ("applied", ["mythos-5"], "m1")}
            await produce(bootstrap, [_progress(directive, both)])
            await eventually(lambda: len(_told(box, directive)) >= 3, what="the other notices")
            await eventually(lambda: notifier.handlers.pairing.is_done(key), what="the revision done")
        finally:
            await notifier.stop()
        told = _told(box, directive)
    assert set(told) == {f"{directive}:1:restricted:{b + i}" for i in range(3)}
    assert _copies(box, directive) == 3
    both_models = next(m for m in box.unique().values() if m.notice == f"{directive}:1:restricted:{b + 2}")
    assert "fable-5" in both_models.subject and "mythos-5" in both_models.subject


async def test_after_a_restart_restored_notices_wait_only_for_the_clusters_serving_their_models(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, b = f"RESERVED-{unique}", user_base(unique)
    await produce(bootstrap, [user(b + i, f"user{i}@example.com") for i in range(3)])
    sets = {"fable-5": [b, b + 2], "mythos-5": [b + 1, b + 2]}  # fable-5 served by eu-1 only, mythos-5 by us-1
    with Mailbox() as box:
        settings = await mailing(bootstrap, tmp_path, unique, box)
        notifier = await started(settings)
        try:
            await produce(bootstrap, assessment(directive, 1, "restrict", sets))
            both = {"eu-1": ("applied", ["fable-5"], "f1"), "us-1": ("applied", ["mythos-5"], "m1")}
            await produce(bootstrap, [_progress(directive, both)])
            await eventually(lambda: len(_told(box, directive)) >= 3, what="the restricted notices")
        finally:
            await notifier.stop()
        notifier = await started(settings)  # the same state and group: only what is on disk is known
        try:
            await produce(bootstrap, assessment(directive, 1, "lift", sets))
            eu_lifted = {"eu-1": ("applied", [], None), "us-1": ("pending", [], None)}  # lift reports name no models
            await produce(bootstrap, [_progress(directive, eu_lifted, action="lift")])
            restored = {f"{directive}:1:restored:{b}"}  # fable-5 only: eu-1 is every cluster serving it
            await eventually(lambda: restored <= set(_told(box, directive)), what="the fable-5 restored notice")
            assert {k for k in _told(box, directive) if ":restored:" in k} == restored  # mythos-5 waits for us-1
            every = {"eu-1": ("applied", [], None), "us-1": ("applied", [], None)}
            await produce(bootstrap, [_progress(directive, every, action="lift")])
            await eventually(lambda: len(_told(box, directive)) >= 6, what="the other restored notices")
        finally:
            await notifier.stop()
        told = _told(box, directive)
    assert {k for k in told if ":restored:" in k} == {f"{directive}:1:restored:{b + i}" for i in range(3)}
    assert _copies(box, directive) == 6


async def test_a_registry_delta_is_told_once_the_clusters_serving_its_model_hold_it(
    bootstrap: str, unique: str, tmp_path: Path
) -> None:
    directive, b = f"DSERVED-{unique}", user_base(unique)
    key = AssessmentKey(directive, 1, "restrict")
    await produce(bootstrap, [user(b + i, f"user{i}@example.com") for i in range(4)])
    digests = {"fable-5": set_digest(BitMap([b])), "mythos-5": set_digest(BitMap([b + 1]))}
    fable, mythos = BitMap([b, b + 2]), BitMap([b + 1, b + 3])  # after delta 1 (fable-5) and delta 2 (mythos-5)
    eu_holds, us_holds = scope_digest({"fable-5": set_digest(fable)}), scope_digest({"mythos-5": set_digest(mythos)})
    with Mailbox() as box:
        settings = await mailing(bootstrap, tmp_path, unique, box)
        notifier = await started(settings)
        try:
            head = assessment(directive, 1, "restrict", {"fable-5": [b], "mythos-5": [b + 1]}, model_digests=digests)
            await produce(bootstrap, [*head, confirmation(directive, 1, "restrict", scope_digest(digests))])
            await eventually(lambda: len(_told(box, directive)) >= 2, what="revision 1 notices")
            await produce(
                bootstrap,
                [
                    _delta(directive, 1, "fable-5", [b + 2], [], fable),
                    _delta(directive, 2, "mythos-5", [b + 3], [], mythos),
                ],
            )
            # eu-1 (fable-5) holds delta 1; us-1 (mythos-5) has not applied delta 2.
            pending = {"us-1": ("pending", ["mythos-5"], None)}
            await produce(bootstrap, [_progress(directive, {"eu-1": ("applied", ["fable-5"], eu_holds), **pending})])
            await eventually(
                lambda: f"{directive}:1:restricted:{b + 2}:delta-1" in _told(box, directive), what="delta 1"
            )
            await produce(bootstrap, [_progress(directive, {"eu-1": ("applied", ["fable-5"], "marker"), **pending})])
            await eventually(
                lambda: "marker" in notifier.handlers.delta_pairing.held_digests(key, "eu-1"), what="marker"
            )
            assert f"{directive}:1:restricted:{b + 3}:delta-2" not in _told(box, directive)
            both = {"eu-1": ("applied", ["fable-5"], eu_holds), "us-1": ("applied", ["mythos-5"], us_holds)}
            await produce(bootstrap, [_progress(directive, both)])
            await eventually(lambda: len(_told(box, directive)) >= 4, what="delta 2")
        finally:
            await notifier.stop()
        told = _told(box, directive)
    assert told == {
        f"{directive}:1:restricted:{b}": "user0@example.com",
        f"{directive}:1:restricted:{b + 1}": "user1@example.com",
        f"{directive}:1:restricted:{b + 2}:delta-1": "user2@example.com",
        f"{directive}:1:restricted:{b + 3}:delta-2": "user3@example.com",
    }
    assert _copies(box, directive) == len(told)
