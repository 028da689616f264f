"""Audience snapshots: one SQLite file per scan, keyed by each member's identity.

A snapshot holds every member of an audience once, as the JSON the API sent, and the scan cursor
committed in the same transaction as the page it follows. That makes a killed scan resumable
from its last committed page, exactly once.

A scan page goes from the HTTP body to rows without becoming Python objects: SQLite splits the
body with ``json_each`` in one statement, which runs without holding the GIL. Pages are appended
in scan order; the unique index on the member key is built once, when the scan is marked
complete (sorting once is far cheaper than keeping a random-key index up to date on every
insert). A member that appears twice is kept once, at its last position.

The key is the first of the snapshot's identity fields the member has (see
``pipeline.identity``; ``_uid`` alone by default). A member with none of them is moved to the
``no_identity`` table in the same transaction as its page, so a resumed scan stores it once too.

Changes between two runs are found by comparing records: SQL picks the members whose stored
text differs, and only those are decoded and compared as values (on the snapshot's
``digest_fields`` when it has them), so key order or escaping never counts as a change.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from lytics_provider.pipeline.csv_render import RenderedRows
from lytics_provider.pipeline.gcpause import paused_gc
from lytics_provider.pipeline.identity import UID, key_sql, normalize_identity_fields

_encode = msgspec.json.Encoder(enc_hook=str).encode
_encode_sorted = msgspec.json.Encoder(enc_hook=str, order="sorted").encode
_decode = msgspec.json.Decoder().decode
_decode_list = msgspec.json.Decoder(list[dict[str, Any]]).decode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (uid TEXT CHECK (uid <> ''), record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS no_identity (ordinal INTEGER PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rendered (
    page INTEGER PRIMARY KEY, rows INTEGER NOT NULL, rejected INTEGER NOT NULL,
    text TEXT NOT NULL, rejects TEXT NOT NULL
);
"""

_MEMBERS_TABLE = "CREATE TABLE members (uid TEXT CHECK (uid <> ''), record TEXT NOT NULL)"


def _insert_page_sql(identity_fields: list[str]) -> str:
    """One page body in (``?1``), one row per member out, in page order (``?2``: members to keep,
    or NULL); a member without identity gets a NULL key."""
    return (
        "INSERT OR REPLACE INTO members (uid, record) "
        f"SELECT {key_sql(identity_fields, 'm.value')}, m.value FROM json_each(?1, '$.data') AS m "
        "WHERE ?2 IS NULL OR m.key < ?2 ORDER BY m.key"
    )


def record_digest(record: dict[str, Any], fields: Sequence[str] | None = None) -> bytes:
    """Stable 16-byte digest of ``record`` (only ``fields`` when given)."""
    subject = record if fields is None else {name: record.get(name) for name in fields}
    return hashlib.blake2b(_encode_sorted(subject), digest_size=16).digest()


def decode_record(text: str | bytes) -> dict[str, Any]:
    """Decode one stored member record."""
    return _decode(text)


