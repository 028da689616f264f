"""Audience snapshots: one SQLite file per scan, keyed by the member's stable id.

A snapshot holds every member of an audience once, a digest of the fields that matter for
change detection, and the scan cursor committed in the same transaction as the page it follows.
That makes a killed scan resumable from its last committed page, exactly once.

Pages are appended in scan order; the unique index on the member key is built once, when the
scan is marked complete (sorting once is far cheaper than keeping a random-key index up to date
on every insert). A member that appears twice is kept once, at its last position.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

_encode = msgspec.json.Encoder(enc_hook=str).encode
_encode_sorted = msgspec.json.Encoder(enc_hook=str, order="sorted").encode
_decode = msgspec.json.Decoder().decode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (uid TEXT NOT NULL, digest BLOB NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


# One page in, one row per member out, in page order; digests arrive as 16-byte slices of one blob.
_INSERT_PAGE = (
    "INSERT OR REPLACE INTO members (uid, digest, record) "
    "SELECT CAST(json_extract(m.value, ?3) AS TEXT), substr(?2, m.key * 16 + 1, 16), m.value "
    "FROM json_each(?1) AS m ORDER BY m.key"
)


def record_digest(record: dict[str, Any], fields: Sequence[str] | None = None) -> bytes:
    """Stable 16-byte digest of ``record`` (only ``fields`` when given)."""
    subject = record if fields is None else {name: record.get(name) for name in fields}
    return hashlib.blake2b(_encode_sorted(subject), digest_size=16).digest()


def decode_record(text: str | bytes) -> dict[str, Any]:
    """Decode one stored member record."""
    return _decode(text)


@dataclass(frozen=True)
class ScanCheckpoint:
    """Where a scan stands: the cursor to continue from, pages and members so far."""

    cursor: str
    pages: int
    members: int
    complete: bool
    total: int | None


class Snapshot:
    """A member snapshot on disk; use as a context manager."""

    def __init__(
        self, path: Path | str, key: str = "_uid", digest_fields: Sequence[str] | None = None
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.digest_fields = list(digest_fields) if digest_fields else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self._pages: int | None = None
        self._key_path = '$."' + key.replace('"', '\\"') + '"'

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
            self.db.execute("CREATE UNIQUE INDEX members_uid ON members (uid)")
            self.db.execute("COMMIT")

    def add_page(self, members: Iterable[dict[str, Any]], next_cursor: str, total: int | None = None) -> int:
        """Store one page and the cursor after it in a single transaction; return rows written.

        Python only checks the keys and computes the digests; SQLite splits the page (encoded once)
        into rows with ``json_each`` in one statement, which runs without holding the GIL.
        """
        key, fields, blake2b = self.key, self.digest_fields, hashlib.blake2b
        page = members if isinstance(members, list) else list(members)
        digests = bytearray()
        for member in page:
            uid = member.get(key)
            if uid is None or uid == "":
                raise ValueError(f"scan returned a member without {key!r}")
            subject = member if fields is None else {name: member.get(name) for name in fields}
            digests += blake2b(_encode_sorted(subject), digest_size=16).digest()
        body = _encode(page).decode()
        if self._pages is None:
            self._pages = int(self._meta("pages", "0") or 0)
        pages = self._pages + 1
        self.db.execute("BEGIN")
        try:
            self.db.execute(_INSERT_PAGE, (body, bytes(digests), self._key_path))
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [
                    ("cursor", next_cursor),
                    ("pages", str(pages)),
                    ("total", "" if total is None else str(total)),
                ],
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self._pages = pages
        return len(page)

    def mark_complete(self) -> None:
        """Record that the scan reached its last page (and index the member keys)."""
        self._build_index()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('complete', '1')")

    def reset(self) -> None:
        """Forget every member and the cursor (a scan that must restart from the first page)."""
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM members")
        self.db.execute("DELETE FROM meta")
        self.db.execute("DROP INDEX IF EXISTS members_uid")
        self.db.execute("COMMIT")
        self._pages = 0

    def set_meta(self, key: str, value: str) -> None:
        """Store a free-form note (for example the audience name)."""
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """Read a note stored with ``set_meta``."""
        return self._meta(key, default)

    def iter_records(self, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every member, in scan order, streamed in batches."""
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT rowid, record FROM members WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            for _, record in rows:
                yield _decode(record)
            last = rows[-1][0]


@dataclass(frozen=True)
class Change:
    """One difference between two snapshots."""

    kind: str  # "enter", "exit" or "change"
    uid: str
    record: dict[str, Any]


@dataclass
class DiffCounts:
    """How many members entered, exited, changed and stayed the same."""

    enters: int = 0
    exits: int = 0
    changes: int = 0
    unchanged: int = 0


_DIFF_QUERIES = {
    "enter": "SELECT c.rowid, c.uid, c.record FROM members c LEFT JOIN prev.members p ON p.uid = c.uid "
    "WHERE p.uid IS NULL AND c.rowid > ? ORDER BY c.rowid LIMIT ?",
    "change": "SELECT c.rowid, c.uid, c.record FROM members c JOIN prev.members p ON p.uid = c.uid "
    "WHERE p.digest != c.digest AND c.rowid > ? ORDER BY c.rowid LIMIT ?",
    "exit": "SELECT p.rowid, p.uid, p.record FROM prev.members p LEFT JOIN members c ON c.uid = p.uid "
    "WHERE c.uid IS NULL AND p.rowid > ? ORDER BY p.rowid LIMIT ?",
}


def iter_changes(
    current: Path | str,
    previous: Path | str | None,
    kinds: Sequence[str] = ("enter", "change", "exit"),
    batch: int = 5000,
) -> Iterator[Change]:
    """Stream the changes from ``previous`` to ``current`` (every member enters when there is none)."""
    db = sqlite3.connect(f"file:{Path(current)}?mode=ro", uri=True)
    try:
        if previous is None:
            if "enter" in kinds:
                with Snapshot(current) as snap:
                    for record in snap.iter_records(batch):
                        yield Change("enter", str(record.get(snap.key)), record)
            return
        db.execute("ATTACH DATABASE ? AS prev", (f"file:{Path(previous)}?mode=ro",))
        for kind in kinds:
            query = _DIFF_QUERIES[kind]
            last = 0
            while True:
                rows = db.execute(query, (last, batch)).fetchall()
                if not rows:
                    break
                for _, uid, record in rows:
                    yield Change(kind, uid, _decode(record))
                last = rows[-1][0]
    finally:
        db.close()


def count_changes(current: Path | str, previous: Path | str | None) -> DiffCounts:
    """Count enters, exits, changes and unchanged members without reading records."""
    db = sqlite3.connect(f"file:{Path(current)}?mode=ro", uri=True)
    try:
        total = db.execute("SELECT count(*) FROM members").fetchone()[0]
        if previous is None:
            return DiffCounts(enters=total)
        db.execute("ATTACH DATABASE ? AS prev", (f"file:{Path(previous)}?mode=ro",))
        both = db.execute("SELECT count(*) FROM members c JOIN prev.members p ON p.uid = c.uid").fetchone()[0]
        changed = db.execute(
            "SELECT count(*) FROM members c JOIN prev.members p ON p.uid = c.uid WHERE p.digest != c.digest"
        ).fetchone()[0]
        prev_total = db.execute("SELECT count(*) FROM prev.members").fetchone()[0]
        return DiffCounts(
            enters=total - both, exits=prev_total - both, changes=changed, unchanged=both - changed
        )
    finally:
        db.close()
