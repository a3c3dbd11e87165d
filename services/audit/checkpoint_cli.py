"""`countermand audit checkpoints|verify|prove|consistency`: signed tree heads taken out of the system and the
ledger held against them, against the topics and against itself. Read-only: publishes nothing."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from services.audit.app import RECORDED_TOPICS
from services.audit.forgery import Signatures
from services.audit.kafka_check import OffsetsCheck, check_offsets
from services.audit.ledger import Ledger
from services.audit.merkle import root
from services.audit.proofs import LedgerCheck, check_ledger, prove_consistency, prove_inclusion
from services.audit.settings import AuditSettings
from services.audit.signing_key import SigningKeyMissing, checkpoint_signer
from services.audit.timeline import forgery
from services.audit.treehead import HeadRefused, TreeHead, export_head, verify_head
from shared.contracts.audit import AuditCheckpoint
from shared.contracts.catalogue import AUDIT, BY_NAME
from shared.runtime.kafka import records_to_end
from shared.runtime.settings import kafka_settings
from shared.runtime.signing import KeySet

KEYS_FILE = "keys.jwks.json"
KEYS_HELP = f"JWK set of the audit's public keys (default: DIR/{KEYS_FILE}, else the public half of the audit's key)."
BOOTSTRAP_HELP = "Kafka bootstrap servers (default: COUNTERMAND_KAFKA_BOOTSTRAP)."


class Refused(Exception):
    """Bad input from the person running the command: printed as one clear error line, exit code `code`."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def fail(exc: Refused) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(exc.code)


# --- inputs ------------------------------------------------------------------------------------------------------


def exported_heads(folder: Path) -> list[TreeHead]:
    """Every head exported to `folder`, smallest first; Refused naming the file that is not one."""
    if not folder.is_dir():
        raise Refused(f"--against: {folder} is not a folder of exported checkpoints")
    heads = []
    for path in sorted(folder.glob("checkpoint-*.json")):
        try:
            heads.append(TreeHead.from_json(path.read_text()))
        except (HeadRefused, OSError, UnicodeDecodeError) as exc:
            raise Refused(f"{path}: {exc}", 1) from exc
    if not heads:
        raise Refused(f"--against: no exported checkpoint (checkpoint-*.json) in {folder}")
    return heads


def head_file(path: Path) -> TreeHead:
    try:
        return TreeHead.from_json(path.read_text())
    except (HeadRefused, OSError, UnicodeDecodeError) as exc:
        raise Refused(f"{path}: {exc}") from exc


def public_keys(keys: Path | None, folder: Path | None, settings: AuditSettings) -> KeySet:
    """The keys heads are verified with: --keys, else the export folder's set, else the audit's own key."""
    path = keys or (folder / KEYS_FILE if folder is not None and (folder / KEYS_FILE).exists() else None)
    if path is not None:
        try:
            return KeySet.from_file(path)
        except (OSError, ValueError) as exc:
            raise Refused(f"--keys: {exc}") from exc
    try:
        signer = checkpoint_signer(settings.model_copy(update={"unsigned_dev": False}))
    except SigningKeyMissing as exc:
        raise Refused(f"no public key to verify heads with: pass --keys FILE ({exc})") from exc
    return KeySet([signer.public()])


