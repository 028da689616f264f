"""Audience events from the sync engine: kinds, deterministic ids, Fields to Trigger, Existing Users,
and a retried run that resends no acknowledged batch and the same ids for the rest."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.sync.changes import plan_changes
from lytics_provider.sync.events import SENT, SKIPPED_EXISTING, AudienceEvent, EventDestination, event_id
from lytics_provider.sync.plan import SyncPlan
from tests.integration.test_sync_engine import member, snapshot


class RecordingEvents(EventDestination):
    def __init__(self, fail_after: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("job_id", "job")
        kwargs.setdefault("run_id", "run1")
        kwargs.setdefault("audience", "vip")
        super().__init__(**kwargs)
        self.batches: list[list[AudienceEvent]] = []
        self.fail_after = fail_after

    def send_events(self, events: list[AudienceEvent]) -> dict[str, str | None]:
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise ConnectionError("receiver went away")
        self.batches.append(events)
        return {e.id: "refused" for e in events if e.uid == "u13"}

    @property
    def sent(self) -> list[AudienceEvent]:
        return [e for batch in self.batches for e in batch]


def run(dest: EventDestination, folder: Path, current: Path, previous: Path | None) -> SyncPlan:
    plan = SyncPlan(folder / "plan.db")
    if plan.step("planned") is None:
        plan.set_step("planned", plan_changes(plan, dest, current, previous))
    dest.act(plan)
    return plan


def test_enter_exit_change_events_carry_deterministic_ids(tmp_path: Path) -> None:
    before = snapshot(tmp_path / "a.db", [member(1), member(2), member(3)])
    after = snapshot(tmp_path / "b.db", [member(1, score=9), member(2, name="same-score"), member(4)])
    dest = RecordingEvents(events=("enter", "exit", "change"), trigger_fields=["score"], batch_size=2)
    with closing(run(dest, tmp_path, after, before)) as plan:
        planned = plan.step("planned")
    kinds = {(e.kind, e.uid) for e in dest.sent}
    assert kinds == {("enter", "u4"), ("exit", "u3"), ("change", "u1")}
    assert planned["untriggered_changes"] == 1  # u2 moved only "name", not a Field to Trigger
    for e in dest.sent:
        assert e.id == event_id("job", "run1", e.uid, e.kind)
        assert e.audience == "vip" and e.fields["_uid"] == e.uid
    exit_event = next(e for e in dest.sent if e.kind == "exit")
    assert exit_event.fields["email"] == "U3@Example.com"  # exits carry the member's last fields
    assert len({e.id for e in dest.sent}) == 3
    assert event_id("job", "run2", "u1", "change") != event_id("job", "run1", "u1", "change")


def test_kinds_not_chosen_are_not_sent(tmp_path: Path) -> None:
    before = snapshot(tmp_path / "a.db", [member(1), member(3)])
    after = snapshot(tmp_path / "b.db", [member(1, score=9), member(4)])
    dest = RecordingEvents(events=("enter",))
    run(dest, tmp_path, after, before).close()
    assert [(e.kind, e.uid) for e in dest.sent] == [("enter", "u4")]


def test_existing_users_off_sends_nothing_on_the_first_run(tmp_path: Path) -> None:
    first = snapshot(tmp_path / "a.db", [member(i) for i in range(5)])
    dest = RecordingEvents(existing_users=False, first_run=True)
    with closing(run(dest, tmp_path, first, None)) as plan:
        assert dest.sent == []
        assert plan.count_outcomes("enter", SKIPPED_EXISTING) == 5


def test_a_retry_resends_no_acknowledged_batch_and_keeps_the_ids(tmp_path: Path) -> None:
    first = snapshot(tmp_path / "a.db", [member(i) for i in range(10, 20)])
    dest = RecordingEvents(fail_after=2, batch_size=3)
    with pytest.raises(ConnectionError):
        run(dest, tmp_path, first, None)
    acknowledged = [e.id for e in dest.sent]
    assert len(acknowledged) == 6
    retry = RecordingEvents(batch_size=3)
    with closing(run(retry, tmp_path, first, None)) as plan:
        resent = [e.id for e in retry.sent]
        assert not set(resent) & set(acknowledged)
        assert len(acknowledged) + len(resent) == 10
        assert plan.count_outcomes("enter", SENT) == 9
        rejected = list(plan.iter_outcomes(rejected_only=True))
    assert [(r[3], r[6]) for r in rejected] == [("u13", "refused")]
    assert {e.id for e in dest.sent + retry.sent} == {
        event_id("job", "run1", f"u{i}", "enter") for i in range(10, 20)
    }


def test_the_standard_run_plans_guards_sends_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs

    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    dest = RecordingEvents(batch_size=4)

    class EventsOperator(AudienceSyncOperator):
        def make_destination(self, inputs: SyncRunInputs) -> EventDestination:
            return dest

    current = snapshot(tmp_path / "a.db", [member(i) for i in range(10, 20)])
    folder = tmp_path / "run"
    folder.mkdir()

    def inputs(dry_run: bool) -> SyncRunInputs:
        return SyncRunInputs(str(current), {"slug": "vip"}, 10, None, dry_run, folder, "run1", {})

    op = EventsOperator(task_id="deliver", job_id="job")
    dry = op.run_sync(inputs(dry_run=True))
    assert dry["dry_run"] is True and dry["planned"]["enters"] == 10 and dest.sent == []
    report = op.run_sync(inputs(dry_run=False))
    assert len(dest.sent) == 10
    assert report["outcomes"] == {"enter:Sent": 9, "enter:Rejected": 1}
    assert report["rejected"] == 1
    rejects = Path(report["rejects_file"]).read_text().splitlines()
    assert len(rejects) == 1 and '"reason": "refused"' in rejects[0]
