"""Export a Lytics audience (or a stream's events) to Amazon S3 as CSV or JSON lines.

The ``deliver`` task of an export DAG: it reads the audience snapshot that ``scan`` wrote, streams
it into one local file (gzip and PGP optional) named from the audience slug and the run's
logical date, and uploads it with the official ``S3Hook`` (boto3's managed transfer: multipart
above 8 MB; S3 publishes an object only when its upload completes, so the final key never holds
part of a file). A retried task rebuilds the same bytes under the same key.

The shared pieces of every audience export (scan XCom, fields to export, rejects, dry run)
live in :class:`AudienceExportOperator`, which the GCS and warehouse exports extend.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator, Context

from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.object_files import (
    FileFormat,
    StagedFile,
    export_name,
    join_key,
    run_stamp,
    stage_file,
)
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.snapshot import Snapshot
from lytics_provider.pipeline.workarea import run_dir

if TYPE_CHECKING:
    from lytics_provider.pipeline.warehouse_types import Column

DEFAULT_FILENAME = "lytics_{slug}_{timestamp}.{ext}"
EVENTS_PAGE_LIMIT = 1000


def pgp_keys(conn_id: str | None) -> tuple[str | None, str | None, str | None]:
    """``(public_key, private_key, passphrase)`` from a PGP connection (extras + password)."""
    if not conn_id:
        return None, None, None
    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson
    return extra.get("public_key") or None, extra.get("private_key") or None, conn.password or None


def iter_stream_events(
    hook: LyticsHook, stream: str, limit: int = EVENTS_PAGE_LIMIT, since: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every event of a Lytics stream, oldest first, page by page.

    Contract used: ``GET /v2/stream/{name}/events?limit=&start=&since=`` answers
    ``{"status": 200, "data": [event, ...], "_next": "<cursor>"}``; an empty ``_next`` (or an
    empty page) ends the stream, as the segment scan does.
    """
    cursor = ""
    while True:
        body = hook._get(f"/v2/stream/{stream}/events", limit=limit, start=cursor or None, since=since)
        events = list(body.get("data") or [])
        yield from events
        cursor = body.get("_next") or ""
        if not cursor or not events:
            return


