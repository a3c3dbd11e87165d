"""How restrict, delta and lift commands change what an agent holds: pure functions returning acks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from pyroaring import BitMap

from services.agent.restrictions import HeldRestriction, PendingDelta, Restrictions, StagedRevision, Window
from shared.contracts.bitmaps import SetDigest, decode_bitmap
from shared.contracts.serving import REFUSED, DeltaCommand, LiftCommand, RestrictCommand
from shared.runtime.dispatch import Dispatch

Action = Literal["restrict", "lift", "delta"]


@dataclass(frozen=True)
class Applied:
    """The agent now holds `digest` for the directive after applying (or re-confirming) a command."""

    directive_id: str
    revision: int
    action: Action
    digest: str
    seq: int = 0
    cause: str | None = field(default=None, compare=False)  # event id that caused it when not the command handled


@dataclass(frozen=True)
class Failed:
    """The agent rejected a command; what it holds is unchanged."""

    directive_id: str
    revision: int
    reason: str
    cause: str | None = field(default=None, compare=False)  # event id that caused it when not the command handled


@dataclass(frozen=True)
class Outcome:
    """Acks to send and what must be persisted before the command's offset is committed."""

    acks: tuple[Applied | Failed, ...] = ()
    held_changed: bool = False
    staged_chunk: tuple[int, int] | None = None  # (revision, chunk) newly staged
    touched: bool = False  # staging, early deltas or lift tombstones changed
    deltas: tuple[PendingDelta, ...] = ()  # when held changed only by these deltas, applied in this order
    completed: tuple[int, StagedRevision, tuple[int, ...]] | None = None  # (revision, its chunks, those just come)
    received: tuple[int, str] | None = None  # (revision, command id) of a restrict command newly received
    needs_sets: bool = False  # a restrict command by reference to stage: read its set copies, then apply it again


def on_command(
    state: Restrictions, command: RestrictCommand | DeltaCommand | LiftCommand, cluster_id: str, now: datetime
) -> Outcome:
    """Apply any command addressed to `cluster_id`; one addressed to another cluster is refused, nothing changes."""
    if command.cluster_id != cluster_id:
        return Outcome(
            acks=(
                Failed(
                    command.directive_id,
                    command.revision,
                    f"cluster_id: command is addressed to cluster {command.cluster_id!r}, "
                    f"this agent enforces {cluster_id!r}",
                ),
            )
        )
    return RULES(command, state, now)


def on_restrict(
    state: Restrictions,
    command: RestrictCommand,
    now: datetime | None = None,
    sets: dict[str, BitMap] | None = None,
    digests: dict[str, SetDigest] | None = None,
) -> Outcome:
    """Stage one chunk; once every chunk of the revision is in, replace the directive's sets atomically.

    A command by reference carries no users: unless it is refused or confirms what is held, the outcome asks for
    its sets (`needs_sets`, nothing changed) and the caller applies it again with `sets` read from their copies
    (and, per model, the set's digest combined from the copy's range digests, so the set is not hashed again); those
    sets are then held as given, not copied.
    `now` is when the chunk arrived: a revision still incomplete `chunk_timeout` after its first chunk is
    discarded by `expire_staging`.
    """
    directive, revision = command.directive_id, command.revision
    held = state.held.get(directive)
    if revision <= state.lifted.get(directive, 0) or (held and revision < held.revision):
        newer = f"revision {held.revision} is held" if held else f"revision {state.lifted[directive]} was lifted"
        return _refused(directive, revision, f"replayed: revision {revision} is older than what it holds ({newer})")
    if now is not None and command.expires_at is not None and now >= command.expires_at:
        return _refused(directive, revision, f"expired: the directive expired at {command.expires_at.isoformat()}")
    if command.event_id in state.received.get((directive, revision), ()):
        return _refused(directive, revision, f"replayed: command {command.event_id!r} was received already")
    confirms = held is not None and revision == held.revision and command.expected_digest == held.digest
    if command.sets is not None and sets is None and not confirms:
        return Outcome(needs_sets=True)
    state.receive(directive, revision, command.event_id)
    if command.sets is None:
        outcome = _stage(state, command, now)
    else:
        outcome = _stage_sets(state, command, sets or {}, now, digests or {})
    return replace(outcome, received=(revision, command.event_id))


def refuse_sets(command: RestrictCommand, reason: str) -> Outcome:
    """A restrict command whose set copies cannot be used (missing, forged, not matching its digests): refused,
    nothing changes; the agent keeps what it holds."""
    return _refused(command.directive_id, command.revision, reason)