def open_ledger(path: Path | None) -> Ledger:
    where = path or AuditSettings().ledger_path
    try:
        ledger = Ledger(where, read_only=True)
        ledger.head()
        return ledger
    except FileNotFoundError as exc:
        raise Refused(f"ledger: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise Refused(f"ledger: {where} is not an audit ledger ({exc})") from exc


def checked(ledger: Ledger, heads: list[TreeHead], keys: KeySet | None) -> LedgerCheck:
    try:
        return check_ledger(ledger.entries(), heads, keys)
    except sqlite3.DatabaseError as exc:  # a file cut short or overwritten part way
        raise Refused(f"ledger: corrupted, cannot be read to the end ({exc})", 1) from exc


# --- checkpoints --export --------------------------------------------------------------------------------------


async def published_heads(bootstrap: str | None) -> list[TreeHead]:
    """Every signed head on audit.checkpoints.v1, in publishing order."""
    heads = []
    async for record in records_to_end(kafka_settings(bootstrap), AUDIT, "audit-export"):
        try:
            signed = AuditCheckpoint.model_validate_json(record.value).tree_head
        except ValueError:
            continue
        if signed is not None:
            heads.append(TreeHead.of_contract(signed))
    return heads


def export(heads: list[TreeHead], keys: KeySet, folder: Path) -> tuple[int, int]:
    """Write the heads `keys` verify (and the key set) to `folder`; (written, skipped for another key)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / KEYS_FILE).write_text(keys.to_json())
    except OSError as exc:
        raise Refused(f"--export: cannot write to {folder} ({exc.strerror or exc})") from exc
    written = skipped = 0
    for head in heads:
        if keys.get(head.key_id) is None:
            skipped += 1  # another ledger's or another key's heads share the topic
            continue
        try:
            verify_head(head, keys)
        except HeadRefused as exc:
            raise Refused(f"audit.checkpoints.v1 holds a forged head: {exc}", 1) from exc
        try:
            export_head(head, folder)
        except HeadRefused:
            continue  # the same size exported before (a restart re-signs it): the first one stays
        except OSError as exc:
            raise Refused(f"--export: cannot write to {folder} ({exc.strerror or exc})") from exc
        written += 1
    return written, skipped


def checkpoints(
    export_to: Path = typer.Option(..., "--export", help="Folder to write the signed heads and the JWK set to."),
    keys: Path = typer.Option(None, "--keys", help=KEYS_HELP),
    bootstrap: str = typer.Option(None, "--bootstrap", help=BOOTSTRAP_HELP),
) -> None:
    """Export every signed tree head published on audit.checkpoints.v1, with the public keys, for safekeeping."""
    try:
        key_set = public_keys(keys, None, AuditSettings())
        heads = asyncio.run(published_heads(bootstrap))
        written, skipped = export(heads, key_set, export_to)
    except Refused as exc:
        raise fail(exc) from exc
    largest = max((h.size for h in heads if key_set.get(h.key_id)), default=0)
    Console().print(
        f"exported {written} signed heads (largest size {largest:,}) and {KEYS_FILE} to {export_to}"
        + (f"; {skipped} heads of other keys skipped" if skipped else ""),
        highlight=False,
        soft_wrap=True,
    )


def heads_and_keys(folder: Path | None, keys: Path | None) -> tuple[list[TreeHead], KeySet | None]:
    """The exported signed heads in `folder` (none without one) and the keys to check them with."""
    heads = exported_heads(folder) if folder is not None else []
    return heads, public_keys(keys, folder, AuditSettings()) if heads else None


# --- verify ------------------------------------------------------------------------------------------------------


def verify(
    ledger: Path = typer.Option(None, "--ledger", help="Ledger file (default: the audit's state dir)."),
    against: Path = typer.Option(
        None, "--against", help="Folder of exported heads (default: COUNTERMAND_AUDIT_EXPORT_DIR)."
    ),
    keys: Path = typer.Option(None, "--keys", help=KEYS_HELP),
    kafka: bool = typer.Option(True, "--kafka/--no-kafka", help="Also hold the ledger against the topics."),
    bootstrap: str = typer.Option(None, "--bootstrap", help=BOOTSTRAP_HELP),
    record_keys: list[str] = typer.Option(
        None,
        "--record-keys",
        help="TOPIC=JWKS: check that topic's records against these keys (repeatable; adds to "
        "COUNTERMAND_AUDIT_RECORD_KEYS); forged records are listed.",
    ),
    grace: float = typer.Option(
        30.0,
        "--grace",
        min=0,
        help="Seconds: a record Kafka received this recently that the ledger lacks is in flight (a running audit "
        "records it a moment later), not missing. 0 when the audit is stopped.",
    ),
) -> None:
    """Verify the hash chain, the Merkle root under every exported signed head, and the ledger against the topics'
    records: exit 1 naming what does not match."""
    folder = against or AuditSettings().export_dir
    try:
        heads, key_set = heads_and_keys(folder, keys)
        signatures = record_signatures(record_keys)
        store = open_ledger(ledger)
        try:
            result = checked(store, heads, key_set)
            forged = [(e, why) for e in store.entries() if (why := forgery(e, signatures)) is not None]
        finally:
            store.close()
        offsets = asyncio.run(_offsets(bootstrap, result, grace)) if kafka else None
    except Refused as exc:
        raise fail(exc) from exc
    _print_verdict(result, offsets, folder)
    _print_forgeries(forged, signatures)
    if not result.intact or (offsets is not None and not offsets.intact):
        raise typer.Exit(1)


def record_signatures(options: list[str] | None) -> Signatures:
    """The key sets records are checked against: COUNTERMAND_AUDIT_RECORD_KEYS, then TOPIC=FILE options."""
    chosen: dict[str, Path] = dict(AuditSettings().record_keys)
    for option in options or []:
        topic, sep, path = option.partition("=")
        if not sep or topic not in BY_NAME or not path:
            raise Refused(f"--record-keys: {option!r} is not TOPIC=FILE with a known topic")
        chosen[topic] = Path(path)
    try:
        return Signatures.from_files(chosen)
    except ValueError as exc:
        raise Refused(str(exc)) from exc


def _print_forgeries(forged: list, signatures: Signatures) -> None:
    out, err = Console(highlight=False, soft_wrap=True), Console(stderr=True, highlight=False, soft_wrap=True)
    if not signatures.topics:
        out.print("record signatures not checked (no record key sets: COUNTERMAND_AUDIT_RECORD_KEYS)")
        return
    if not forged:
        out.print(f"no forged record: every record on {', '.join(signatures.topics)} is signed by a current key")
        return
    err.print(f"[red]{len(forged):,} forged records[/red] (failed signature verification):")
    for entry, why in forged[:20]:
        r = entry.record
        err.print(f"  seq {entry.seq} {r.topic}/{r.partition}@{r.offset} {entry.envelope.type or '-'}: {why}")
    if len(forged) > 20:
        err.print(f"  … and {len(forged) - 20:,} more")


async def _offsets(bootstrap: str | None, result: LedgerCheck, grace_s: float) -> OffsetsCheck:
    try:
        return await check_offsets(kafka_settings(bootstrap), RECORDED_TOPICS, result.leaves, grace_s)
    except Exception as exc:  # noqa: BLE001 - an unreachable broker is a clear error, not a traceback
        raise Refused(f"cannot read the topics to compare ({exc!r}); --no-kafka skips this check") from exc


def _print_verdict(result: LedgerCheck, offsets: OffsetsCheck | None, folder: Path | None) -> None:
    out, err = Console(highlight=False, soft_wrap=True), Console(stderr=True, highlight=False, soft_wrap=True)
    chain = result.chain
    if chain.intact:
        out.print(f"chain intact: {chain.checked:,} entries, head hash {chain.head_hash}")
    else:
        err.print(
            f"[red]ledger broken at seq {chain.broken_seq}:[/red] {chain.reason} ({chain.checked:,} intact before)"
        )
    out.print(f"merkle root of {result.size:,} entries: {result.root.hex()}")
    for check in result.heads:
        line = f"signed head size {check.head.size:,} ({check.head.key_id}, {check.head.signed_at.isoformat()})"
        if check.problem:
            err.print(f"[red]{line}: {check.problem}[/red]")
        elif check is result.heads[-1]:
            out.print(f"{line}: matches (latest exported head)")
    if folder is None:
        err.print("no exported heads given (--against DIR): a ledger rewritten whole would go undetected")
    elif result.heads and all(c.problem is None for c in result.heads):
        out.print(f"{len(result.heads)} exported signed heads match")
    if offsets is not None:
        _print_offsets(offsets, out, err)


def _print_offsets(offsets: OffsetsCheck, out: Console, err: Console) -> None:
    for label, found in (
        ("missing from the ledger", offsets.missing),
        ("not on Kafka (forged or misplaced)", offsets.extra),
        ("different from Kafka's record", offsets.altered),
    ):
        if found:
            sample = ", ".join(f"{t}/{p}@{o}" for t, p, o in found[:5])
            err.print(f"[red]{len(found):,} records {label}:[/red] {sample}{' …' if len(found) > 5 else ''}")
    if offsets.intact:
        notes = [
            f"{offsets.compacted:,} compacted away" if offsets.compacted else "",
            f"{offsets.expired:,} expired" if offsets.expired else "",
            f"{offsets.in_flight:,} written in the last seconds, not recorded yet" if offsets.in_flight else "",
        ]
        extra = "; ".join(n for n in notes if n)
        out.print("ledger matches the topics: no record missing, none extra" + (f" ({extra})" if extra else ""))


# --- prove, consistency ------------------------------------------------------------------------------------------


def prove(
    seq: int = typer.Argument(..., min=1, help="Ledger seq of the entry."),
    ledger: Path = typer.Option(None, "--ledger", help="Ledger file (default: the audit's state dir)."),
    against: Path = typer.Option(
        None, "--against", help="Folder of exported heads (default: COUNTERMAND_AUDIT_EXPORT_DIR)."
    ),
    keys: Path = typer.Option(None, "--keys", help=KEYS_HELP),
) -> None:
    """Prove the entry's inclusion under the latest exported signed head (else the ledger's own root) and
    verify the proof; prints it as JSON, exit 1 if it does not verify."""
    folder = against or AuditSettings().export_dir
    try:
        heads, key_set = heads_and_keys(folder, keys)
        store = open_ledger(ledger)
        try:
            entry, leaves = store.entry(seq), store.leaves()
        finally:
            store.close()
        if entry is None:
            raise Refused(f"seq: no entry {seq} in the ledger ({len(leaves):,} entries)")
        head = _covering(heads, seq, key_set)
    except Refused as exc:
        raise fail(exc) from exc
    size, top = (head.size, head.root) if head else (len(leaves), root(leaves))
    proof = prove_inclusion(entry, leaves, size, top)
    document = {
        "seq": seq,
        "leaf_hash": proof.leaf.hex(),
        "tree_size": size,
        "root": top.hex(),
        "against": f"signed head {head.key_id} {head.signed_at.isoformat()}"
        if head
        else "the ledger's own root (unsigned)",
        "audit_path": [node.hex() for node in proof.path],
        "verified": proof.verified,
    }
    typer.echo(json.dumps(document, indent=2))
    if not proof.verified:
        raise typer.Exit(1)


def _covering(heads: list[TreeHead], seq: int, keys: KeySet | None) -> TreeHead | None:
    covering = [h for h in heads if h.size >= seq]
    if heads and not covering:
        raise Refused(f"seq {seq} is newer than the latest exported head (size {heads[-1].size:,}): export again", 1)
    if not covering:
        return None
    head = max(covering, key=lambda h: h.size)
    try:
        verify_head(head, keys)
    except HeadRefused as exc:
        raise Refused(str(exc), 1) from exc
    return head


def consistency(
    old: Path = typer.Argument(..., help="An exported head (checkpoint-*.json)."),
    new: Path = typer.Argument(..., help="A later exported head."),
    ledger: Path = typer.Option(None, "--ledger", help="Ledger file the proof is built from."),
    keys: Path = typer.Option(None, "--keys", help=KEYS_HELP),
) -> None:
    """Prove that the later head's tree extends the earlier one's (nothing before it rewritten); exit 1 if not."""
    try:
        first, second = head_file(old), head_file(new)
        key_set = public_keys(keys, old.parent, AuditSettings())
        for head in (first, second):
            try:
                verify_head(head, key_set)
            except HeadRefused as exc:
                raise Refused(str(exc), 1) from exc
        store = open_ledger(ledger)
        try:
            leaves = store.leaves()
        finally:
            store.close()
    except Refused as exc:
        raise fail(exc) from exc
    proof = prove_consistency(first, second, leaves)
    table = Table("old size", "new size", "proof nodes", "verified")
    table.add_row(f"{proof.old.size:,}", f"{proof.new.size:,}", str(len(proof.path)), "yes" if proof.verified else "NO")
    Console().print(table)
    if not proof.verified:
        Console(stderr=True, soft_wrap=True).print(
            "[red]the later head does not extend the earlier one over this ledger[/red] "
            "(history rewritten, or the ledger is not the one the heads were signed over)"
        )
        raise typer.Exit(1)
