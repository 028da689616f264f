"""The run-local plan file: planned work, finished steps and per-row outcomes (SQLite).

``work`` holds one row per action to send (``kind`` such as add / remove / unsubscribe, the
destination ``target`` such as a list or address book, the member's snapshot key ``uid``, its
normalised identifier ``ident``, an optional destination reference ``ref`` and a JSON ``payload``).
``steps`` holds named progress values (checkpoints, bulk job ids) so a retried task reconnects
instead of resending. ``outcomes`` holds what happened to each (ident, target, action).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS work (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL, uid TEXT NOT NULL,
    ident TEXT NOT NULL, ref TEXT, payload TEXT);
CREATE INDEX IF NOT EXISTS work_kind ON work (kind, target, seq);
CREATE TABLE IF NOT EXISTS outcomes (
    ident TEXT NOT NULL, target TEXT NOT NULL, action TEXT NOT NULL, uid TEXT, status TEXT NOT NULL,
    detail TEXT, reason TEXT, PRIMARY KEY (ident, target, action));
"""

Outcome = tuple[str, str, str, str | None, str, str | None, str | None]
"""(ident, target, action, uid, status, detail, reason); a reason marks a reject."""


class Work(NamedTuple):
    """One planned action."""

    seq: int
    uid: str
    ident: str
    ref: str | None
    payload: str | None

    def fields(self) -> dict[str, Any]:
        """The decoded payload."""
        return json.loads(self.payload or "{}")


class SyncPlan:
    """Run-local SQLite file: planned work, finished steps and per-row outcomes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def step(self, name: str) -> Any:
        row = self.db.execute("SELECT value FROM steps WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_step(self, name: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO steps VALUES (?, ?)", (name, json.dumps(value)))

    def reset(self) -> None:
        self.db.executescript("DELETE FROM steps; DELETE FROM work; DELETE FROM outcomes;")

    def add_work(self, rows: list[tuple[str, str, str, str, str | None, str | None]]) -> None:
        """Append (kind, target, uid, ident, ref, payload) rows."""
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT INTO work (kind, target, uid, ident, ref, payload) VALUES (?, ?, ?, ?, ?, ?)", rows
        )
        self.db.execute("COMMIT")

    def iter_work(self, kind: str, target: str, after: int = 0, batch: int = 1000) -> Iterator[Work]:
        while True:
            rows = self.db.execute(
                "SELECT seq, uid, ident, ref, payload FROM work "
                "WHERE kind = ? AND target = ? AND seq > ? ORDER BY seq LIMIT ?",
                (kind, target, after, batch),
            ).fetchall()
            if not rows:
                return
            yield from (Work(*row) for row in rows)
            after = rows[-1][0]

    def iter_work_of(
        self, kinds: tuple[str, ...], target: str, after: int = 0, batch: int = 1000
    ) -> Iterator[tuple[str, Work]]:
        """``(kind, work)`` of several kinds for ``target``, in ``seq`` order, after ``after``."""
        marks = ", ".join("?" * len(kinds))
        while True:
            rows = self.db.execute(
                f"SELECT kind, seq, uid, ident, ref, payload FROM work "
                f"WHERE kind IN ({marks}) AND target = ? AND seq > ? ORDER BY seq LIMIT ?",
                (*kinds, target, after, batch),
            ).fetchall()
            if not rows:
                return
            yield from ((row[0], Work(*row[1:])) for row in rows)
            after = rows[-1][1]

    def work_between(self, kind: str, target: str, first: int, last: int) -> Iterator[Work]:
        """The work of ``kind`` for ``target`` with ``first <= seq <= last``."""
        cur = self.db.execute(
            "SELECT seq, uid, ident, ref, payload FROM work "
            "WHERE kind = ? AND target = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (kind, target, first, last),
        )
        yield from (Work(*row) for row in cur)

    def targets(self, kind: str) -> list[str]:
        query = "SELECT DISTINCT target FROM work WHERE kind = ? ORDER BY target"
        return [r[0] for r in self.db.execute(query, (kind,))]

    def count_work(self, kind: str) -> int:
        return int(self.db.execute("SELECT count(*) FROM work WHERE kind = ?", (kind,)).fetchone()[0])

    def count_members(self, kind: str) -> int:
        """Distinct members (snapshot keys) with ``kind`` work, across targets."""
        query = "SELECT count(DISTINCT uid) FROM work WHERE kind = ?"
        return int(self.db.execute(query, (kind,)).fetchone()[0])

    def drop_reentries(self, exit_kind: str, enter_kind: str) -> int:
        """Delete ``exit_kind`` work whose identifier gets ``enter_kind`` work in the same target
        (return how many): the member stays, whatever key it had last run."""
        if exit_kind == enter_kind or not self.count_work(exit_kind):
            return 0
        self.db.execute("CREATE INDEX IF NOT EXISTS work_ident ON work (kind, target, ident)")
        return self.db.execute(
            "DELETE FROM work WHERE kind = ? AND EXISTS (SELECT 1 FROM work e "
            "WHERE e.kind = ? AND e.target = work.target AND e.ident = work.ident)",
            (exit_kind, enter_kind),
        ).rowcount

    def record(self, rows: Iterable[Outcome], step: tuple[str, Any] | None = None) -> None:
        """Store outcomes and, in the same transaction, an optional step (a batch checkpoint)."""
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        if step is not None:
            self.db.execute("INSERT OR REPLACE INTO steps VALUES (?, ?)", (step[0], json.dumps(step[1])))
        self.db.execute("COMMIT")

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT action, status, count(*) FROM outcomes GROUP BY action, status")
        return {f"{action}:{status}": n for action, status, n in rows}

    def count_outcomes(self, action: str, status: str | None = None, detail: str | None = None) -> int:
        query = "SELECT count(*) FROM outcomes WHERE action = ?"
        args: list[Any] = [action]
        for column, value in (("status", status), ("detail", detail)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        return int(self.db.execute(query, args).fetchone()[0])

    def iter_outcomes(self, rejected_only: bool = False, action: str | None = None) -> Iterator[Outcome]:
        clauses = []
        args: list[Any] = []
        if rejected_only:
            clauses.append("reason IS NOT NULL")
        if action is not None:
            clauses.append("action = ?")
            args.append(action)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        yield from self.db.execute(
            f"SELECT ident, target, action, uid, status, detail, reason FROM outcomes {where} "
            "ORDER BY ident, target, action",
            args,
        )
