"""Per-model confirmation: notices wait only for the clusters serving the models they name."""

from __future__ import annotations

from pathlib import Path

from pyroaring import BitMap

from services.notifier.delivery_ledger import open_database
from services.notifier.delta_pairing import Delta, DeltaPairing
from services.notifier.notices import Contact, Notice, confirmed_for
from services.notifier.pairing import Pairing
from services.notifier.pending import DeltaStore, PendingStore
from services.notifier.serving import confirmed_models
from shared.contracts.bitmaps import scope_digest
from shared.contracts.enforcement import ClusterProgress
from shared.contracts.impact import AssessmentKey

KEY = AssessmentKey("EXP-1", 1, "restrict")
MODELS = {"fable-5", "mythos-5"}


def _progress(state: str, *models: str) -> ClusterProgress:
    return ClusterProgress(state=state, models=list(models))


def test_a_model_is_confirmed_once_every_cluster_serving_it_applied() -> None:
    report = {"eu-1": _progress("applied", "fable-5"), "us-1": _progress("pending", "mythos-5")}
    assert confirmed_models(report, MODELS) == {"fable-5"}
    report["ap-1"] = _progress("overdue", "fable-5")
    assert confirmed_models(report, MODELS) == set()


def test_a_cluster_naming_no_models_counts_for_every_model_unless_its_models_are_known() -> None:
    report = {"eu-1": _progress("applied"), "us-1": _progress("pending")}  # a lift's report
    assert confirmed_models(report, MODELS) == set()
    assert confirmed_models(report, MODELS, {"eu-1": ["fable-5"], "us-1": ["mythos-5"]}) == {"fable-5"}


def _assessed(pairing: Pairing) -> None:
    pairing.assessed(KEY, 2, {})
    pairing.chunk(KEY, 0, 2, "fable-5", BitMap([1, 3]))
    pairing.chunk(KEY, 1, 2, "mythos-5", BitMap([2, 3]))


def test_a_partly_confirmed_set_is_ready_for_the_confirmed_models_and_done_only_with_all() -> None:
    pairing = Pairing()
    _assessed(pairing)
    ready = pairing.confirmed(KEY, frozenset({"fable-5"}), "progress-1")
    assert ready is not None and ready.partial and ready.confirmed == {"fable-5"}
    assert pairing.confirmed(KEY, frozenset({"fable-5"}), "progress-2") is None  # nothing new confirmed
    ready = pairing.confirmed(KEY, frozenset({"mythos-5"}), "progress-3")
    assert ready is not None and not ready.partial and ready.causation_id == "progress-3"


def test_a_notice_is_due_only_when_every_model_its_recipient_loses_is_confirmed() -> None:
    both = Notice("EXP-1:1:restricted:3", 3, "EXP-1", 1, "restricted", ("fable-5", "mythos-5"))
    fable_only = Contact("a@example.com", "en", frozenset({"fable-5"}))
    assert not confirmed_for(both, None, frozenset({"fable-5"}))
    assert confirmed_for(both, fable_only, frozenset({"fable-5"}))  # entitled to fable-5 only: loses nothing else
    assert confirmed_for(both, None, None)


def test_per_model_confirmations_survive_a_restart(tmp_path: Path) -> None:
    store = PendingStore(open_database(tmp_path / "n.db"))
    store.assessed(KEY, 2, {})
    store.chunk(KEY, 0, 2, "fable-5", BitMap([1]))
    store.chunk(KEY, 1, 2, "mythos-5", BitMap([2]))
    store.confirmed(KEY, frozenset({"fable-5"}), "progress-1")
    [ready] = PendingStore(open_database(tmp_path / "n.db")).restore().ready()
    assert ready.confirmed == {"fable-5"}


BASE = {"fable-5": "f0", "mythos-5": "m0"}
ONE = Delta(1, "fable-5", "f1", BitMap([7]), BitMap())
TWO = Delta(2, "mythos-5", "m1", BitMap([8]), BitMap())
EU = {"eu-1": (frozenset({"fable-5"}), scope_digest({"fable-5": "f1"}))}
US_PENDING = {"us-1": (frozenset({"mythos-5"}), None)}


def test_a_delta_is_told_once_the_clusters_serving_its_model_hold_it_whatever_the_others_do() -> None:
    pairing = DeltaPairing()
    pairing.assessed(KEY, BASE)
    pairing.delta(KEY, ONE)
    pairing.delta(KEY, TWO)
    due = pairing.clusters(KEY, {**EU, **US_PENDING}, "progress-1")
    assert [(seq, r.causation_id) for seq, r in due] == [(1, "progress-1")]
    pairing.sent(KEY, 1)
    us = {"us-1": (frozenset({"mythos-5"}), scope_digest({"mythos-5": "m1"}))}
    assert [seq for seq, _ in pairing.clusters(KEY, {**EU, **us}, "progress-2")] == [2]


def test_cluster_reports_survive_a_restart(tmp_path: Path) -> None:
    store = DeltaStore(open_database(tmp_path / "n.db"))
    store.assessed(KEY, BASE)
    store.delta(KEY, ONE)
    store.clusters(KEY, {**EU, **US_PENDING}, "progress-1")
    due = DeltaStore(open_database(tmp_path / "n.db")).restore().ready()
    assert [(seq, r.causation_id) for seq, r in due] == [(1, "progress-1")]
