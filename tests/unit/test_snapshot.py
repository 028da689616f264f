"""Snapshots: exactly-once pages, resumable checkpoints and the enter/exit/change diff."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_member_without_key_is_set_aside_and_the_page_kept(tmp_path: Path) -> None:
    with Snapshot(tmp_path / "s.db") as snap:
        assert snap.add_page([{"email": "x@example.com"}, {"_uid": "u1"}], "") == 1
        assert snap.count() == 1 and snap.no_identity_count() == 1
        assert list(snap.iter_no_identity()) == [(1, {"email": "x@example.com"})]


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


def _body(members: list[dict]) -> bytes:
    return json.dumps({"status": 200, "data": members, "_next": "c"}).encode()


def test_raw_page_keeps_the_api_json_and_honours_the_limit(tmp_path: Path) -> None:
    body = b'{"data":[{"_uid":"a","email":"caf\\u00e9@example.com","n":1.50},{"_uid":"b"},{"_uid":"c"}]}'
    with Snapshot(tmp_path / "s.db") as snap:
        assert snap.add_raw_page(body, "next", total=3, limit=2) == 2
        records = list(snap.iter_records())
        assert [r["_uid"] for r in records] == ["a", "b"]
        assert records[0]["email"] == "café@example.com" and records[0]["n"] == 1.5
        assert snap.checkpoint.cursor == "next"


def test_empty_key_is_no_identity_and_the_page_is_kept(tmp_path: Path) -> None:
    with Snapshot(tmp_path / "s.db") as snap:
        assert snap.add_raw_page(_body([{"_uid": "a"}, {"_uid": ""}]), "c2") == 1
        assert snap.count() == 1 and snap.checkpoint.cursor == "c2"
        assert [record for _, record in snap.iter_no_identity()] == [{"_uid": ""}]


def test_key_order_and_escaping_are_not_changes_but_values_are(tmp_path: Path) -> None:
    with Snapshot(tmp_path / "old.db") as old:
        old.add_raw_page(b'{"data":[{"_uid":"a","x":"\\u00e9","y":1},{"_uid":"b","x":"q","y":[1,2]}]}', "")
        old.mark_complete()
    with Snapshot(tmp_path / "new.db") as new:
        new.add_raw_page(b'{"data":[{"y":1,"x":"\xc3\xa9","_uid":"a"},{"_uid":"b","x":"q","y":[2,1]}]}', "")
        new.mark_complete()
    changes = list(iter_changes(tmp_path / "new.db", tmp_path / "old.db", kinds=("change",)))
    assert [c.uid for c in changes] == ["b"]
    assert count_changes(tmp_path / "new.db", tmp_path / "old.db").changes == 1


def test_settings_survive_a_reset(tmp_path: Path) -> None:
    with Snapshot(tmp_path / "s.db", digest_fields=["email"]) as snap:
        snap.use_renderer("sig")
        snap.add_page(_members(range(3)), "c1", total=3)
        snap.mark_complete()
        snap.reset()
    with Snapshot(tmp_path / "s.db") as snap:
        assert snap.stored_digest_fields == ["email"]
        assert snap.get_meta("render_signature") == "sig"
        cp = snap.checkpoint
        assert (cp.cursor, cp.pages, cp.members, cp.complete, cp.total) == ("", 0, 0, False, None)


def test_an_unfinished_scan_in_the_older_layout_starts_over(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE members (uid TEXT NOT NULL, digest BLOB NOT NULL, record TEXT NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO members VALUES ('a', x'00', '{\"_uid\":\"a\"}');"
        "INSERT INTO meta VALUES ('cursor', 'c9');"
    )
    db.commit()
    db.close()
    with Snapshot(path) as snap:
        assert snap.checkpoint.cursor == "" and snap.count() == 0
        snap.add_page([{"_uid": "b"}], "")
        assert [r["_uid"] for r in snap.iter_records()] == ["b"]


def test_rendered_pages_only_when_every_page_matches(tmp_path: Path) -> None:
    from lytics_provider.pipeline.csv_render import CsvRowRenderer

    renderer = CsvRowRenderer(("_uid", "email"))
    pages = [_members(range(0, 3)), _members(range(3, 5))]
    with Snapshot(tmp_path / "s.db") as snap:
        snap.use_renderer(renderer.signature)
        for page in pages:
            snap.add_raw_page(_body(page), "c", rendered=renderer.render(page))
        assert snap.rendered_pages(renderer.signature) is None  # not complete yet
        snap.mark_complete()
        assert snap.rendered_pages("other") is None
        rendered = list(snap.rendered_pages(renderer.signature) or [])
    assert [page.rows for page in rendered] == [3, 2]
    assert rendered[0].text.startswith("u0,u0@example.com\r\n")

    with Snapshot(tmp_path / "dup.db") as snap:
        snap.use_renderer(renderer.signature)
        for page in (pages[0], pages[0][:1]):
            snap.add_raw_page(_body(page), "c", rendered=renderer.render(page))
        snap.mark_complete()
        assert snap.count() == 3
        assert snap.rendered_pages(renderer.signature) is None  # a member came twice
