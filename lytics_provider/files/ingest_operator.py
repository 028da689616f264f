"""Import Files: CSV / JSON-lines files of an object store into a Lytics stream.

A store subclass (S3, GCS, Azure Blob) only names its
:class:`~lytics_provider.files.listing.FileStore` (and, when it differs, its continuous
sequence's :class:`~lytics_provider.files.listing.SequenceNaming`);
:class:`StorageFilesToLyticsOperator` picks the store by a ``storage`` option, for presets whose
files may sit in any of them. Each run:

1. lists the objects under **Prefix** and keeps those at or after **Since**, from **Starting
   File** on, newer than the last file imported (or, for a continuous sequence such as
   ``prefix_timestamp.json``, with a later name timestamp) — see
   :func:`~lytics_provider.files.listing.select_objects`;
2. for each file, oldest first: downloads it, undoes PGP and gzip/zip, reads rows (bad rows go to
   a rejects file with the reason) and posts them to ``/collect/json/{stream}`` in batches;
3. after each acknowledged batch commits ``in_progress = {key, rows_done}`` in the job state, and
   after the last one the file as the new ``last_file``. A retried task resumes inside the file
   where the last acknowledged batch ended: nothing is sent twice, nothing skipped.

A store whose continuous sequence ends when the next file is missing (S3, as Lytics documents
it) sets ``stops_without_next_file``: :mod:`lytics_provider.files.sequence_stop`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.field_selection import check_selected_fields
from lytics_provider.files.ingest import FileResult, StateCheckpoint, StreamWriter, ingest_file
from lytics_provider.files.listing import (
    PREFIX_TIMESTAMP_JSON,
    STORE_KINDS,
    FileStore,
    ObjectInfo,
    SequenceNaming,
    StoreKind,
    object_store,
    parse_since,
    select_objects,
)
from lytics_provider.files.readers import Decrypt, ReadOptions
from lytics_provider.files.sequence_stop import SEQUENCE_OPTIONS, SequenceStop
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.retention import prune_job_runs
from lytics_provider.pipeline.workarea import JobState, run_dir, safe_name

FileType = Literal["csv", "json"]
#: ``lenient``: short CSV rows kept, empty cells left out, rejects numbered by data row (the
#: object-store imports' rules so far); ``strict``: any width mismatch rejected, empty cells sent.
CsvRows = Literal["lenient", "strict"]


def pgp_decrypt(pgp_conn_id: str | None) -> Decrypt | None:
    """Decrypt with the private key (and passphrase) of a PGP connection, if one is named."""
    if not pgp_conn_id:
        return None
    from lytics_provider.hooks.pgp import PGPHook

    return PGPHook(pgp_conn_id).decrypt_file


class ObjectFilesToLyticsOperator(BaseOperator):
    """Import Files: object-store files into a Lytics stream (see the module docstring).

    :param job_id: the job (names the run directory and the state holding the last file).
    :param bucket: Bucket.
    :param stream: Lytics stream.
    :param prefix: Prefix, e.g. ``new-users-`` or ``exports/new-users-``.
    :param file_type: ``csv`` (with a header row) or ``json`` (one object per line).
    :param timestamp_field: Timestamp Field (event time in Lytics).
    :param since: Since, ``yyyy/mm/dd HH:MM/SS``: oldest file date to import.
    :param starting_file: Starting File: this file and newer ones are imported.
    :param continuous: Continuous Import of the store's sequence (``prefix_timestamp.json``
        files for S3), in name-timestamp order; a store without a sequence (GCS) takes its
        files as without it, the job's schedule being its continuous import.
    :param pgp_conn_id: connection with ``private_key`` extra (and the passphrase as password).
    :param batch_size: records per ``/collect/json`` request (also bounded to 8 MB).
    :param delimiter: CSV delimiter.
    :param csv_rows: ``lenient`` (default) or ``strict`` CSV row rules (see ``CsvRows``).
    :param fields: the columns (CSV) or keys (JSON) to import; empty or ``None``: every one. A
        selected field a file does not have is reported (a warning naming the file and the field).
    :param lytics_conn_id: Lytics connection.
    """

    template_fields: Sequence[str] = ("bucket", "prefix", "stream", "since", "starting_file")
    store_name = "objects"
    #: how the files of a continuous import are named in this store (``None``: a store whose
    #: continuous import is only the job's schedule, files taken as without it)
    sequence_naming: ClassVar[SequenceNaming | None] = PREFIX_TIMESTAMP_JSON
    #: a continuous run that finds no next file stops the import until it is configured anew
    stops_without_next_file: ClassVar[bool] = False

    def __init__(
        self,
        *,
        job_id: str,
        bucket: str,
        stream: str,
        prefix: str = "",
        file_type: FileType = "csv",
        timestamp_field: str | None = None,
        since: str | None = None,
        starting_file: str | None = None,
        continuous: bool = False,
        pgp_conn_id: str | None = None,
        batch_size: int = 5000,
        delimiter: str = ",",
        csv_rows: CsvRows = "lenient",
        fields: Sequence[str] | None = None,
        lytics_conn_id: str = LyticsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.fields = list(fields or [])
        check_selected_fields(self.fields, timestamp_field)
        if file_type not in ("csv", "json"):
            raise ValueError(
                f"file_type {file_type!r} is not supported; "
                "use 'csv' (with a header row) or 'json' (JSON lines)"
            )
        if csv_rows not in ("lenient", "strict"):
            raise ValueError(f"csv_rows {csv_rows!r} is not supported; use 'lenient' or 'strict'")

    def store(self) -> FileStore:  # pragma: no cover - abstract
        """Where the files are."""
        raise NotImplementedError

    @property
    def naming(self) -> SequenceNaming | None:
        """The naming of the continuous sequence this import reads, if it reads one."""
        return self.sequence_naming if self.continuous else None

    def read_options(self) -> ReadOptions:
        """The reader's rules for this job's files."""
        fmt = "csv" if self.file_type == "csv" else "jsonl"
        fields = tuple(self.fields)
        if self.csv_rows == "strict":
            return ReadOptions(fmt, self.delimiter, fields=fields)
        return ReadOptions(
            fmt, self.delimiter, row_width="no_extra", empty_cells="drop", numbering="row", fields=fields
        )

    # -- run -----------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        since = parse_since(self.since)
        state = JobState(self.job_id)
        stop = self._sequence_stop(state)
        if stop is not None:
            stop.check()
        saved = state.load()
        store = self.store()
        ordered, skipped = select_objects(
            store.list_objects(self.prefix),
            prefix=self.prefix,
            since=since,
            starting_file=self.starting_file,
            last_file=saved.get("last_file"),
            continuous=self.naming is not None,
            naming=self.naming or PREFIX_TIMESTAMP_JSON,
        )
        for reason in skipped[:20]:
            self.log.warning("Skipped %s", reason)
        self.log.info(
            "%d files to import from %s://%s/%s: %s",
            len(ordered),
            store.scheme,
            self.bucket,
            self.prefix,
            ", ".join(o.key for o in ordered[:10]) + (" ..." if len(ordered) > 10 else ""),
        )
        report: dict[str, Any] = {
            "stream": self.stream,
            "files": [o.key for o in ordered],
            "skipped": skipped,
            "rows": 0,
            "rejected": 0,
            "rejected_by_lytics": 0,
            "fields_found": {},
            "missing_fields": {},
            "dry_run": as_bool((context.get("params") or {}).get("dry_run")),
        }
        if report["dry_run"]:
            return report
        last_key = (saved.get("last_file") or {}).get("key")
        if stop is not None and not ordered and last_key:
            stop.stop(last_key)
        if self.naming is not None and not ordered:
            self.log.warning(
                "No next file after %s: the continuous sequence has stopped until a newer %s file arrives",
                last_key or "the start",
                self.naming.label,
            )
        hook = LyticsHook(self.lytics_conn_id)
        work = run_dir(self.job_id, context["run_id"])
        for obj in ordered:
            result = self._import_file(store, obj, state, hook, work)
            report["rows"] += result.sent
            report["rejected"] += result.rejected
            report["rejected_by_lytics"] += result.lytics_rejected
            report["fields_found"][obj.key] = result.fields_found
            if result.missing_fields:
                report["missing_fields"][obj.key] = result.missing_fields
        report["api_calls"] = hook.calls
        shown = {k: v for k, v in report.items() if k not in ("files", "fields_found")}
        self.log.info("Import done: %s", shown)
        prune_job_runs(self.job_id, context["run_id"])
        return report

    def _sequence_stop(self, state: JobState) -> SequenceStop | None:
        """The stop rule of this import's continuous sequence, if it has one."""
        if self.naming is None or not self.stops_without_next_file:
            return None
        options = {name: getattr(self, name) for name in SEQUENCE_OPTIONS}
        return SequenceStop(state, options, self.naming, self.log)

    def _import_file(
        self, store: FileStore, obj: ObjectInfo, state: JobState, hook: LyticsHook, work: Path
    ) -> FileResult:
        local = work / "downloads" / safe_name(obj.key)
        local.parent.mkdir(parents=True, exist_ok=True)
        store.download(obj.key, local)
        writer = StreamWriter(
            hook,
            self.stream,
            timestamp_field=self.timestamp_field,
            filename=obj.key,
            max_batch_records=self.batch_size,
        )
        with RejectsWriter(work / f"rejects_{safe_name(obj.key)}.jsonl", logger=self.log) as rejects:
            result = ingest_file(
                local,
                obj.key,
                writer,
                StateCheckpoint(self.job_id, "in_progress"),
                rejects,
                self.read_options(),
                decrypt=pgp_decrypt(self.pgp_conn_id),
                logger=self.log,
            )
        state.update(last_file={"key": obj.key, "updated": obj.updated.isoformat()}, in_progress=None)
        local.unlink(missing_ok=True)
        return result