class AudienceExportOperator(BaseOperator):
    """Base of the audience exports: read the scan XCom, pick the fields, stage, deliver.

    Subclasses implement :meth:`deliver` (and :meth:`plan` for dry runs). ``fields`` are the
    Lytics fields to export (default: every field of the user schema).
    """

    template_fields: Sequence[str] = ("fields",)

    def __init__(
        self,
        *,
        job_id: str,
        fields: Sequence[str] | None = None,
        scan_task_id: str = "scan",
        lytics_conn_id: str = LyticsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.fields = list(fields) if fields else None
        self.scan_task_id = scan_task_id
        self.lytics_conn_id = lytics_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        scan = context["ti"].xcom_pull(task_ids=self.scan_task_id)
        if not scan or not scan.get("snapshot"):
            raise ValueError(f"task {self.scan_task_id!r} returned no snapshot; run the scan task first")
        self.work_dir = run_dir(self.job_id, context["run_id"])
        self.stamp = run_stamp(context)
        self.slug = str(scan["audience"]["slug"])
        self.snapshot_path = Path(scan["snapshot"])
        self.members = int(scan.get("members") or 0)
        dry_run = as_bool((context.get("params") or {}).get("dry_run"))
        report: dict[str, Any] = {"audience": scan["audience"], "members": self.members, "dry_run": dry_run}
        if dry_run:
            report.update(self.plan(context))
            self.log.info("Dry run: nothing sent. Plan: %s", report)
            return report
        report.update(self.deliver(context))
        self.log.info("Delivered: %s", report)
        return report

    # -- helpers for subclasses ----------------------------------------------------------------
    def schema_fields(self) -> list[dict[str, Any]]:
        """The user schema from Lytics (one API call)."""
        return LyticsHook(self.lytics_conn_id).get_schema_fields("user")

    def field_names(self) -> list[str]:
        """The fields to export: as configured, else every schema field."""
        if self.fields:
            return self.fields
        return [str(f["id"]) for f in self.schema_fields()]

    def records(self) -> Iterator[dict[str, Any]]:
        """The snapshot's members, streamed."""
        with Snapshot(self.snapshot_path) as snapshot:
            yield from snapshot.iter_records()

    def rejects(self, name: str = "rejects.jsonl") -> RejectsWriter:
        """A rejects file in the run directory."""
        return RejectsWriter(self.work_dir / name, logger=self.log)

    def stage_warehouse_csv(self, columns: Sequence[Column], name: str, rejects: RejectsWriter) -> StagedFile:
        """Stage the audience as a gzip CSV whose header is the column names and cells are typed."""
        from lytics_provider.pipeline.warehouse_types import row_cells

        return stage_file(
            self.records(),
            self.work_dir / "staged",
            name,
            file_format="csv",
            columns=[c.name for c in columns],
            to_row=lambda record: row_cells(record, columns),
            compression="gz",
            rejects=rejects,
        )

    def plan(self, context: Context) -> dict[str, Any]:
        """What a real run would do (dry run)."""
        return {}

    def deliver(self, context: Context) -> dict[str, Any]:  # pragma: no cover - abstract
        """Send the audience; return the delivery report."""
        raise NotImplementedError


class _FileExportMixin:
    """Options shared by the S3 and GCS file exports."""

    url_scheme: str
    bucket: str
    file_format: FileFormat
    compression: str
    filename: str
    directory: str
    pgp_conn_id: str | None

    def _set_file_options(
        self,
        *,
        bucket: str,
        directory: str,
        file_format: FileFormat,
        compression: str,
        filename: str,
        pgp_conn_id: str | None,
    ) -> None:
        """Keep and check the bucket and file options."""
        self.bucket = bucket
        self.directory = directory
        self.file_format = file_format
        self.compression = compression
        self.filename = filename
        self.pgp_conn_id = pgp_conn_id
        if self.file_format not in ("csv", "jsonl"):
            raise ValueError(f"file_format {self.file_format!r} is not supported; use 'csv' or 'jsonl'")
        if self.compression not in ("none", "gz"):
            raise ValueError(f"compression {self.compression!r} is not supported; use 'none' or 'gz'")

    def plan(self, context: Context) -> dict[str, Any]:
        """What a dry run would write: the object URL and the columns."""
        key = join_key(self.directory, self._object_name(self.slug, self.stamp))
        return {"target": f"{self.url_scheme}://{self.bucket}/{key}", "fields": self.field_names()}

    def _object_name(self, slug: str, stamp: str) -> str:
        name = export_name(
            self.filename, slug=slug, stamp=stamp, file_format=self.file_format, compression=self.compression
        )
        if self.pgp_conn_id:
            from lytics_provider.pipeline.pgp import encrypted_name

            name = encrypted_name(name)
        return name

    def _stage(self, records: Any, work_dir: Path, name: str, fields: list[str], log: Any) -> StagedFile:
        public_key = pgp_keys(self.pgp_conn_id)[0] if self.pgp_conn_id else None
        if self.pgp_conn_id and not public_key:
            raise ValueError(
                f"connection {self.pgp_conn_id!r} has no public_key extra: paste the recipient's "
                "ASCII-armored public key there"
            )
        return stage_file(
            records,
            work_dir / "staged",
            name,
            file_format=self.file_format,
            columns=fields,
            compression=self.compression,
            pgp_public_key=public_key,
        )


class LyticsToS3Operator(_FileExportMixin, AudienceExportOperator):
    """Export the scanned audience to ``s3://{bucket}/{directory}/{filename}``.

    :param bucket: S3 Bucket Name.
    :param directory: key prefix ("Directory").
    :param file_format: ``csv`` (header row, lists joined with commas, maps as JSON) or ``jsonl``.
    :param compression: ``none`` or ``gz``.
    :param filename: name template with ``{slug}``, ``{timestamp}`` (run's logical date, UTC) and ``{ext}``.
    :param pgp_conn_id: connection whose ``public_key`` extra encrypts the file (``.pgp`` appended).
    """

    template_fields: Sequence[str] = ("fields", "bucket", "directory", "filename")
    url_scheme = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        directory: str = "",
        file_format: FileFormat = "csv",
        compression: str = "gz",
        filename: str = DEFAULT_FILENAME,
        pgp_conn_id: str | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._set_file_options(
            bucket=bucket,
            directory=directory,
            file_format=file_format,
            compression=compression,
            filename=filename,
            pgp_conn_id=pgp_conn_id,
        )
        self.aws_conn_id = aws_conn_id

    def deliver(self, context: Context) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        fields = self.field_names()
        staged = self._stage(
            self.records(), self.work_dir, self._object_name(self.slug, self.stamp), fields, self.log
        )
        key = join_key(self.directory, staged.name)
        S3Hook(aws_conn_id=self.aws_conn_id).load_file(staged.path, key, self.bucket, replace=True)
        self.log.info(
            "Uploaded %d rows (%d bytes) to s3://%s/%s", staged.rows, staged.bytes, self.bucket, key
        )
        staged.path.unlink()
        return {"target": f"s3://{self.bucket}/{key}", "rows": staged.rows, "bytes": staged.bytes}


class LyticsStreamToS3Operator(_FileExportMixin, BaseOperator):
    """Export Activity Data: every event of a Lytics stream to one S3 file (all stream fields).

    CSV columns are the union of the event keys, found in a first pass over a local JSON-lines
    copy (so memory stays bounded); JSON lines keeps each event as it is.
    """

    template_fields: Sequence[str] = ("stream", "bucket", "directory", "filename")
    url_scheme = "s3"

    def __init__(
        self,
        *,
        job_id: str,
        stream: str,
        bucket: str,
        directory: str = "",
        file_format: FileFormat = "csv",
        compression: str = "gz",
        filename: str = "lytics_{slug}_events_{timestamp}.{ext}",
        pgp_conn_id: str | None = None,
        aws_conn_id: str | None = "aws_default",
        lytics_conn_id: str = LyticsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.stream = stream
        self._set_file_options(
            bucket=bucket,
            directory=directory,
            file_format=file_format,
            compression=compression,
            filename=filename,
            pgp_conn_id=pgp_conn_id,
        )
        self.aws_conn_id = aws_conn_id
        self.lytics_conn_id = lytics_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        work = run_dir(self.job_id, context["run_id"])
        name = self._object_name(self.stream, run_stamp(context))
        key = join_key(self.directory, name)
        if as_bool((context.get("params") or {}).get("dry_run")):
            return {"dry_run": True, "stream": self.stream, "target": f"s3://{self.bucket}/{key}"}
        local, columns = download_events(LyticsHook(self.lytics_conn_id), self.stream, work)
        staged = self._stage(_read_jsonl(local), work, name, columns, self.log)
        S3Hook(aws_conn_id=self.aws_conn_id).load_file(staged.path, key, self.bucket, replace=True)
        local.unlink()
        staged.path.unlink()
        self.log.info(
            "Exported %d events of stream %r to s3://%s/%s", staged.rows, self.stream, self.bucket, key
        )
        return {"stream": self.stream, "target": f"s3://{self.bucket}/{key}", "rows": staged.rows}


def download_events(hook: LyticsHook, stream: str, work: Path) -> tuple[Path, list[str]]:
    """Copy a stream's events to a local JSON-lines file; return it and every key seen (first-seen order)."""
    import json

    path = work / f"events_{stream}.jsonl"
    columns: dict[str, None] = {}
    with open(path, "w", encoding="utf-8") as out:
        for event in iter_stream_events(hook, stream):
            columns.update(dict.fromkeys(event))
            out.write(json.dumps(event, separators=(",", ":"), default=str))
            out.write("\n")
    return path, list(columns)


def _read_jsonl(path: Path) -> Iterator[Mapping[str, Any]]:
    import json

    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)
