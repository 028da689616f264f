"""The scan's rejects file: members left out of a snapshot because they have no identity."""

from __future__ import annotations

import logging
from pathlib import Path

from lytics_provider.pipeline.identity import no_identity_reason
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.snapshot import Snapshot


def write_no_identity_rejects(snapshot: Snapshot, path: Path, logger: logging.Logger | None = None) -> int:
    """Write every member of ``snapshot`` without identity to ``path`` (JSON lines, with the reason
    and the member's position in the scan as ``row_number``); return how many. The file is
    rewritten from the snapshot on every call, so a retried scan writes the same file; with no
    such member an older file is removed."""
    count = snapshot.no_identity_count()
    if not count:
        path.unlink(missing_ok=True)
        return 0
    reason = no_identity_reason(snapshot.identity_fields)
    with RejectsWriter(path, logger=logger) as rejects:
        for ordinal, record in snapshot.iter_no_identity():
            rejects.reject(reason, ordinal, record)
    return count