def _stored_digest_fields(db: sqlite3.Connection) -> list[str] | None:
    """The ``digest_fields`` a snapshot was written with (None: the whole record counts)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'digest_fields'").fetchone()
    return json.loads(row[0]) if row and row[0] else None


def _same_values(fields: Sequence[str] | None) -> Any:
    """SQL function ``same_record(a, b)``: 1 when two stored records hold the same values."""

    def same(left: str, right: str) -> int:
        a, b = _decode(left), _decode(right)
        if fields is None:
            return int(a == b)
        return int(all(a.get(name) == b.get(name) for name in fields))

    return same


@dataclass(frozen=True)
class ScanCheckpoint:
    """Where a scan stands: the cursor to continue from, pages and members so far."""

    cursor: str
    pages: int
    members: int
    complete: bool
    total: int | None


class Snapshot:
    """A member snapshot on disk; use as a context manager.

    ``identity_fields``: the fields that key a member, first present wins (see
    ``pipeline.identity``). Given, they are stored with the snapshot, and a snapshot scanned with
    other identity fields starts over; left out, the stored ones apply (``_uid`` for a snapshot
    written before identity fields existed).
    """

    def __init__(
        self,
        path: Path | str,
        key: str = UID,
        digest_fields: Sequence[str] | None = None,
        identity_fields: Sequence[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.digest_fields = list(digest_fields) if digest_fields else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._drop_partial_legacy_scan()
        self.db.executescript(_SCHEMA)
        self._pages: int | None = None
        self._scanned = 0
        stored = self._meta("identity_fields")
        if identity_fields is None:
            self.identity_fields = json.loads(stored) if stored else [key]
        else:
            self.identity_fields = normalize_identity_fields(identity_fields)
            if (json.loads(stored) if stored else [UID]) != self.identity_fields and self._has_scan():
                self.reset()
            self.set_meta("identity_fields", json.dumps(self.identity_fields))
        self.key = self.identity_fields[0]
        self._insert_page = _insert_page_sql(self.identity_fields)
        if self.digest_fields is not None:
            self.set_meta("digest_fields", json.dumps(self.digest_fields))

    def _has_scan(self) -> bool:
        """True when pages were stored (a scan started or finished)."""
        return bool(self._meta("pages") or self.db.execute("SELECT 1 FROM members LIMIT 1").fetchone())

    def _drop_partial_legacy_scan(self) -> None:
        """Start over on an unfinished scan stored in an older layout (with a digest column, or
        a key that may not be NULL)."""
        columns = {row[1]: row[3] for row in self.db.execute("PRAGMA table_info(members)")}
        if "digest" not in columns and not columns.get("uid"):
            return
        complete = (
            self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
            and self.db.execute("SELECT 1 FROM meta WHERE key = 'complete' AND value = '1'").fetchone()
        )
        if not complete and "digest" in columns:
            self.db.executescript("DROP TABLE members; DROP TABLE IF EXISTS meta;")
        elif not complete:
            self.db.executescript("DROP TABLE members; DROP TABLE IF EXISTS rendered;")
            if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
                self.db.execute("DELETE FROM meta WHERE key IN ('cursor', 'pages', 'total', 'complete')")

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (checkpointing the WAL into the main file)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()

    def _meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    @property
    def checkpoint(self) -> ScanCheckpoint:
        """The committed scan position."""
        total = self._meta("total")
        return ScanCheckpoint(
            cursor=self._meta("cursor", "") or "",
            pages=int(self._meta("pages", "0") or 0),
            members=self.count(),
            complete=self._meta("complete") == "1",
            total=int(total) if total not in (None, "") else None,
        )

    def count(self) -> int:
        """Members stored (each key counted once)."""
        what = "*" if self._indexed() else "DISTINCT uid"
        query = f"SELECT count({what}) FROM members"
        return int(self.db.execute(query).fetchone()[0])

    def _indexed(self) -> bool:
        """True when member keys are unique by construction (index built, or an older key schema)."""
        row = self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND tbl_name = 'members' "
            "AND (name = 'members_uid' OR name LIKE 'sqlite_autoindex_members%')"
        ).fetchone()
        return row is not None

    def _build_index(self) -> None:
        """Create the unique key index, first dropping earlier copies of any member seen twice."""
        if self._indexed():
            return
        try:
            self.db.execute("CREATE UNIQUE INDEX members_uid ON members (uid)")
        except sqlite3.IntegrityError:
            self.db.execute("BEGIN")
            self.db.execute(
                "DELETE FROM members WHERE rowid NOT IN (SELECT max(rowid) FROM members GROUP BY uid)"
            )
            self.db.execute("DELETE FROM rendered")  # those rows hold the duplicates
            self.db.execute("CREATE UNIQUE INDEX members_uid ON members (uid)")
            self.db.execute("COMMIT")

    def add_page(self, members: Iterable[dict[str, Any]], next_cursor: str, total: int | None = None) -> int:
        """Store one page of member dicts and the cursor after it; return rows written."""
        page = members if isinstance(members, list) else list(members)
        return self.add_raw_page(_encode({"data": page}), next_cursor, total)

    def add_raw_page(
        self,
        body: bytes | str,
        next_cursor: str,
        total: int | None = None,
        limit: int | None = None,
        rendered: RenderedRows | None = None,
    ) -> int:
        """Store a scan page body (``{"data": [...]}``) and the cursor after it in one transaction.

        ``limit`` keeps only the page's first members; ``rendered`` (the same members as CSV rows,
        see :meth:`use_renderer`) is stored with them. Returns rows written; a member without the
        identity (none of the identity fields present and not empty) is moved to the
        ``no_identity`` table instead, and the page's ``rendered`` rows are not kept.
        """
        text = body.decode() if isinstance(body, bytes | bytearray) else body
        if self._pages is None:
            self._pages = int(self._meta("pages", "0") or 0)
            self._scanned = int(self._meta("scanned", "0") or 0)
        pages, scanned = self._pages + 1, self._scanned
        self.db.execute("BEGIN")
        try:
            inserted = self.db.execute(self._insert_page, (text, limit))
            rows = inserted.rowcount
            before = (inserted.lastrowid or 0) - rows  # the page's rows are before+1 .. before+rows
            unkeyed = 0
            if rows:
                unkeyed = self.db.execute(
                    "INSERT OR REPLACE INTO no_identity SELECT ? + rowid - ?, record FROM members "
                    "WHERE rowid > ? AND uid IS NULL",
                    (scanned, before, before),
                ).rowcount
            if unkeyed:
                self.db.execute("DELETE FROM members WHERE rowid > ? AND uid IS NULL", (before,))
                rendered = None
            if rendered is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO rendered VALUES (?, ?, ?, ?, ?)",
                    (
                        pages,
                        rendered.rows,
                        len(rendered.rejects),
                        rendered.text,
                        _encode(rendered.rejects).decode(),
                    ),
                )
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [
                    ("cursor", next_cursor),
                    ("pages", str(pages)),
                    ("total", "" if total is None else str(total)),
                    ("scanned", str(scanned + rows)),
                ],
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self._pages, self._scanned = pages, scanned + rows
        return rows - unkeyed

    def use_renderer(self, signature: str) -> None:
        """Pages added from now on carry rows rendered with ``signature``; rows rendered with
        another one are dropped (:meth:`rendered_pages` then finds pages without rows)."""
        if self._meta("render_signature") == signature:
            return
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM rendered")
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('render_signature', ?)", (signature,))
        self.db.execute("COMMIT")

    def rendered_pages(self, signature: str) -> Iterator[RenderedRows] | None:
        """The rendered rows of every page in scan order, or None unless every page of the
        complete scan was rendered with ``signature`` and no member appeared twice."""
        checkpoint = self.checkpoint
        if not checkpoint.complete or self._meta("render_signature") != signature:
            return None
        pages, rows = self.db.execute(
            "SELECT count(*), coalesce(sum(rows + rejected), 0) FROM rendered"
        ).fetchone()
        if pages != checkpoint.pages or rows != checkpoint.members:
            return None
        return self._iter_rendered()

    def _iter_rendered(self) -> Iterator[RenderedRows]:
        for rows, text, rejects in self.db.execute("SELECT rows, text, rejects FROM rendered ORDER BY page"):
            yield RenderedRows(text, rows, [tuple(r) for r in _decode(rejects)] if rejects != "[]" else [])

    def mark_complete(self) -> None:
        """Record that the scan reached its last page (and index the member keys)."""
        self._build_index()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")

    def reset(self) -> None:
        """Forget every member and the scan's position (a scan that must restart from the first
        page); the snapshot's settings and notes (digest fields, render signature) stay."""
        self.db.execute("BEGIN")
        self.db.execute("DROP TABLE members")  # recreated in the current layout
        self.db.execute(_MEMBERS_TABLE)
        self.db.execute("DELETE FROM no_identity")
        self.db.execute(
            "DELETE FROM meta WHERE key IN ('cursor', 'pages', 'total', 'complete', 'scanned')"
        )
        self.db.execute("DELETE FROM rendered")
        self.db.execute("COMMIT")
        self._pages, self._scanned = 0, 0

    def set_meta(self, key: str, value: str) -> None:
        """Store a free-form note (for example the audience name)."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """Read a note stored with ``set_meta``."""
        return self._meta(key, default)

    def no_identity_count(self) -> int:
        """Members left out because they have none of the identity fields."""
        return int(self.db.execute("SELECT count(*) FROM no_identity").fetchone()[0])

    def iter_no_identity(self, batch: int = 5000) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(position in the scan, record)`` of every member without identity, in scan order."""
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT ordinal, record FROM no_identity WHERE ordinal > ? ORDER BY ordinal LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            for ordinal, record in rows:
                yield ordinal, _decode(record)
            last = rows[-1][0]

    def iter_keyed(self, batch: int = 5000) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(key, record)`` of every member, in scan order."""
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT rowid, uid, record FROM members WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            with paused_gc():
                records = _decode_list("[" + ",".join(row[2] for row in rows) + "]")
            yield from zip((row[1] for row in rows), records, strict=True)
            last = rows[-1][0]

    def iter_records(self, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every member, in scan order, streamed in batches."""
        for records in self.iter_record_batches(batch):
            yield from records

    def iter_record_batches(self, batch: int = 5000) -> Iterator[list[dict[str, Any]]]:
        """Every member, in scan order, as lists of up to ``batch`` records (one decode per list)."""
        last = 0
        while True:
            top, text = self.db.execute(
                "SELECT max(rowid), '[' || group_concat(record, ',') || ']' FROM "
                "(SELECT rowid, record FROM members WHERE rowid > ? ORDER BY rowid LIMIT ?)",
                (last, batch),
            ).fetchone()
            if top is None:
                return
            with paused_gc():
                records = _decode_list(text)
            yield records
            last = top

    @property
    def stored_digest_fields(self) -> list[str] | None:
        """The fields a change is judged on (None: the whole record)."""
        return _stored_digest_fields(self.db)


