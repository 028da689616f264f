"""The rows a full-reload import has delivered: one digest per row key, in one SQLite file per job.

A table without a modified-timestamp column is read whole on every run; only the rows whose
digest differs from the one delivered before are sent. The store keeps ``key -> digest`` of every
delivered row and the run that last read it:

- :meth:`RowDigestStore.changed` answers which rows of a batch are new or changed;
- :meth:`RowDigestStore.touch` marks rows read again unchanged as still present;
- :meth:`RowDigestStore.commit` saves a batch's digests after Lytics acknowledged it, so a retry
  (of the same run or a later one) resends nothing acknowledged and loses nothing;
- :meth:`RowDigestStore.prune` drops, once a run has read the whole table and every batch was
  acknowledged, the keys that run did not read (rows deleted from the table), so the file stays
  the size of the table.

Rows are looked up in chunks; nothing holds the table in memory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from lytics_provider.pipeline.workarea import job_dir

DIGESTS_NAME = "row_digests.db"
_CHUNK = 500


class RowDigestStore:
    """``key -> (digest, run)`` of the rows one job delivered.

    :param job_id: the job whose folder holds the file.
    :param run_id: the run reading the table now.
    :param path: the SQLite file (default ``row_digests.db`` in the job's folder).
    """

    def __init__(self, job_id: str, run_id: str, path: Path | None = None) -> None:
        self.run_id = run_id
        self.path = path or job_dir(job_id) / DIGESTS_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS digests "
            "(key TEXT PRIMARY KEY, digest BLOB NOT NULL, run TEXT NOT NULL)"
        )

    def close(self) -> None:
        self.db.close()

    def count(self) -> int:
        """Rows delivered and still in the table as last read."""
        return int(self.db.execute("SELECT count(*) FROM digests").fetchone()[0])

    def changed(self, rows: Sequence[tuple[str, bytes]]) -> list[bool]:
        """For each ``(key, digest)``: ``True`` when the row is new or differs from the one delivered."""
        known: dict[str, bytes] = {}
        keys = [key for key, _ in rows]
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, digest FROM digests WHERE key IN ({marks})"
            known.update(self.db.execute(query, chunk).fetchall())
        return [known.get(key) != digest for key, digest in rows]

    def touch(self, keys: Iterable[str]) -> None:
        """Mark delivered rows read unchanged by this run."""
        self.db.execute("BEGIN")
        self.db.executemany("UPDATE digests SET run = ? WHERE key = ?", ((self.run_id, k) for k in keys))
        self.db.execute("COMMIT")

    def commit(self, rows: Iterable[tuple[str, bytes]]) -> None:
        """Save the digests of rows Lytics acknowledged."""
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO digests VALUES (?, ?, ?)", ((k, d, self.run_id) for k, d in rows)
        )
        self.db.execute("COMMIT")

    def prune(self) -> int:
        """Forget the rows this run did not read (deleted from the table); return how many."""
        cur = self.db.execute("DELETE FROM digests WHERE run != ?", (self.run_id,))
        return cur.rowcount
