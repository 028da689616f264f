"""A sliding-window call budget shared by every task, thread and process using one credential.

Dotdigital's flat scheme allows 2,000 API calls in any rolling hour per API user; going over it
locks the user out until the hour's count drops. :class:`CallLedger` keeps the budget on the
client side: every call is recorded, before it is sent, as one row of a small SQLite file under
``<LYTICS_DATA_DIR>/ratelimit/``. The file name is built from the connection id and a hash of
the API username (never the password), so every worker on the shared data volume draws on the
same budget. A call that would exceed the budget waits until the oldest call leaves the window.

The server's own answers tighten the budget: :meth:`CallLedger.pause_until` blocks every user of
the ledger until a reset time (tiered 429 + ``X-RateLimit-Reset``, or a usage cap), and
:meth:`CallLedger.observe_usage` adds calls the server counted but this ledger did not see (other
clients of the same API user, from ``ApiCallsInLastHour``).

Each process and thread keeps its connection to a ledger file open (WAL, ``synchronous=NORMAL``):
opening and closing it around every call checkpointed the log each time and cost more than the
budget check itself.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lytics_provider.pipeline.workarea import data_root, safe_name

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""


# Below this, a reset header cannot be a current epoch time (it is 2001-09-09): it is a delay.
EPOCH_FLOOR = 1_000_000_000


def reset_time(value: str, now: float) -> float | None:
    """Epoch seconds of a rate-limit reset header; None when it is not a number.

    Dotdigital documents ``X-RateLimit-Reset`` both as a UTC epoch time (its error-code page) and
    as the seconds until the reset (its PHP SDK), so both readings are accepted: a value below
    :data:`EPOCH_FLOOR` is a delay from ``now``, a larger one an epoch time.
    """
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number != number or number < 0:
        return None
    return now + number if number < EPOCH_FLOOR else number


_OPEN: dict[tuple[str, int, int], tuple[sqlite3.Connection, int]] = {}
_OPEN_LOCK = threading.Lock()


def ledger_connection(path: Path) -> sqlite3.Connection:
    """This process and thread's open connection to the ledger at ``path``.

    A file replaced since it was opened (another inode) gets a new connection.
    """
    key = (str(path), os.getpid(), threading.get_ident())
    inode = path.stat().st_ino if path.exists() else -1
    with _OPEN_LOCK:
        held = _OPEN.get(key)
    if held is not None and held[1] == inode:
        return held[0]
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    with _OPEN_LOCK:
        _OPEN[key] = (db, path.stat().st_ino)
    return db


class RateLimitWaitTooLong(Exception):
    """The budget would free up only after the caller's maximum wait."""


def ledger_key(conn_id: str, username: str) -> str:
    """File-safe ledger name: connection id plus a short hash of the API username."""
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:16]
    return f"{safe_name(conn_id)}-{digest}"


def ledger_path(key: str) -> Path:
    """Where the ledger of ``key`` lives."""
    return data_root() / "ratelimit" / f"{key}.db"


