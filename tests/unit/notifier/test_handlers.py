"""The handlers pair real contract messages, persist halves and dispatch each key once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from pyroaring import BitMap

from services.notifier.delivery_ledger import open_database
from services.notifier.handlers import Handlers
from services.notifier.pairing import Ready
from services.notifier.pending import PendingStore
from shared.contracts.bitmaps import encode_bitmap, scope_digest, set_digest
from shared.contracts.directives import DirectiveScope
from shared.contracts.enforcement import ClusterProgress, DirectiveEnforced, EnforcementProgressed
from shared.contracts.impact import AffectedSetChunk, AffectedSetDelta, AssessmentKey, ImpactAssessed


class FakeDelivery:
    def __init__(self) -> None:
        self.dispatched: list[Ready] = []

    async def dispatch(self, ready: Ready) -> None:
        self.dispatched.append(ready)


def _messages(directive: str = "EXP-3") -> tuple[ImpactAssessed, AffectedSetChunk, DirectiveEnforced]:
    scope = DirectiveScope.model_validate({"models": ["fable-5"], "selector": {"kind": "everyone"}})
    head = ImpactAssessed(
        producer="impact",
        directive_id=directive,
        revision=1,
        action="restrict",
        scope=scope,
        affected_by_model={"fable-5": 2},
        affected_users=2,
        model_digests={"fable-5": "x"},
        digest="x",
        registry_offsets={0: 3},
        chunks=1,
    )
    chunk = AffectedSetChunk(
        producer="impact",
        directive_id=directive,
        revision=1,
        action="restrict",
        model="fable-5",
        chunk=0,
        chunks=1,
        users=encode_bitmap(BitMap([4, 5])),
    )
    done = DirectiveEnforced(
        producer="enforcement",
        directive_id=directive,
        revision=1,
        action="restrict",
        digest="x",
        clusters={"eu": ClusterProgress(state="applied")},
        ack_latency_s={},
    )
    return head, chunk, done


def _handlers(tmp_path: Path, delivery: FakeDelivery) -> Handlers:
    return Handlers(PendingStore(open_database(tmp_path / "n.db")), delivery)  # type: ignore[arg-type]


async def test_either_order_dispatches_once_and_duplicates_change_nothing(tmp_path: Path) -> None:
    head, chunk, done = _messages()
    for order in ([head, chunk, done], [done, head, chunk]):
        delivery = FakeDelivery()
        handlers = _handlers(tmp_path / str(order[0].type), delivery)
        for message in order + order:
            if isinstance(message, DirectiveEnforced):
                await handlers.on_enforcement(message)
            else:
                await handlers.on_impact(message)
        assert [(r.key.directive_id, list(r.sets["fable-5"]), r.causation_id) for r in delivery.dispatched] == [
            ("EXP-3", [4, 5], done.event_id)
        ]


async def test_a_restart_remembers_dispatched_keys_and_pending_halves(tmp_path: Path) -> None:
    head, chunk, done = _messages()
    first = FakeDelivery()
    handlers = _handlers(tmp_path, first)
    await handlers.on_impact(head)
    await handlers.on_impact(chunk)
    restarted = FakeDelivery()
    handlers = _handlers(tmp_path, restarted)
    await handlers.on_enforcement(done)
    assert len(restarted.dispatched) == 1
    again = FakeDelivery()
    handlers = _handlers(tmp_path, again)
    await handlers.resume()
    for message in (head, chunk):
        await handlers.on_impact(message)
    await handlers.on_enforcement(done)
    assert again.dispatched == []


async def test_an_amendment_notifies_only_who_changed_between_revisions(tmp_path: Path) -> None:
    head, chunk, done = _messages()
    head = head.model_copy(update={"revision": 2, "amended_from": 1, "diff_chunks": 2})
    chunk, done = chunk.model_copy(update={"revision": 2}), done.model_copy(update={"revision": 2})
    added = chunk.model_copy(update={"chunk": 1, "chunks": 3, "part": "added", "users": encode_bitmap(BitMap([5]))})
    removed = added.model_copy(update={"chunk": 2, "part": "removed", "users": encode_bitmap(BitMap([9]))})
    delivery = FakeDelivery()
    handlers = _handlers(tmp_path, delivery)
    for message in _messages():  # revision 1, told
        await (handlers.on_enforcement if message.type == "DirectiveEnforced" else handlers.on_impact)(message)
    for message in (head, added, chunk):
        await handlers.on_impact(message)
    await handlers.on_enforcement(done)
    assert len(delivery.dispatched) == 1  # the difference is not complete yet: the removed chunk is missing
    await handlers.on_impact(removed)
    ready = delivery.dispatched[-1]
    told = {(n.recipient, n.action, n.models, n.occasion) for n in ready.notices()}
    assert told == {(5, "restricted", ("fable-5",), "amendment"), (9, "restored", ("fable-5",), "amendment")}


async def test_an_amendment_half_survives_a_restart(tmp_path: Path) -> None:
    head, chunk, done = _messages()
    head = head.model_copy(update={"revision": 2, "amended_from": 1, "diff_chunks": 1})
    chunk, done = chunk.model_copy(update={"revision": 2}), done.model_copy(update={"revision": 2})
    removed = chunk.model_copy(update={"chunk": 1, "chunks": 2, "part": "removed", "users": encode_bitmap(BitMap([9]))})
    first = _handlers(tmp_path, FakeDelivery())
    for message in _messages():  # revision 1, told
        await (first.on_enforcement if message.type == "DirectiveEnforced" else first.on_impact)(message)
    for message in (head, chunk, removed):
        await first.on_impact(message)
    delivery = FakeDelivery()
    again = _handlers(tmp_path, delivery)
    await again.on_enforcement(done)
    [ready] = delivery.dispatched
    assert [(n.recipient, n.action) for n in ready.notices()] == [(9, "restored")]


async def test_an_amendment_of_a_revision_never_told_is_told_whole_and_the_older_revision_never(
    tmp_path: Path,
) -> None:
    head, chunk, done = _messages()
    head2 = head.model_copy(update={"revision": 2, "amended_from": 1, "diff_chunks": 1})
    chunk2, done2 = chunk.model_copy(update={"revision": 2}), done.model_copy(update={"revision": 2})
    added = chunk2.model_copy(update={"chunk": 1, "chunks": 2, "part": "added", "users": encode_bitmap(BitMap([5]))})
    delivery = FakeDelivery()
    handlers = _handlers(tmp_path, delivery)
    for message in (head, chunk, head2, chunk2, added):  # revision 1 is amended before it was confirmed
        await handlers.on_impact(message)
    await handlers.on_enforcement(done2)
    await handlers.on_enforcement(done)  # a late confirmation of the superseded revision
    [ready] = delivery.dispatched
    assert ready.key.revision == 2
    assert sorted((n.recipient, n.action) for n in ready.notices()) == [(4, "restricted"), (5, "restricted")]


class SlowDelivery(FakeDelivery):
    async def dispatch(self, ready: Ready) -> None:
        await asyncio.sleep(0.05)  # long enough for another offer of the same notices to queue behind it
        self.dispatched.append(ready)


async def test_a_delta_offered_by_resume_and_a_handler_at_once_is_told_once(tmp_path: Path) -> None:
    head, chunk, done = _messages("EXP-9")
    first = _handlers(tmp_path, FakeDelivery())
    for message in (head, chunk):
        await first.on_impact(message)
    await first.on_enforcement(done)
    after = BitMap([4, 5, 6])
    delta = AffectedSetDelta(
        producer="impact",
        directive_id="EXP-9",
        revision=1,
        seq=1,
        model="fable-5",
        added=encode_bitmap(BitMap([6])),
        removed=encode_bitmap(BitMap()),
        model_digest=set_digest(after),
    )
    await first.on_impact(delta)
    confirmed = scope_digest({"fable-5": set_digest(after)})
    first._deltas.confirmed(AssessmentKey.of(done), confirmed, "progress-1")  # stored, then the process died
    delivery = SlowDelivery()
    restarted = _handlers(tmp_path, delivery)
    report = EnforcementProgressed(
        producer="enforcement",
        directive_id="EXP-9",
        revision=1,
        action="restrict",
        expected_digest=confirmed,
        clusters={"eu": ClusterProgress(state="applied")},
        deadline=datetime.now(UTC),
    )
    await asyncio.gather(restarted.resume(), restarted.on_enforcement(report))
    assert [r.suffix for r in delivery.dispatched] == [":delta-1"]


def _two_models(directive: str, revision: int, action: str) -> list[ImpactAssessed | AffectedSetChunk]:
    """fable-5 taken from (or given back to) user 4, mythos-5 to user 5."""
    scope = DirectiveScope.model_validate({"models": ["fable-5", "mythos-5"], "selector": {"kind": "everyone"}})
    sets = {"fable-5": BitMap([4]), "mythos-5": BitMap([5])}
    head = ImpactAssessed(
        producer="impact",
        directive_id=directive,
        revision=revision,
        action=action,  # type: ignore[arg-type]
        scope=scope,
        affected_by_model={m: len(u) for m, u in sets.items()},
        affected_users=2,
        model_digests={m: set_digest(u) for m, u in sets.items()},
        digest="x",
        registry_offsets={},
        chunks=2,
    )
    chunks = [
        AffectedSetChunk(
            producer="impact",
            directive_id=directive,
            revision=revision,
            action=action,  # type: ignore[arg-type]
            model=model,
            chunk=index,
            chunks=2,
            users=encode_bitmap(users),
        )
        for index, (model, users) in enumerate(sorted(sets.items()))
    ]
    return [head, *chunks]


def _progress(
    directive: str, revision: int, action: str, clusters: dict[str, ClusterProgress]
) -> EnforcementProgressed:
    return EnforcementProgressed(
        producer="enforcement",
        directive_id=directive,
        revision=revision,
        action=action,  # type: ignore[arg-type]
        expected_digest="x",
        clusters=clusters,
        deadline=datetime.now(UTC),
    )


async def test_notices_wait_while_a_cluster_awaits_one_of_its_replicas(tmp_path: Path) -> None:
    head, chunk, done = _messages("EXP-11")
    delivery = FakeDelivery()
    handlers = _handlers(tmp_path, delivery)
    for message in (head, chunk):
        await handlers.on_impact(message)
    us_applied = ClusterProgress(state="applied", models=["fable-5"])
    halfway = ClusterProgress(
        state="pending", models=["fable-5"], reason="awaiting replicas: agent-eu-1", replicas={"agent-eu-0": "x"}
    )
    await handlers.on_enforcement(_progress("EXP-11", 1, "restrict", {"eu": halfway, "us": us_applied}))
    assert delivery.dispatched == []  # one replica of eu holds it, the other live one does not yet
    both = ClusterProgress(state="applied", models=["fable-5"], replicas={"agent-eu-0": "x", "agent-eu-1": "x"})
    await handlers.on_enforcement(_progress("EXP-11", 1, "restrict", {"eu": both, "us": us_applied}))
    assert [list(r.sets["fable-5"]) for r in delivery.dispatched] == [[4, 5]]


async def test_after_a_restart_a_lift_is_told_per_model_from_the_clusters_the_restriction_named(
    tmp_path: Path,
) -> None:
    # eu serves fable-5, us mythos-5: the restrict reports say so; a lift's reports name no models.
    first = FakeDelivery()
    handlers = _handlers(tmp_path, first)
    for message in _two_models("EXP-L", 1, "restrict"):
        await handlers.on_impact(message)
    serving = {
        "eu": ClusterProgress(state="applied", models=["fable-5"]),
        "us": ClusterProgress(state="applied", models=["mythos-5"]),
    }
    await handlers.on_enforcement(_progress("EXP-L", 1, "restrict", serving))
    assert [r.key for r in first.dispatched] == [AssessmentKey("EXP-L", 1, "restrict")]

    restarted = FakeDelivery()
    handlers = _handlers(tmp_path, restarted)
    for message in _two_models("EXP-L", 2, "lift"):
        await handlers.on_impact(message)
    eu_lifted = {"eu": ClusterProgress(state="applied"), "us": ClusterProgress(state="pending")}
    await handlers.on_enforcement(_progress("EXP-L", 2, "lift", eu_lifted))
    # fable-5 is back everywhere it is served (eu): its restored notices need not wait for us.
    assert [(r.key, r.confirmed) for r in restarted.dispatched] == [
        (AssessmentKey("EXP-L", 2, "lift"), frozenset({"fable-5"}))
    ]
