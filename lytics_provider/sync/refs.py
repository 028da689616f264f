"""Destination references a job has learnt: the destination's own id of each member it delivered.

A destination whose removals need its own record id (HubSpot list memberships take record ids,
not emails) saves the id its API answered when the member was added, and reads it back when the
member exits, instead of looking the member up again. The store is a cache of facts about the
destination (an email's record id), not run state: an id saved by a run that never committed is
still right. A stale id (a record merged or deleted since) is the adapter's to detect and look up
again. One SQLite file in the job's folder.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from lytics_provider.pipeline.workarea import job_dir

REFS_NAME = "destination_refs.db"


class RefStore:
    """``(target, ident) -> ref`` of one job."""

    def __init__(self, job_id: str, path: Path | None = None) -> None:
        self.path = path or job_dir(job_id) / REFS_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS refs (target TEXT NOT NULL, ident TEXT NOT NULL, ref TEXT NOT NULL, "
            "PRIMARY KEY (target, ident))"
        )

    def close(self) -> None:
        self.db.close()

    def save(self, target: str, pairs: Iterable[tuple[str, str]]) -> None:
        """Remember ``(ident, ref)`` pairs for ``target``."""
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO refs VALUES (?, ?, ?)", ((target, i, r) for i, r in pairs)
        )
        self.db.execute("COMMIT")

    def find(self, target: str, idents: Sequence[str]) -> dict[str, str]:
        """The known refs among ``idents``."""
        found: dict[str, str] = {}
        for start in range(0, len(idents), 500):
            chunk = list(idents[start : start + 500])
            marks = ",".join("?" * len(chunk))
            query = f"SELECT ident, ref FROM refs WHERE target = ? AND ident IN ({marks})"
            found.update(dict(self.db.execute(query, (target, *chunk)).fetchall()))
        return found

    def forget(self, target: str, idents: Iterable[str]) -> None:
        """Drop refs found to be stale."""
        self.db.executemany("DELETE FROM refs WHERE target = ? AND ident = ?", ((target, i) for i in idents))