@dataclass
class Usage:
    """Calls counted in the current window and the configured limit."""

    used: int
    limit: int
    paused_until: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class CallLedger:
    """At most ``limit`` calls in any ``window`` seconds, across processes sharing ``path``."""

    def __init__(
        self,
        path: Path | str,
        limit: int = 2000,
        window: float = 3600.0,
        max_wait: float = 3600.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError("the call budget must allow at least one call per window")
        self.path = Path(path)
        self.limit = int(limit)
        self.window = float(window)
        self.max_wait = float(max_wait)
        self.clock = clock
        self.sleep = sleep
        self.waited = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return ledger_connection(self.path)

    def _try(self, db: sqlite3.Connection, now: float) -> tuple[float, int]:
        """Record one call if the budget allows (0.0 and its row), else the seconds to wait."""
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM calls WHERE ts <= ?", (now - self.window,))
            row = db.execute("SELECT value FROM meta WHERE key = 'paused_until'").fetchone()
            paused = float(row[0]) if row else 0.0
            if paused > now:
                db.execute("COMMIT")
                return paused - now, 0
            used = db.execute("SELECT count(*) FROM calls").fetchone()[0]
            if used < self.limit:
                row_id = db.execute("INSERT INTO calls VALUES (?)", (now,)).lastrowid or 0
                db.execute("COMMIT")
                return 0.0, row_id
            oldest = db.execute(
                "SELECT ts FROM calls ORDER BY ts LIMIT 1 OFFSET ?", (used - self.limit,)
            ).fetchone()[0]
            db.execute("COMMIT")
            return max(0.001, oldest + self.window - now), 0
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def acquire(self, max_wait: float | None = None) -> float:
        """Take one call from the budget, waiting as needed; return the seconds waited.

        Raises :class:`RateLimitWaitTooLong` (without taking a call) when the wait would pass
        ``max_wait`` (default: the ledger's ``max_wait``).
        """
        return self._acquire(max_wait)[0]

    @contextmanager
    def held(self, max_wait: float | None = None) -> Iterator[float]:
        """Take one call for the length of one request; it counts from the request's end.

        A server counts a call when it arrives, at some moment between the send and the answer,
        so a call counted from its send could leave this window before it left the server's
        (a slow send, then a quick one a window later). Counted from the answer, every call
        leaves this window after it left the server's. Yields the seconds waited; raises like
        :meth:`acquire`.

        :param max_wait: longest wait for the budget (default: the ledger's ``max_wait``).
        """
        waited, row_id, sent = self._acquire(max_wait)
        try:
            yield waited
        finally:
            self._answered(row_id, sent)

    def _acquire(self, max_wait: float | None) -> tuple[float, int, float]:
        """The seconds waited, the call's row and the time it was recorded at."""
        limit = self.max_wait if max_wait is None else max_wait
        waited = 0.0
        db = self._connect()
        while True:
            now = self.clock()
            wait, row_id = self._try(db, now)
            if wait <= 0:
                self.waited += waited
                return waited, row_id, now
            if waited + wait > limit:
                raise RateLimitWaitTooLong(
                    f"the call budget ({self.limit} calls per {self.window:.0f}s) frees up in "
                    f"{wait:.0f}s, more than the {limit:.0f}s this call may wait"
                )
            self.sleep(wait)
            waited += wait

    def _answered(self, row_id: int, sent: float) -> None:
        """Move a call's time to now (recording it again if it already left the window: its row
        may then belong to another call, hence the match on the time too)."""
        db = self._connect()
        now = self.clock()
        db.execute("BEGIN IMMEDIATE")
        try:
            moved = db.execute(
                "UPDATE calls SET ts = max(ts, ?) WHERE rowid = ? AND ts = ?", (now, row_id, sent)
            ).rowcount
            if not moved:
                db.execute("INSERT INTO calls VALUES (?)", (now,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def try_acquire(self) -> bool:
        """Take one call if the budget allows it right now."""
        try:
            self.acquire(max_wait=0.0)
        except RateLimitWaitTooLong:
            return False
        return True

    def pause_until(self, when: float) -> None:
        """Block every user of this ledger until ``when`` (epoch seconds); never shortens a pause."""
        db = self._connect()
        db.execute(
            "INSERT INTO meta VALUES ('paused_until', ?) ON CONFLICT(key) "
            "DO UPDATE SET value = max(value, excluded.value)",
            (float(when),),
        )

    def observe_usage(self, server_used: int) -> int:
        """Align with the server's count of calls in the window; return the calls added.

        Calls the server saw but this ledger did not are recorded at the current time (the
        conservative choice: they leave the window last).
        """
        db = self._connect()
        now = self.clock()
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM calls WHERE ts <= ?", (now - self.window,))
        used = db.execute("SELECT count(*) FROM calls").fetchone()[0]
        missing = max(0, min(int(server_used), self.limit) - used)
        db.executemany("INSERT INTO calls VALUES (?)", [(now,)] * missing)
        db.execute("COMMIT")
        return missing

    def usage(self) -> Usage:
        """Calls in the current window, the limit and any pause."""
        db = self._connect()
        now = self.clock()
        used = db.execute("SELECT count(*) FROM calls WHERE ts > ?", (now - self.window,)).fetchone()[0]
        row = db.execute("SELECT value FROM meta WHERE key = 'paused_until'").fetchone()
        return Usage(used=int(used), limit=self.limit, paused_until=float(row[0]) if row else 0.0)