@dataclass(frozen=True)
class Change:
    """One difference between two snapshots."""

    kind: str  # "enter", "exit" or "change"
    uid: str
    record: dict[str, Any]
    previous: dict[str, Any] | None = None  # the previous run's record (changes and exits)


@dataclass
class DiffCounts:
    """How many members entered, exited, changed and stayed the same."""

    enters: int = 0
    exits: int = 0
    changes: int = 0
    unchanged: int = 0


_CHANGED = "c.record != p.record AND NOT same_record(c.record, p.record)"
_DIFF_QUERIES = {
    "enter": "SELECT c.rowid, c.uid, c.record, NULL FROM members c LEFT JOIN prev.members p ON p.uid = c.uid "
    "WHERE p.uid IS NULL AND c.rowid > ? ORDER BY c.rowid LIMIT ?",
    "change": "SELECT c.rowid, c.uid, c.record, p.record FROM members c JOIN prev.members p ON p.uid = c.uid "
    f"WHERE {_CHANGED} AND c.rowid > ? ORDER BY c.rowid LIMIT ?",
    "exit": "SELECT p.rowid, p.uid, p.record, NULL FROM prev.members p LEFT JOIN members c ON c.uid = p.uid "
    "WHERE c.uid IS NULL AND p.rowid > ? ORDER BY p.rowid LIMIT ?",
}


