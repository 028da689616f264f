"""Synthetic committed snapshots for the destination benches (no Lytics scan)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_snapshot(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A complete snapshot at ``path`` holding ``rows``, stored in pages of 5,000."""
    from lytics_provider.pipeline.snapshot import Snapshot

    with Snapshot(path) as snap:
        for offset in range(0, len(rows), 5000):
            snap.add_page(rows[offset : offset + 5000], "", total=None)
        snap.mark_complete()
    return path
