"""The ingest contract: records reach a Lytics stream in acknowledged batches, then a checkpoint.

:class:`StreamWriter` collects records into batches bounded by bytes (and optionally by count),
posts each to ``/collect/json/{stream}`` and, only after Lytics acknowledged it, hands the
position of the batch's last record to its ``on_ack`` callback. Imports save that position in a
:class:`Checkpoint` and, when retried, skip everything up to it: each record is sent once across
retries, and nothing is skipped that Lytics did not acknowledge.

A :class:`Checkpoint` is one JSON value kept in one place: the job's committed state
(:class:`StateCheckpoint`, survives runs), a run-local file (:class:`FileCheckpoint`, a retry of
the same run) or a key of a run-local SQLite stage (:class:`SqliteCheckpoint`).

:func:`ingest_file` is the file import built on both: read a downloaded file
(:mod:`lytics_provider.files.readers`), reject bad rows with reasons, resume after the saved row.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lytics_provider.files.field_selection import FieldsFound
from lytics_provider.files.readers import Decrypt, ReadOptions, open_plain, read_rows, valid_records
from lytics_provider.hooks.lytics import MAX_BATCH_BYTES, LyticsHook
from lytics_provider.pipeline.progress import Progress
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.workarea import JobState, atomic_write_text

log = logging.getLogger(__name__)
_EMPTY = object()


# -- checkpoints -------------------------------------------------------------------------------
class Checkpoint:
    """Where an import keeps how far Lytics acknowledged: one JSON value (``None`` when unset)."""

    def load(self) -> Any:
        """The saved value, or ``None``."""
        raise NotImplementedError

    def save(self, value: Any) -> None:
        """Replace the saved value (atomically)."""
        raise NotImplementedError

    def clear(self) -> None:
        """Forget the saved value."""
        self.save(None)


class StateCheckpoint(Checkpoint):
    """A key of the job's committed state (``JobState``; object storage with ``LYTICS_STATE_URL``)."""

    def __init__(self, job_id: str, key: str) -> None:
        self.state = JobState(job_id)
        self.key = key

    def load(self) -> Any:
        return self.state.get(self.key)

    def save(self, value: Any) -> None:
        self.state.update(**{self.key: value})


