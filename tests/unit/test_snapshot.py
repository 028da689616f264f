"""Snapshots: exactly-once pages, resumable checkpoints and the enter/exit/change diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from lytics_provider.pipeline.snapshot import Snapshot, count_changes, iter_changes


def _members(ids, value=0):
    return [{"_uid": f"u{i}", "email": f"u{i}@example.com", "score": value} for i in ids]


def test_page_written_twice_is_stored_once(tmp_path: Path) -> None:
    with Snapshot(tmp_path / "s.db") as snap:
        snap.add_page(_members(range(0, 10)), "c1", total=20)
        snap.add_page(_members(range(0, 10)), "c1", total=20)
        snap.add_page(_members(range(10, 20)), "", total=20)
        snap.mark_complete()
        assert snap.count() == 20
        assert [r["_uid"] for r in snap.iter_records(batch=7)] == [f"u{i}" for i in range(20)]
        assert snap.checkpoint.complete and snap.checkpoint.total == 20


def test_checkpoint_survives_reopen_and_reset(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Snapshot(path) as snap:
        snap.add_page(_members(range(5)), "cursor-2")
    with Snapshot(path) as snap:
        cp = snap.checkpoint
        assert (cp.cursor, cp.pages, cp.members, cp.complete) == ("cursor-2", 1, 5, False)
        snap.reset()
        assert snap.checkpoint.members == 0 and snap.checkpoint.cursor == ""


def test_member_without_key_is_an_error(tmp_path: Path) -> None:
    with Snapshot(tmp_path / "s.db") as snap, pytest.raises(ValueError, match="_uid"):
        snap.add_page([{"email": "x@example.com"}], "")


def test_diff_enters_exits_changes(tmp_path: Path) -> None:
    with Snapshot(tmp_path / "old.db") as old:
        old.add_page(_members(range(0, 100)), "")
    with Snapshot(tmp_path / "new.db") as new:
        new.add_page(
            _members(range(10, 95)) + _members(range(95, 100), value=1) + _members(range(100, 120)), ""
        )
    changes = list(iter_changes(tmp_path / "new.db", tmp_path / "old.db", batch=8))
    by_kind: dict[str, set[str]] = {}
    for change in changes:
        by_kind.setdefault(change.kind, set()).add(change.uid)
    assert by_kind["enter"] == {f"u{i}" for i in range(100, 120)}
    assert by_kind["exit"] == {f"u{i}" for i in range(0, 10)}
    assert by_kind["change"] == {f"u{i}" for i in range(95, 100)}
    counts = count_changes(tmp_path / "new.db", tmp_path / "old.db")
    assert (counts.enters, counts.exits, counts.changes, counts.unchanged) == (20, 10, 5, 85)


def test_digest_fields_limit_change_detection(tmp_path: Path) -> None:
    with Snapshot(tmp_path / "old.db", digest_fields=["email"]) as old:
        old.add_page(_members(range(3)), "")
    with Snapshot(tmp_path / "new.db", digest_fields=["email"]) as new:
        new.add_page(_members(range(3), value=9), "")
    assert count_changes(tmp_path / "new.db", tmp_path / "old.db").changes == 0


def test_no_previous_snapshot_means_everyone_enters(tmp_path: Path) -> None:
    with Snapshot(tmp_path / "new.db") as new:
        new.add_page(_members(range(4)), "")
    assert [c.kind for c in iter_changes(tmp_path / "new.db", None)] == ["enter"] * 4
    assert count_changes(tmp_path / "new.db", None).enters == 4