def _stage_sets(
    state: Restrictions,
    command: RestrictCommand,
    sets: dict[str, BitMap],
    now: datetime | None,
    digests: dict[str, SetDigest],
) -> Outcome:
    directive, revision = command.directive_id, command.revision
    held = state.held.get(directive)
    if held and revision == held.revision and command.expected_digest == held.digest:
        return Outcome(acks=(_confirm(state, directive, revision, "restrict"),))
    models = [ref.model for ref in command.sets or ()]
    staged = StagedRevision(
        chunks=len(models),
        window=Window(command.effective_from, command.expires_at),
        on_stale=command.on_stale,
        started_at=now,
        cause=command.event_id,
        whole=True,
    )
    for index, model in enumerate(models):
        staged.add(index, len(models), model, sets[model])
    state.staging[(directive, revision)] = staged
    # One set per model, read for this command alone: held as it is, not copied again (a delta changes a held set
    # in place, so a bitmap given for two models is held as two).
    whole: dict[str, BitMap] = {}
    for model in sorted(models):
        users = sets[model]
        whole[model] = BitMap(users) if any(users is other for other in whole.values()) else users
    return _apply_revision(state, directive, revision, staged, tuple(range(len(models))), digests, whole)


def _stage(state: Restrictions, command: RestrictCommand, now: datetime | None) -> Outcome:
    directive, revision = command.directive_id, command.revision
    held = state.held.get(directive)
    if held and revision == held.revision and command.expected_digest == held.digest:
        return Outcome(acks=(_confirm(state, directive, revision, "restrict"),))
    # A held revision re-sent with other content is the sender's current truth (e.g. after a delta this
    # agent never received): it is staged and replaces the sets like a new revision.
    try:
        users = decode_bitmap(command.users)
    except ValueError as exc:
        return _discard(state, directive, revision, f"chunk {command.chunk} ({command.model}): {exc}")
    window = Window(command.effective_from, command.expires_at)
    staged = state.staging.setdefault(
        (directive, revision),
        StagedRevision(
            chunks=command.chunks, window=window, on_stale=command.on_stale, started_at=now, cause=command.event_id
        ),
    )
    try:
        if not staged.add(command.chunk, command.chunks, command.model, users):
            return Outcome()
    except ValueError as exc:
        return _discard(state, directive, revision, str(exc))
    if not staged.complete:
        return Outcome(staged_chunk=(revision, command.chunk), touched=True)
    return _apply_revision(state, directive, revision, staged, (command.chunk,))


def _apply_revision(
    state: Restrictions,
    directive: str,
    revision: int,
    staged: StagedRevision,
    arrived: tuple[int, ...],
    digests: dict[str, SetDigest] | None = None,
    sets: dict[str, BitMap] | None = None,
) -> Outcome:
    state.held[directive] = HeldRestriction.of(
        revision,
        staged.window,
        staged.sets() if sets is None else sets,
        _seq_reflected(state, directive, revision),
        on_stale=staged.on_stale,
        digests=digests,
    )
    _drop_staging(state, directive, through=revision)
    state.forget_received(directive, below=revision)
    for key in [k for k in state.pending if k[0] == directive]:
        del state.pending[key]
    return Outcome(
        acks=(_confirm(state, directive, revision, "restrict"),),
        held_changed=True,
        touched=True,
        completed=(revision, staged, arrived),
    )


def _seq_reflected(state: Restrictions, directive: str, revision: int) -> int:
    """Deltas of this revision that arrived before a re-send of it are already reflected in its sets."""
    held = state.held.get(directive)
    if held is None or held.revision != revision:
        return 0
    return max([held.seq, *state.pending.get((directive, revision), {})])


def _refused(directive: str, revision: int, reason: str) -> Outcome:
    """A command the agent will not apply (replayed, expired); what it holds is unchanged."""
    return Outcome(acks=(Failed(directive, revision, f"{REFUSED}{reason}"),))


def _discard(state: Restrictions, directive: str, revision: int, reason: str) -> Outcome:
    state.staging.pop((directive, revision), None)
    return Outcome(acks=(Failed(directive, revision, reason),), touched=True)


def _drop_staging(state: Restrictions, directive: str, through: int) -> None:
    for key in [k for k in state.staging if k[0] == directive and k[1] <= through]:
        del state.staging[key]


