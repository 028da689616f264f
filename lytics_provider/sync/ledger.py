"""Tracked removals: the per-job ledger of members the job added to each destination target.

An exit is sent (removed or unsubscribed) only for a member this job added; a member someone
else put in the list is left alone. A run's acknowledged adds and removals are written as
*pending* entries under its run id; they join the ledger when that run becomes the job's committed
baseline (checked when the next run plans), so the ledger always matches the diff base. A run
that never commits leaves no trace: its members enter again on the next run.

A target seen for the first time with a baseline already committed (a job that ran before the
ledger existed) is seeded with the baseline's members, which the job delivered.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from lytics_provider.pipeline.workarea import job_dir

LEDGER_NAME = "sync_ledger.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (target TEXT NOT NULL, ident TEXT NOT NULL, PRIMARY KEY (target, ident));
CREATE TABLE IF NOT EXISTS pending (
    run_id TEXT NOT NULL, op TEXT NOT NULL, target TEXT NOT NULL, ident TEXT NOT NULL,
    PRIMARY KEY (run_id, target, ident));
CREATE TABLE IF NOT EXISTS tracked (target TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS folded (run_id TEXT PRIMARY KEY);
"""


class MemberLedger:
    """The ledger of one job (a SQLite file in the job's folder)."""

    def __init__(self, job_id: str, path: Path | None = None) -> None:
        self.path = path or job_dir(job_id) / LEDGER_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def fold(self, committed_run: str | None) -> int:
        """Apply the pending entries of the committed run (once); return how many."""
        if (
            not committed_run
            or self.db.execute("SELECT 1 FROM folded WHERE run_id = ?", (committed_run,)).fetchone()
        ):
            return 0
        self.db.execute("BEGIN")
        added = self.db.execute(
            "INSERT OR IGNORE INTO members SELECT target, ident FROM pending WHERE run_id = ? AND op = 'add'",
            (committed_run,),
        ).rowcount
        removed = self.db.execute(
            "DELETE FROM members WHERE EXISTS (SELECT 1 FROM pending p WHERE p.run_id = ? "
            "AND p.op = 'remove' AND p.target = members.target AND p.ident = members.ident)",
            (committed_run,),
        ).rowcount
        self.db.execute("DELETE FROM pending WHERE run_id = ?", (committed_run,))
        self.db.execute("INSERT INTO folded VALUES (?)", (committed_run,))
        self.db.execute("COMMIT")
        return added + removed

    def tracks(self, target: str) -> bool:
        return self.db.execute("SELECT 1 FROM tracked WHERE target = ?", (target,)).fetchone() is not None

    def track(self, target: str, seed: Iterable[str] = ()) -> int:
        """Start tracking ``target``, with ``seed`` identifiers counted as added; return how many."""
        self.db.execute("BEGIN")
        count = 0
        batch: list[tuple[str, str]] = []
        for ident in seed:
            batch.append((target, ident))
            if len(batch) >= 5000:
                count += self._insert(batch)
                batch = []
        count += self._insert(batch)
        self.db.execute("INSERT OR IGNORE INTO tracked VALUES (?)", (target,))
        self.db.execute("COMMIT")
        return count

    def _insert(self, rows: list[tuple[str, str]]) -> int:
        if rows:
            self.db.executemany("INSERT OR IGNORE INTO members VALUES (?, ?)", rows)
        return len(rows)

    def added(self, target: str, idents: Sequence[str]) -> set[str]:
        """The identifiers among ``idents`` the job added to ``target`` (committed runs)."""
        found: set[str] = set()
        for start in range(0, len(idents), 500):
            chunk = list(idents[start : start + 500])
            marks = ",".join("?" * len(chunk))
            query = f"SELECT ident FROM members WHERE target = ? AND ident IN ({marks})"
            found.update(r[0] for r in self.db.execute(query, (target, *chunk)))
        return found

    def record_run(self, run_id: str, entries: Iterable[tuple[str, str, str]]) -> int:
        """Store a run's acknowledged (op, target, ident) entries, op ``add`` or ``remove``, as pending
        (idempotent: a retried run rewrites them)."""
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM pending WHERE run_id = ?", (run_id,))
        cur = self.db.executemany(
            "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?)",
            ((run_id, op, target, ident) for op, target, ident in entries),
        )
        self.db.execute("COMMIT")
        return cur.rowcount

    def count(self, target: str | None = None) -> int:
        if target is None:
            return int(self.db.execute("SELECT count(*) FROM members").fetchone()[0])
        query = "SELECT count(*) FROM members WHERE target = ?"
        return int(self.db.execute(query, (target,)).fetchone()[0])