def _open_pair(current: Path | str, previous: Path | str) -> sqlite3.Connection:
    """A read-only connection to ``current`` with ``previous`` attached as ``prev``."""
    db = sqlite3.connect(f"file:{Path(current)}?mode=ro", uri=True)
    db.create_function("same_record", 2, _same_values(_stored_digest_fields(db)), deterministic=True)
    db.execute("ATTACH DATABASE ? AS prev", (f"file:{Path(previous)}?mode=ro",))
    return db


def iter_changes(
    current: Path | str,
    previous: Path | str | None,
    kinds: Sequence[str] = ("enter", "change", "exit"),
    batch: int = 5000,
) -> Iterator[Change]:
    """Stream the changes from ``previous`` to ``current`` (every member enters when there is none).

    Members are matched by their stored keys: one whose key changed between the two runs (see
    ``pipeline.identity``) is an exit under the old key and an enter under the new one. A change
    carries the previous record in ``previous`` (an exit's ``record`` is its previous record).
    """
    if previous is None:
        if "enter" in kinds:
            with Snapshot(current) as snap:
                for uid, record in snap.iter_keyed(batch):
                    yield Change("enter", uid, record)
        return
    db = _open_pair(current, previous)
    try:
        for kind in kinds:
            query = _DIFF_QUERIES[kind]
            last = 0
            while True:
                rows = db.execute(query, (last, batch)).fetchall()
                if not rows:
                    break
                for _, uid, record, before in rows:
                    decoded = _decode(record)
                    previous_record = decoded if kind == "exit" else before and _decode(before)
                    yield Change(kind, uid, decoded, previous_record)
                last = rows[-1][0]
    finally:
        db.close()


def member_count(path: Path | str) -> int:
    """Members of a snapshot file (opened read-only)."""
    db = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM members").fetchone()[0])
    finally:
        db.close()


def count_changes(current: Path | str, previous: Path | str | None) -> DiffCounts:
    """Count enters, exits, changes and unchanged members (only changed candidates are decoded)."""
    if previous is None:
        db = sqlite3.connect(f"file:{Path(current)}?mode=ro", uri=True)
        try:
            return DiffCounts(enters=db.execute("SELECT count(*) FROM members").fetchone()[0])
        finally:
            db.close()
    db = _open_pair(current, previous)
    try:
        total = db.execute("SELECT count(*) FROM members").fetchone()[0]
        both = db.execute("SELECT count(*) FROM members c JOIN prev.members p ON p.uid = c.uid").fetchone()[0]
        changed = db.execute(
            f"SELECT count(*) FROM members c JOIN prev.members p ON p.uid = c.uid WHERE {_CHANGED}"
        ).fetchone()[0]
        prev_total = db.execute("SELECT count(*) FROM prev.members").fetchone()[0]
        return DiffCounts(
            enters=total - both, exits=prev_total - both, changes=changed, unchanged=both - changed
        )
    finally:
        db.close()
