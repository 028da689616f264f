"""Wait for a destination's bulk job (import, deletion) by polling its status in the worker.

The deferrable form of the same wait is :class:`lytics_provider.triggers.bulk_job.BulkJobTrigger`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection


class BulkJobTimeout(RuntimeError):
    """A bulk job was still pending when the wait gave up (a retry reconnects to it)."""


def wait_for_status(
    poll: Callable[[], str],
    pending: Collection[str],
    poll_interval: float,
    timeout: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Call ``poll`` until it answers a status not in ``pending``; return that status.

    :param what: names the job in the timeout error (for example ``Dotdigital import 123``).
    """
    deadline = time.monotonic() + timeout
    while True:
        status = poll()
        if status not in pending:
            return status
        if time.monotonic() >= deadline:
            raise BulkJobTimeout(f"{what} still {status!r} after {timeout:.0f}s; a retry reconnects to it")
        sleep(poll_interval)