class FileCheckpoint(Checkpoint):
    """A JSON file (in the run directory: a retry of the same run finds it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Any:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def save(self, value: Any) -> None:
        atomic_write_text(self.path, json.dumps(value))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class SqliteCheckpoint(Checkpoint):
    """A key of a ``meta (key TEXT PRIMARY KEY, value TEXT)`` table in a run-local SQLite stage."""

    def __init__(self, db: sqlite3.Connection, key: str) -> None:
        self.db = db
        self.key = key

    def load(self) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (self.key,)).fetchone()
        return json.loads(row[0]) if row else None

    def save(self, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (self.key, json.dumps(value)))


# -- writer ------------------------------------------------------------------------------------
@dataclass
class StreamWriter:
    """Post records to one Lytics stream in batches; report each acknowledged batch's position.

    :param hook: the Lytics hook (its ``calls`` count the requests).
    :param stream: the Lytics stream.
    :param timestamp_field: record field Lytics uses as the event time.
    :param filename: the ``filename`` Lytics records with the data (the source file).
    :param max_batch_bytes: upper bound of one request body (at most 8 MB).
    :param max_batch_records: upper bound of records per request (``None``: bytes only).
    :param on_ack: called with the position of a batch's last record after Lytics acknowledged it.
    :param send: ``False`` counts records and sends nothing (a dry run); ``on_ack`` is not called.
    :param dryrun: send with Lytics' own ``dryrun=true`` (Lytics validates, stores nothing).
    """

    hook: LyticsHook
    stream: str
    timestamp_field: str | None = None
    filename: str | None = None
    max_batch_bytes: int = MAX_BATCH_BYTES
    max_batch_records: int | None = None
    on_ack: Callable[[Any], None] | None = None
    send: bool = True
    dryrun: bool = False
    #: records queued so far, and what Lytics answered for those sent
    records: int = field(default=0, init=False)
    accepted: int = field(default=0, init=False)
    rejected: int = field(default=0, init=False)
    requests: int = field(default=0, init=False)
    _batch: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)
    _size: int = field(default=2, init=False, repr=False)
    _position: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.max_batch_bytes = min(int(self.max_batch_bytes), MAX_BATCH_BYTES)

    def add(self, record: dict[str, Any], position: Any = None, size: int | None = None) -> None:
        """Queue one record (``size``: its compact JSON length, when already known)."""
        if size is None:
            size = len(json.dumps(record, separators=(",", ":"), default=str).encode())
        if self._batch and (
            self._size + size + 1 > self.max_batch_bytes
            or (self.max_batch_records is not None and len(self._batch) >= self.max_batch_records)
        ):
            self.flush()
        self._batch.append(record)
        self._size += size + 1
        self.records += 1
        if position is not None:
            self._position = position

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        """Queue records that carry no position."""
        for record in records:
            self.add(record)

    def flush(self, position: Any = _EMPTY) -> None:
        """Post the queued batch; after the acknowledgement, report ``position`` (default: the last
        record's) to ``on_ack``."""
        if position is not _EMPTY:
            self._position = position
        batch, self._batch, self._size = self._batch, [], 2
        if batch and self.send:
            result = self.hook.collect_json(
                self.stream,
                batch,
                timestamp_field=self.timestamp_field,
                dryrun=self.dryrun,
                filename=self.filename,
                max_batch_bytes=self.max_batch_bytes + 1024,
            )
            self.accepted += result.accepted
            self.rejected += result.rejected
            self.requests += result.requests
        if batch and self.send and self.on_ack is not None and self._position is not None:
            self.on_ack(self._position)
        self._position = None

    def close(self) -> None:
        """Post what is still queued."""
        self.flush()

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()


# -- one file --------------------------------------------------------------------------------
@dataclass
class FileResult:
    """What importing one file did."""

    rows: int = 0  # readable records in the file (including those sent by an earlier attempt)
    sent: int = 0  # records sent by this attempt
    rejected: int = 0  # rows rejected here, with reasons in the rejects file
    accepted: int = 0  # records Lytics accepted (over all attempts when the checkpoint keeps counts)
    lytics_rejected: int = 0
    fields_found: list[str] = field(default_factory=list)  # the file's columns / record keys
    missing_fields: list[str] = field(default_factory=list)  # selected fields the file does not have


def ingest_file(
    path: Path,
    name: str,
    writer: StreamWriter,
    checkpoint: Checkpoint,
    rejects: RejectsWriter,
    options: ReadOptions,
    *,
    scope: str | None = None,
    decrypt: Decrypt | None = None,
    keep_counts: bool = False,
    logger: logging.Logger = log,
) -> FileResult:
    """Read the downloaded ``path`` (remote ``name``) and send its records through ``writer``.

    The checkpoint holds ``{"key": scope, "rows_done": n}`` (plus Lytics' running counts with
    ``keep_counts``) after every acknowledged batch; a retry with the same ``scope`` (default
    ``name``) skips the first ``n`` data rows. The caller clears it once the file is done.
    Selected fields (``options.fields``) the file does not have are logged as a warning.
    """
    scope = scope or name
    saved = checkpoint.load() or {}
    resume = int(saved.get("rows_done") or 0) if saved.get("key") == scope else 0
    totals = {k: int(saved.get(k) or 0) for k in ("accepted", "lytics_rejected")} if resume else {}
    if resume:
        logger.info("Resuming %s after row %d (acknowledged by Lytics before)", name, resume)
    result = FileResult()
    before = (writer.accepted, writer.rejected)

    def acknowledged(rows_done: int) -> None:
        value: dict[str, Any] = {"key": scope, "rows_done": rows_done}
        if keep_counts:
            value["accepted"] = totals.get("accepted", 0) + writer.accepted - before[0]
            value["lytics_rejected"] = totals.get("lytics_rejected", 0) + writer.rejected - before[1]
        checkpoint.save(value)

    writer.on_ack = acknowledged
    progress = Progress(logger, f"{name}: records")
    found = FieldsFound()
    with open_plain(path, name, decrypt) as stream:
        rows = read_rows(stream, options, name, found)
        for item in valid_records(rows, rejects, options.max_record_bytes):
            result.rows += 1
            progress.advance(1)
            if item.ordinal <= resume:
                continue
            writer.add(item.record, item.ordinal, item.size)
            result.sent += 1
        writer.flush()
    progress.finish()
    result.fields_found = found.names
    result.missing_fields = found.missing(options.fields)
    if result.missing_fields:
        logger.warning(
            "%s has no field %s of the selected fields: its records are sent without it",
            name,
            ", ".join(result.missing_fields),
        )
    result.rejected = rejects.count
    result.accepted = totals.get("accepted", 0) + writer.accepted - before[0]
    result.lytics_rejected = totals.get("lytics_rejected", 0) + writer.rejected - before[1]
    if result.lytics_rejected:
        logger.warning("Lytics rejected %d records of %s", result.lytics_rejected, name)
    return result
