"""The audience-sync engine on real snapshot and plan files: planning from the diff (trigger
fields, previous records), batch checkpoints, bad-row isolation and tracked removals."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.pipeline.snapshot import Snapshot, iter_changes
from lytics_provider.sync.act import RowLevelBatchError, act_in_batches
from lytics_provider.sync.changes import NOT_ADDED, ledger_entries, plan_changes, start_tracking
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.identifiers import is_email, normalize_email
from lytics_provider.sync.ledger import MemberLedger
from lytics_provider.sync.plan import Outcome, SyncPlan, Work
from lytics_provider.sync.report import SyncReport, write_rejects


def snapshot(path: Path, members: Iterable[dict[str, Any]]) -> Path:
    with Snapshot(path) as snap:
        snap.add_page(list(members), "", total=None)
        snap.mark_complete()
    return path


def member(i: int, **extra: Any) -> dict[str, Any]:
    return {"_uid": f"u{i}", "email": f"U{i}@Example.com", "score": 1, "name": f"n{i}", **extra}


class ListDestination(SyncDestination):
    """A destination keeping one list in memory; refuses whole batches holding a bad row."""

    exit_action_name = "remove"

    def __init__(self, bad: set[str] = frozenset(), trigger_fields: list[str] | None = None) -> None:
        self.bad = set(bad)
        self.trigger_fields = trigger_fields
        self.members: set[str] = set()
        self.calls: list[list[str]] = []
        self.batch_size = 4

    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        return normalize_email(record.get("email")), None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        return None if is_email(ident) else "no valid email"

    def exit_action(self) -> str:
        return "remove"

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"name": record.get("name")}

    def add(self, target: str, rows: list[Work]) -> list[Outcome]:
        self.calls.append([w.ident for w in rows])
        bad = [w.ident for w in rows if w.ident in self.bad]
        if bad:
            raise RowLevelBatchError(f"{bad[0]} is blocked")
        self.members.update(w.ident for w in rows)
        return [(w.ident, target, "add", w.uid, "Added", None, None) for w in rows]

    def remove(self, target: str, rows: list[Work]) -> list[Outcome]:
        self.calls.append([w.ident for w in rows])
        self.members.difference_update(w.ident for w in rows)
        return [(w.ident, target, "remove", w.uid, "Removed", None, None) for w in rows]


def test_iter_changes_yields_the_previous_record_of_changes_and_exits(tmp_path: Path) -> None:
    before = snapshot(tmp_path / "a.db", [member(1), member(2)])
    after = snapshot(tmp_path / "b.db", [member(1, score=2), member(3)])
    changes = {(c.kind, c.uid): c for c in iter_changes(after, before)}
    assert changes[("change", "u1")].previous["score"] == 1 and changes[("change", "u1")].record["score"] == 2
    assert changes[("exit", "u2")].previous == changes[("exit", "u2")].record
    assert changes[("enter", "u3")].previous is None


def test_only_changes_of_trigger_fields_are_planned(tmp_path: Path) -> None:
    before = snapshot(tmp_path / "a.db", [member(1), member(2)])
    after = snapshot(tmp_path / "b.db", [member(1, score=5), member(2, name="renamed")])
    plan = SyncPlan(tmp_path / "plan.db")
    planned = plan_changes(plan, ListDestination(trigger_fields=["name"]), after, before)
    assert planned["changes"] == 1 and planned["untriggered_changes"] == 1
    assert [w.ident for w in plan.iter_work("add", "default")] == ["u2@example.com"]
    assert next(plan.iter_work("add", "default")).fields() == {"name": "renamed"}


def test_bad_row_is_isolated_by_splitting_and_the_rest_is_sent(tmp_path: Path) -> None:
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(10)] + [member(99, email="broken")])
    plan = SyncPlan(tmp_path / "plan.db")
    dest = ListDestination(bad={"u6@example.com"})
    planned = plan_changes(plan, dest, current, None)
    assert planned["adds"] == 10 and planned["invalid"] == 1
    progress = act_in_batches(plan, "add", "default", dest.batch_size, lambda rows: dest.add("default", rows))
    assert dest.members == {f"u{i}@example.com" for i in range(10)} - {"u6@example.com"}
    assert progress.batches == 3 and progress.split == 2  # 4..7 -> 4,5 | 6,7 -> 6 | 7
    assert plan.counts() == {"add:Added": 9, "add:Rejected": 1, "add:Invalid": 1}
    rejects = tmp_path / "rejects.csv"
    assert write_rejects(plan, rejects) == 2
    text = rejects.read_text()
    assert "u6@example.com is blocked" in text and "no valid email" in text


def test_retry_resends_nothing_a_destination_acknowledged(tmp_path: Path) -> None:
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(10)])
    plan = SyncPlan(tmp_path / "plan.db")
    dest = ListDestination()
    plan_changes(plan, dest, current, None)

    def crash_on_third(rows: list[Work]) -> list[Outcome]:
        if len(dest.calls) == 2:
            raise ConnectionError("network down")
        return dest.add("default", rows)

    with pytest.raises(ConnectionError):
        act_in_batches(plan, "add", "default", 4, crash_on_third)
    sent_before = [ident for call in dest.calls[:2] for ident in call]
    dest.calls.clear()
    act_in_batches(plan, "add", "default", 4, lambda rows: dest.add("default", rows))
    resent = [ident for call in dest.calls for ident in call]
    assert not set(resent) & set(sent_before)
    assert sorted(sent_before + resent) == sorted(f"u{i}@example.com" for i in range(10))
    assert plan.count_outcomes("add", "Added") == 10


def run(
    tmp_path: Path,
    job: str,
    run_id: str,
    members: list[dict[str, Any]],
    previous: Path | None,
    committed: str | None,
    dest: ListDestination,
) -> tuple[Path, SyncPlan, dict[str, Any]]:
    current = snapshot(tmp_path / f"{run_id}.db", members)
    plan = SyncPlan(tmp_path / f"{run_id}-plan.db")
    with closing(MemberLedger(job, tmp_path / f"{job}-ledger.db")) as ledger:
        ledger.fold(committed)
        planned = plan_changes(plan, dest, current, previous, ledger)
        dest.act(plan)
        start_tracking(plan, dest, ledger)
        ledger.record_run(run_id, ledger_entries(plan, dest))
    return current, plan, planned


def test_exits_remove_only_members_the_job_added_once_the_run_committed(tmp_path: Path) -> None:
    dest = ListDestination(bad={"u3@example.com"})
    dest.members.add("outsider@example.com")
    first, _, _ = run(tmp_path, "job", "r1", [member(i) for i in range(6)], None, None, dest)
    assert "u3@example.com" not in dest.members  # refused on add: never the job's
    # r2 is planned as if r1 had not committed: its adds do not count yet, nothing is removed
    _, plan2, planned2 = run(tmp_path, "job", "r2", [member(i) for i in range(2)], first, None, dest)
    assert planned2["removes"] == 0 and planned2["not_added_by_job"] == 4
    assert plan2.count_outcomes("remove", NOT_ADDED) == 4
    # once r1 is the committed baseline, its acknowledged adds are removable; u3 stays untouched
    dest.bad.clear()
    _, plan3, planned3 = run(tmp_path, "job", "r3", [member(i) for i in range(2)], first, "r1", dest)
    assert planned3["removes"] == 3 and planned3["not_added_by_job"] == 1
    assert dest.members == {"outsider@example.com", "u0@example.com", "u1@example.com"}
    report = SyncReport(planned=planned3, dry_run=False, outcomes=plan3.counts()).as_dict()
    assert report["outcomes"] == {"remove:Removed": 3, f"remove:{NOT_ADDED}": 1}


def test_a_target_first_seen_with_a_baseline_is_seeded_from_it(tmp_path: Path) -> None:
    dest = ListDestination()
    before = snapshot(tmp_path / "legacy.db", [member(i) for i in range(5)])
    dest.members.update(f"u{i}@example.com" for i in range(5))  # delivered before the ledger existed
    _, _, planned = run(tmp_path, "old", "r9", [member(0)], before, "r8", dest)
    assert planned["removes"] == 4
    assert dest.members == {"u0@example.com"}
