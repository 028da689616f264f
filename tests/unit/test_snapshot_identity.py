"""Snapshots keyed by identity fields: members without ``_uid``, members without identity, older
baselines and members whose key field changed between runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lytics_provider.pipeline.csv_render import CsvRowRenderer
from lytics_provider.pipeline.identity import key_sql, normalize_identity_fields
from lytics_provider.pipeline.no_identity import write_no_identity_rejects
from lytics_provider.pipeline.snapshot import Snapshot, count_changes, iter_changes

IDENTITY = ["_uid", "email"]


def _body(members: list[dict]) -> bytes:
    return json.dumps({"status": 200, "data": members, "_next": "c"}).encode()


def _people(ids, with_uid=True, score=0) -> list[dict]:
    rows = []
    for i in ids:
        row = {"email": f"p{i}@example.com", "score": score}
        if with_uid:
            row["_uid"] = f"u{i}"
        rows.append(row)
    return rows


def _snapshot(path: Path, pages: list[list[dict]], identity=IDENTITY) -> Path:
    with Snapshot(path, identity_fields=identity) as snap:
        for page in pages:
            snap.add_raw_page(_body(page), "c")
        snap.mark_complete()
    return path


def _keys(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT uid FROM members ORDER BY rowid")]
    finally:
        db.close()


def test_first_present_identity_field_keys_the_member(tmp_path: Path) -> None:
    page = [
        {"_uid": "u1", "email": "a@example.com"},
        {"email": "b@example.com"},
        {"_uid": "", "email": "c@example.com"},
        {"_uid": None, "email": "d@example.com"},
    ]
    path = _snapshot(tmp_path / "s.db", [page])
    assert _keys(path) == ["u1", "email:b@example.com", "email:c@example.com", "email:d@example.com"]
    changes = list(iter_changes(path, None))
    assert [(c.kind, c.uid) for c in changes] == [("enter", key) for key in _keys(path)]
    assert changes[1].record == {"email": "b@example.com"}


def test_identity_fields_are_stored_with_the_snapshot(tmp_path: Path) -> None:
    path = _snapshot(tmp_path / "s.db", [_people(range(3), with_uid=False)])
    with Snapshot(path) as snap:
        assert snap.identity_fields == IDENTITY
        assert snap.count() == 3


def test_member_without_identity_goes_to_the_rejects_file_and_the_scan_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Snapshot(path, identity_fields=IDENTITY) as snap:
        assert snap.add_raw_page(_body([*_people([1]), {"score": 5}, *_people([2], False)]), "c1") == 2
    # a resumed scan (a new task attempt) continues after the committed page, and counts on
    with Snapshot(path, identity_fields=IDENTITY) as snap:
        assert snap.checkpoint.pages == 1
        assert snap.add_raw_page(_body([{"email": ""}, *_people([3])]), "") == 1
        snap.mark_complete()
        assert snap.count() == 3
        assert snap.no_identity_count() == 2
        rejects = tmp_path / "scan_rejects.jsonl"
        assert write_no_identity_rejects(snap, rejects) == 2
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [line["row_number"] for line in lines] == [2, 4]
    assert [line["record"] for line in lines] == [{"score": 5}, {"email": ""}]
    assert {line["reason"] for line in lines} == {"no identity: none of _uid, email present"}
    assert _keys(path) == ["u1", "email:p2@example.com", "u3"]


def test_page_with_a_member_without_identity_keeps_no_rendered_rows(tmp_path: Path) -> None:
    renderer = CsvRowRenderer(("email",))
    with Snapshot(tmp_path / "s.db", identity_fields=IDENTITY) as snap:
        snap.use_renderer(renderer.signature)
        for page in (_people([1, 2]), [*_people([3]), {"score": 1}]):
            snap.add_raw_page(_body(page), "c", rendered=renderer.render(page))
        snap.mark_complete()
        # the deliver task renders from the stored members instead, without the unkeyed one
        assert snap.rendered_pages(renderer.signature) is None
        assert [r["email"] for r in snap.iter_records()] == [
            "p1@example.com",
            "p2@example.com",
            "p3@example.com",
        ]


def test_baseline_written_before_identity_fields_diffs_without_spurious_exits(tmp_path: Path) -> None:
    """A snapshot in the layout the scan wrote before identity fields: key NOT NULL, raw _uid."""
    old = tmp_path / "old.db"
    db = sqlite3.connect(old)
    db.executescript(
        "CREATE TABLE members (uid TEXT NOT NULL CHECK (uid <> ''), record TEXT NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE rendered (page INTEGER PRIMARY KEY, rows INTEGER NOT NULL, "
        "rejected INTEGER NOT NULL, text TEXT NOT NULL, rejects TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('complete', '1'), ('pages', '1'), ('cursor', '');"
    )
    db.executemany(
        "INSERT INTO members VALUES (?, ?)", [(r["_uid"], json.dumps(r)) for r in _people(range(50))]
    )
    db.execute("CREATE UNIQUE INDEX members_uid ON members (uid)")
    db.commit()
    db.close()
    new = _snapshot(tmp_path / "new.db", [_people(range(50))])
    counts = count_changes(new, old)
    assert (counts.enters, counts.exits, counts.changes, counts.unchanged) == (0, 0, 0, 50)
    assert list(iter_changes(new, old)) == []
    # the old file still reads as a _uid-keyed snapshot
    with Snapshot(old) as snap:
        assert snap.identity_fields == ["_uid"] and snap.count() == 50


def test_key_field_change_is_one_exit_and_one_enter(tmp_path: Path) -> None:
    """p1 had no _uid last run (keyed by email) and has one now: exit email:p1..., enter u1."""
    old = _snapshot(tmp_path / "old.db", [_people([0]) + _people([1], with_uid=False)])
    new = _snapshot(tmp_path / "new.db", [_people([0, 1])])
    changes = {(c.kind, c.uid) for c in iter_changes(new, old)}
    assert changes == {("exit", "email:p1@example.com"), ("enter", "u1")}
    counts = count_changes(new, old)
    assert (counts.enters, counts.exits, counts.unchanged) == (1, 1, 1)


def test_other_identity_fields_restart_an_unfinished_scan(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Snapshot(path, identity_fields=["_uid"]) as snap:
        snap.add_raw_page(_body(_people([1, 2])), "c1")
    with Snapshot(path, identity_fields=IDENTITY) as snap:
        assert snap.checkpoint.pages == 0 and snap.count() == 0
        snap.add_raw_page(_body(_people([3], with_uid=False)), "")
        assert _keys(path) == ["email:p3@example.com"]


def test_unfinished_scan_in_the_older_layout_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE members (uid TEXT NOT NULL CHECK (uid <> ''), record TEXT NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO members VALUES ('a', '{\"_uid\":\"a\"}');"
        "INSERT INTO meta VALUES ('cursor', 'c9'), ('pages', '1');"
    )
    db.commit()
    db.close()
    with Snapshot(path, identity_fields=IDENTITY) as snap:
        assert snap.checkpoint.cursor == "" and snap.count() == 0
        snap.add_raw_page(_body([{"email": "e@example.com"}]), "")
        assert snap.count() == 1


def test_dotted_identity_field_and_quoting(tmp_path: Path) -> None:
    fields = ["_uid", "ids.crm", "it's"]
    path = _snapshot(tmp_path / "s.db", [[{"ids": {"crm": 7}}, {"it's": "x"}]], fields)
    assert _keys(path) == ["ids.crm:7", "it's:x"]
    assert "COALESCE" in key_sql(fields, "r")


@pytest.mark.parametrize("bad", [[], [""], ["email", "email"]])
def test_unusable_identity_fields_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="identity_fields"):
        normalize_identity_fields(bad)