class StorageFilesToLyticsOperator(ObjectFilesToLyticsOperator):
    """Import Files from whichever object store a job names: S3, GCS or Azure Blob Storage.

    For presets whose partner writes to any of them (the partner's cloud-storage choice).

    :param storage: ``s3``, ``gcs`` or ``azure_blob`` (``bucket`` is then the container).
    :param aws_conn_id: AWS connection (``s3``).
    :param gcp_conn_id: Google Cloud connection (``gcs``).
    :param wasb_conn_id: Azure Blob Storage connection (``azure_blob``).
    """

    def __init__(
        self,
        *,
        storage: StoreKind = "s3",
        aws_conn_id: str | None = "aws_default",
        gcp_conn_id: str = "google_cloud_default",
        wasb_conn_id: str = "wasb_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if storage not in STORE_KINDS:
            raise ValueError(f"storage {storage!r} is not supported; use one of {', '.join(STORE_KINDS)}")
        self.storage: StoreKind = storage
        self.aws_conn_id = aws_conn_id
        self.gcp_conn_id = gcp_conn_id
        self.wasb_conn_id = wasb_conn_id

    def store(self) -> FileStore:
        return object_store(
            self.storage,
            self.bucket,
            aws_conn_id=self.aws_conn_id,
            gcp_conn_id=self.gcp_conn_id,
            wasb_conn_id=self.wasb_conn_id,
        )
