"""Whether a scan that reached its last page holds the whole audience, and what to do if not.

A scan ends when a page comes back with an empty ``_next`` or no members. A page like that in
the middle of a scan (a hiccup of the API) would otherwise end the run with a fraction of the
audience. So the last page is checked against what the API reported: the ``total`` of the scan
pages (the latest one wins), or the audience's ``size`` from ``GET /v2/segment/{id}?sizes=true``
when the pages carry none; a ``user_limit`` caps what is expected.

Tolerance: audiences move while they are scanned. Members who enter after the cursor passed
their place are counted in ``total`` but never scanned, so a complete scan can come up slightly
short. The shortfall allowed is ``max(10 members, 0.2% of the expected count)``: enough for the
entries of an hour-long scan of a busy audience, while an early end that drops a page or more of
a small audience, or more than one member in 500 of a large one, is caught (on 1M members the
limit is 2,000, 20 pages of 100).

An early end is a transient fault: the page is requested again a few times (with backoff), then
the scan restarts from the first page, and if it persists the task fails with
:class:`IncompleteScanError` and the snapshot is not marked complete, so nothing downstream
delivers or commits it. This module imports nothing from Airflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lytics_provider.pipeline.http import ServiceError

ABSOLUTE_TOLERANCE = 10
RELATIVE_TOLERANCE = 0.002
PAGE_RETRIES = 3
SCAN_RESTARTS = 1

RETRY_PAGE = "retry_page"
RESTART_SCAN = "restart_scan"


class IncompleteScanError(ServiceError):
    """A scan kept ending before the reported audience size, beyond the tolerance."""


def tolerance(expected: int) -> int:
    """Members a complete scan may lack against ``expected`` (see the module docstring)."""
    return max(ABSOLUTE_TOLERANCE, math.ceil(expected * RELATIVE_TOLERANCE))


def expected_members(
    reported_total: int | None, audience_size: int | None, user_limit: int | None = None
) -> int | None:
    """Members a complete scan should hold: the page ``total``, else the audience size, capped by
    ``user_limit``; None when the API reported neither."""
    expected = reported_total if reported_total is not None else audience_size
    if expected is None:
        return None
    return expected if user_limit is None else min(expected, user_limit)


def ended_early(stored: int, expected: int | None) -> bool:
    """True when a scan that holds ``stored`` members stopped short of ``expected`` beyond the tolerance."""
    return expected is not None and stored < expected - tolerance(expected)


@dataclass
class EarlyEndBudget:
    """How often an early end is answered by requesting the page again, then by a fresh scan.

    :param audience: the audience's name for the final error.
    :param page_retries: requests of the same cursor after an early end (per scan).
    :param restarts: scans from the first page after the page retries ran out.
    """

    audience: str
    page_retries: int = PAGE_RETRIES
    restarts: int = SCAN_RESTARTS
    retried: int = 0
    restarted: int = 0

    def next_step(self, stored: int, expected: int) -> str:
        """:data:`RETRY_PAGE` or :data:`RESTART_SCAN` after an early end; raises
        :class:`IncompleteScanError` once both are used up."""
        if self.retried < self.page_retries:
            self.retried += 1
            return RETRY_PAGE
        if self.restarted < self.restarts:
            self.restarted += 1
            self.retried = 0
            return RESTART_SCAN
        raise IncompleteScanError(
            f"The scan of audience {self.audience} kept ending early: {stored} members stored, the "
            f"Lytics API reported {expected} (tolerance {tolerance(expected)}), after "
            f"{self.page_retries} requests of the page per scan and {self.restarts + 1} scans. Nothing "
            "was delivered or committed; the task's retry resumes the scan."
        )
