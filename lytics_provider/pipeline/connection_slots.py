"""A cap on simultaneous connections shared by every task, thread and process using one credential.

Some APIs limit how many requests one key may have in flight (Mailchimp: 10 simultaneous
connections per API key) rather than how many it makes per window. :class:`ConnectionSlots`
keeps ``slots`` lock files under ``<LYTICS_DATA_DIR>/connections/<key>/``; a request holds one
(an exclusive ``flock``) while it is in flight, so workers on the shared data volume never have
more than ``slots`` requests open together. A process that dies releases its lock with it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lytics_provider.pipeline.workarea import data_root


def slots_dir(key: str) -> Path:
    """Where the connection slots of ``key`` (see ``ratelimit.ledger_key``) live."""
    return data_root() / "connections" / key


class ConnectionSlots:
    """At most ``slots`` requests in flight at once across the processes sharing ``path``.

    :param path: the directory of the slot lock files.
    :param slots: how many requests may be in flight together.
    :param poll: seconds between tries while every slot is taken.
    """

    def __init__(
        self, path: Path | str, slots: int, poll: float = 0.02, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        if slots < 1:
            raise ValueError("at least one connection slot is needed")
        self.path = Path(path)
        self.slots = int(slots)
        self.poll = poll
        self.sleep = sleep
        self.waits = 0
        self._local = threading.Lock()
        self.path.mkdir(parents=True, exist_ok=True)

    def _try(self) -> int | None:
        """Lock a free slot; return its file descriptor, or None when all are taken."""
        for index in range(self.slots):
            fd = os.open(self.path / f"slot-{index}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold one slot for the duration of the block (waiting while all are taken)."""
        while True:
            with self._local:
                fd = self._try()
            if fd is not None:
                break
            self.waits += 1
            self.sleep(self.poll)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