def _confirm(state: Restrictions, directive: str, revision: int, action: Action) -> Applied:
    held = state.held.get(directive)
    return Applied(directive, revision, action, state.digest(directive), held.seq if held else 0)


def on_lift(state: Restrictions, command: LiftCommand) -> Outcome:
    """Drop the directive if it holds this revision or an older one; always acknowledge."""
    directive, revision = command.directive_id, command.revision
    state.lifted[directive] = max(state.lifted.get(directive, 0), revision)
    held = state.held.get(directive)
    dropped = held is not None and held.revision <= revision
    if dropped:
        del state.held[directive]
    _drop_staging(state, directive, through=revision)
    state.forget_received(directive, below=state.lifted[directive] + 1)
    for key in [k for k in state.pending if k[0] == directive and k[1] <= revision]:
        del state.pending[key]
    return Outcome(acks=(_confirm(state, directive, revision, "lift"),), held_changed=dropped, touched=True)


def on_delta(state: Restrictions, command: DeltaCommand) -> Outcome:
    """Apply deltas of the held revision in seq order, buffering early ones; ignore stale ones."""
    directive, revision = command.directive_id, command.revision
    held = state.held.get(directive)
    if revision <= state.lifted.get(directive, 0) or (held and revision < held.revision):
        return Outcome()  # superseded: a late delta of a lifted or replaced revision
    if held is None or held.revision != revision:
        holding = f"revision {held.revision}" if held else "nothing"
        return Outcome(
            acks=(
                Failed(
                    directive,
                    revision,
                    f"revision: delta {command.seq} is for revision {revision}, "
                    f"which this agent does not hold (it holds {holding})",
                ),
            )
        )
    if command.seq <= held.seq:
        return Outcome(acks=(_confirm(state, directive, revision, "delta"),))
    buffer = state.pending.setdefault((directive, revision), {})
    if command.seq in buffer:
        return Outcome()
    try:
        delta = PendingDelta(command.seq, command.model, decode_bitmap(command.added), decode_bitmap(command.removed))
    except ValueError as exc:
        if not buffer:
            del state.pending[(directive, revision)]
        return Outcome(acks=(Failed(directive, revision, f"delta {command.seq} ({command.model}): {exc}"),))
    buffer[command.seq] = delta
    return _drain(state, directive, held, buffer)


def _drain(state: Restrictions, directive: str, held: HeldRestriction, buffer: dict[int, PendingDelta]) -> Outcome:
    seq, applied = held.seq, []
    while seq + 1 in buffer:
        applied.append(buffer.pop(seq + 1))
        seq += 1
    if not buffer:
        del state.pending[(directive, held.revision)]
    if seq == held.seq:
        # Waiting for an earlier delta: say what is held, so a sender that expects more re-sends the revision.
        return Outcome(acks=(_confirm(state, directive, held.revision, "delta"),), touched=True)
    state.held[directive] = held.with_deltas(applied, seq)
    return Outcome(
        acks=(_confirm(state, directive, held.revision, "delta"),),
        held_changed=True,
        touched=True,
        deltas=tuple(applied),
    )


def expire_staging(state: Restrictions, now: datetime, timeout: timedelta) -> dict[str, Outcome]:
    """Discard revisions still missing chunks `timeout` after their first chunk; one failure each, naming them.

    A staged revision whose wait has no start yet (recovered from the snapshot) starts waiting now.
    """
    outcomes: dict[str, Outcome] = {}
    for (directive, revision), staged in sorted(state.staging.items()):
        if staged.started_at is None:
            staged.started_at = now
        if now - staged.started_at < timeout:
            continue
        missing = ", ".join(map(str, staged.missing))
        reason = (
            f"chunks {missing} of {staged.chunks} missing {timeout.total_seconds():g} s after the first "
            f"chunk of revision {revision}: the revision is discarded, nothing of it applied"
        )
        state.staging.pop((directive, revision))
        previous = outcomes.get(directive, Outcome())
        failed = Failed(directive, revision, reason, staged.cause or None)
        outcomes[directive] = Outcome(acks=(*previous.acks, failed), touched=True)
    return outcomes


RULES: Dispatch[Outcome] = Dispatch(
    {  # how each command class changes what the agent holds: rule(command, state, now)
        RestrictCommand: lambda command, state, now: on_restrict(state, command, now),
        DeltaCommand: lambda command, state, _: on_delta(state, command),
        LiftCommand: lambda command, state, _: on_lift(state, command),
    }
)
