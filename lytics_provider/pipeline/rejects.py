"""Rejects files: every row a step could not deliver, with the reason, as JSON lines.

Each line is ``{"reason": ..., "row_number": ..., "id": ..., "record": ...}``. The file is
written to ``.<name>.part`` and renamed onto its final name on close, so a retried step
rewrites it from scratch and a reader never sees half a file. Logs show the reason and the row's
id only (at most ``preview`` lines and a per-reason count), never the row itself.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
PREVIEW_CHARS = 40


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A short, single-line preview of an identifier for a log line."""
    text = str(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RejectsWriter:
    """Write rejected rows to ``path`` (JSON lines); use as a context manager."""

    def __init__(
        self, path: Path | str, preview_lines: int = 5, logger: logging.Logger | None = None
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._part = self.path.with_name(f".{self.path.name}.part")
        self._handle = open(self._part, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.preview_lines = preview_lines
        self.log = logger or log
        self.count = 0
        self.reasons: Counter[str] = Counter()

    def reject(self, reason: str, row_number: int | None, record: Any, id: Any = None) -> None:
        """Record one rejected row; ``reason`` should be short and name the fix when there is one."""
        self.count += 1
        key = reason.split(":", 1)[0]
        self.reasons[key] += 1
        line = {"reason": reason, "row_number": row_number, "id": id, "record": record}
        self._handle.write(json.dumps(line, ensure_ascii=False, default=str))
        self._handle.write("\n")
        if self.count <= self.preview_lines:
            self.log.warning(
                "Rejected row %s (id %s): %s", row_number, preview(id) if id is not None else "-", reason
            )

    def close(self) -> None:
        """Finish the file and move it onto its final name (idempotent)."""
        if self._handle.closed:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._part, self.path)
        if self.count:
            summary = ", ".join(f"{reason} ({n})" for reason, n in self.reasons.most_common())
            self.log.warning("%d rows rejected → %s: %s", self.count, self.path, summary)

    def abort(self) -> None:
        """Drop the partial file (the step failed and will be retried)."""
        if not self._handle.closed:
            self._handle.close()
        self._part.unlink(missing_ok=True)

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
