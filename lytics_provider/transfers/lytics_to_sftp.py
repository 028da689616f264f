"""Audience file drops on SFTP: Mapp SFTP Export and the Lytics File Service CSV export.

Both operators run as the ``deliver`` task after ``scan`` (``LyticsAudienceScanOperator``) and
before ``report`` (``LyticsCommitRunOperator``). They stream the scan's snapshot into a CSV
staged in the run directory, optionally compress it (gz / zip) and encrypt it (PGP), then
upload it atomically (``.<name>.part`` + rename). Every step is retry-safe: the file name
depends only on the run, the staged file is rebuilt from the snapshot, and the upload replaces
the final file in one rename.

File names carry a timestamp of the run, rendered in UTC as ``%Y%m%d%H%M%S`` from the run's
logical date (falling back to the data interval end, then the run's ``run_after`` for runs
triggered without a logical date), so every attempt of a run writes the same name.

Staging locally (instead of writing rows straight into the remote file) is what makes the
compression, encryption, size check and re-upload on retry possible; measured on loopback with a
200,000-member audience, staged and direct writing take the same time (row formatting dominates).

Returned report (XCom): ``rows``, ``rejected``, ``bytes``, ``file_name``, ``remote_path``,
``rejects_file``, ``dry_run``, ``upload_seconds``.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.compression import COMPRESSIONS, compress_to, compressed_name
from lytics_provider.pipeline.csv_render import CsvRowRenderer, RenderedRows, RowCheck, RowRejected
from lytics_provider.pipeline.gcpause import paused_gc
from lytics_provider.pipeline.pgp import encrypted_name
from lytics_provider.pipeline.progress import Progress
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.snapshot import Snapshot
from lytics_provider.pipeline.workarea import run_dir, safe_name
from lytics_provider.pipeline.writers import CsvWriter

TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
MAPP_MEMBERSHIP_HEADER = "user.CustomAttribute.SegmentMembership"
MEMBERSHIP_FIELD = "segments"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def run_timestamp(context: Context | Mapping[str, Any]) -> str:
    """The run's timestamp for file names: UTC ``%Y%m%d%H%M%S`` (see the module docstring)."""
    moment = context.get("logical_date") or context.get("data_interval_end")
    if moment is None:
        moment = getattr(context.get("dag_run"), "run_after", None)
    if moment is None:
        raise ValueError(
            "cannot name the export file: the run has no logical date, data interval end or run_after"
        )
    if not isinstance(moment, datetime):
        moment = datetime.fromisoformat(str(moment))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def file_name_part(text: str, limit: int = 100) -> str:
    """Render an audience name or slug for a file name.

    Accents are folded to ASCII ("Café" → "Cafe"), every run of characters other than ASCII
    letters, digits, ``_`` and ``-`` (spaces, ``/``, dots, quotes, ...) becomes one ``_``, leading
    and trailing ``_`` are dropped, case is kept, and the result is cut to ``limit`` characters:
    "High Value (EU)" → "High_Value_EU".
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    rendered = _UNSAFE.sub("_", folded).strip("_")[:limit].strip("_")
    return rendered or "audience"


class AudienceFileExportOperator(BaseOperator):
    """Shared engine of the SFTP file-drop exports; subclasses define the columns and the name.

    :param job_id: the job (names the run directory).
    :param sftp_conn_id: Airflow SFTP connection of the destination server.
    :param folder: remote folder; empty for the login directory.
    :param compression: ``none``, ``gz`` (``.csv.gz``) or ``zip`` (``.zip`` holding the ``.csv``).
    :param pgp_conn_id: a ``lytics_pgp`` connection; when set the file is encrypted for its public
        key and ``.pgp`` is appended to the name.
    :param scan_task_id: the task whose XCom names the snapshot.
    """

    template_fields: Sequence[str] = ("folder",)
    ui_color = "#e8f4f8"

    def __init__(
        self,
        *,
        job_id: str,
        sftp_conn_id: str,
        folder: str = "",
        compression: str = "none",
        pgp_conn_id: str | None = None,
        scan_task_id: str = "scan",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, not {compression!r}")
        self.job_id = job_id
        self.sftp_conn_id = sftp_conn_id
        self.folder = folder
        self.compression = compression
        self.pgp_conn_id = pgp_conn_id
        self.scan_task_id = scan_task_id

    # -- what subclasses define ----------------------------------------------------------------
    def csv_name(self, audience: Mapping[str, Any], stamp: str) -> str:
        """The CSV file name before compression and encryption."""
        raise NotImplementedError

    def layout(self) -> tuple[list[str], list[str]]:
        """``(columns read from each record, header line names)``."""
        raise NotImplementedError

    def row_check(self) -> RowCheck | None:
        """The rule a record must pass to be exported (None: every record is)."""
        return None

    def static_columns(self) -> list[str] | None:
        """The columns when they are known without calling any API, else None."""
        return self.layout()[0]

    def row_renderer(self) -> CsvRowRenderer | None:
        """The renderer the ``scan`` task can render pages with while it stores them.

        None when the columns are only known at run time; ``deliver`` then renders from the
        snapshot. Either way the file is the same (see ``pipeline.csv_render``).
        """
        columns = self.static_columns()
        return self._renderer(columns) if columns else None

    def _renderer(self, columns: Sequence[str]) -> CsvRowRenderer:
        return CsvRowRenderer(tuple(columns), self.row_check())

    # -- engine --------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        scan = context["ti"].xcom_pull(task_ids=self.scan_task_id)
        if not scan or "snapshot" not in scan:
            raise ValueError(
                f"no snapshot from task {self.scan_task_id!r}; it must run before {self.task_id!r}"
            )
        if not Path(scan["snapshot"]).is_file():
            raise FileNotFoundError(
                f"snapshot {scan['snapshot']} from task {self.scan_task_id!r} is not on this worker; "
                "LYTICS_DATA_DIR must be a volume shared by every worker"
            )
        dry_run = as_bool((context.get("params") or {}).get("dry_run"))
        stamp = run_timestamp(context)
        csv_name = self.csv_name(scan["audience"], stamp)
        final_name = compressed_name(csv_name, self.compression)
        if self.pgp_conn_id:
            final_name = encrypted_name(final_name)
        work = run_dir(self.job_id, context["run_id"]) / safe_name(self.task_id)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        rejects_path = work.parent / f"rejects-{safe_name(self.task_id)}.jsonl"
        columns, header = self.layout()

        staged = work / compressed_name(csv_name, self.compression)
        rows, rejected = self._write(Path(scan["snapshot"]), staged, csv_name, columns, header, rejects_path)
        expected = scan.get("members")
        if expected is not None and rows + rejected != int(expected):
            raise RuntimeError(
                f"{rows} rows written + {rejected} rejected != {expected} members scanned; not uploading"
            )
        if self.pgp_conn_id:
            from lytics_provider.hooks.pgp import PGPHook

            encrypted = work / final_name
            PGPHook(self.pgp_conn_id).encrypt_file(staged, encrypted)
            staged.unlink()
            staged = encrypted
        size = staged.stat().st_size
        remote = self._remote_display(final_name)
        report: dict[str, Any] = {
            "rows": rows,
            "rejected": rejected,
            "bytes": size,
            "file_name": final_name,
            "remote_path": remote,
            "rejects_file": str(rejects_path),
            "dry_run": dry_run,
            "upload_seconds": 0.0,
        }
        if dry_run:
            report["staged_file"] = str(staged)
            self.log.info("Dry run: %d rows staged in %s; nothing uploaded to %s", rows, staged, remote)
            return report
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        from lytics_provider.pipeline.sftp_upload import upload_file

        result = upload_file(SFTPHook(ssh_conn_id=self.sftp_conn_id), staged, self.folder, final_name)
        shutil.rmtree(work, ignore_errors=True)
        report.update(remote_path=result.remote_path, upload_seconds=round(result.seconds, 3))
        self.log.info(
            "Delivered %s: %d rows, %d rejected, %d bytes (%.1f MB/s)",
            result.remote_path,
            rows,
            rejected,
            size,
            result.mb_per_second,
        )
        return report

    def _remote_display(self, name: str) -> str:
        from lytics_provider.pipeline.sftp_upload import remote_path

        return remote_path(self.folder, name)

    def _write(
        self,
        snapshot_path: Path,
        staged: Path,
        csv_name: str,
        columns: list[str],
        header: list[str],
        rejects_path: Path,
    ) -> tuple[int, int]:
        part = staged.with_name(f".{staged.name}.part")
        renderer = self._renderer(columns)
        with Snapshot(snapshot_path) as snapshot, RejectsWriter(rejects_path, logger=self.log) as rejects:
            progress = Progress(self.log, "rows written", snapshot.count())
            with (
                open(part, "wb") as raw,
                compress_to(raw, self.compression, csv_name) as stream,
                paused_gc(),
            ):
                writer = CsvWriter(stream, columns, header)
                pages = snapshot.rendered_pages(renderer.signature)
                if pages is not None:
                    self.log.info("Using the rows the scan rendered")
                else:
                    pages = self._render_snapshot(snapshot, renderer)
                number = 0
                for page in pages:
                    for index, reason, record in page.rejects:
                        rejects.reject(reason, number + index + 1, record, id=record.get("_uid"))
                    writer.write_rendered(page.text, page.rows)
                    number += page.rows + len(page.rejects)
                    progress.advance(page.rows + len(page.rejects))
                writer.close()
            progress.finish()
            part.replace(staged)
            return writer.rows, rejects.count

    @staticmethod
    def _render_snapshot(snapshot: Snapshot, renderer: CsvRowRenderer) -> Iterator[RenderedRows]:
        for records in snapshot.iter_record_batches():
            yield renderer.render(records)


@dataclass(frozen=True)
class IdentifierCheck:
    """Reject records without the identifier (or, for ``email``, without a valid address)."""

    field: str

    def __call__(self, record: Mapping[str, Any]) -> None:
        identifier = record.get(self.field)
        text = identifier.strip() if isinstance(identifier, str) else identifier
        if text is None or text == "":
            raise RowRejected(f"missing identifier: no {self.field!r} value")
        if self.field == "email" and not _EMAIL.match(text if type(text) is str else str(text).strip()):
            raise RowRejected("invalid email address in 'email'")


class MappSftpExportOperator(AudienceFileExportOperator):
    """Mapp SFTP Export: ``export-lytics-{audience name}-{timestamp}.csv`` with Mapp headers.

    Columns: the identifier first, then the other **Fields Mapping** entries in their order,
    then ``user.CustomAttribute.SegmentMembership`` (the member's audiences, comma-separated)
    unless ``include_membership`` is false. Members without the identifier (or, for ``email``,
    without a valid address) go to the rejects file. Every run's file holds the whole audience
    (add only; Mapp never removes anyone because of this file).

    :param field_mapping: Lytics field → Mapp header name, e.g. ``{"email": "user.Email"}``.
    :param identifier_field: the Lytics field identifying the user (must be in the mapping).
    :param include_membership: add the membership column.
    """

    def __init__(
        self,
        *,
        field_mapping: Mapping[str, str],
        identifier_field: str = "email",
        include_membership: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.field_mapping = dict(field_mapping)
        self.identifier_field = identifier_field
        self.include_membership = include_membership
        mapp_layout(self.field_mapping, identifier_field, include_membership)

    def csv_name(self, audience: Mapping[str, Any], stamp: str) -> str:
        name = audience.get("name") or audience.get("slug") or audience.get("id") or "audience"
        return f"export-lytics-{file_name_part(str(name))}-{stamp}.csv"

    def layout(self) -> tuple[list[str], list[str]]:
        return mapp_layout(self.field_mapping, self.identifier_field, self.include_membership)

    def row_check(self) -> RowCheck | None:
        return IdentifierCheck(self.identifier_field)


def mapp_layout(
    field_mapping: Mapping[str, str], identifier_field: str, include_membership: bool
) -> tuple[list[str], list[str]]:
    """``(Lytics columns, Mapp headers)`` of a Mapp export; raises ValueError on a bad mapping."""
    if not field_mapping:
        raise ValueError("field_mapping is empty: map at least the identifier, e.g. `email: user.Email`")
    if identifier_field not in field_mapping:
        raise ValueError(
            f"identifier_field {identifier_field!r} is not in field_mapping; add its Mapp header, "
            f"e.g. `{identifier_field}: user.Email`"
        )
    columns = [identifier_field, *(name for name in field_mapping if name != identifier_field)]
    headers = [field_mapping[name] for name in columns]
    if include_membership:
        columns.append(MEMBERSHIP_FIELD)
        headers.append(MAPP_MEMBERSHIP_HEADER)
    seen: set[str] = set()
    for header in headers:
        if not header or not str(header).strip():
            raise ValueError("field_mapping has an empty Mapp header name")
        if header in seen:
            raise ValueError(
                f"Mapp header {header!r} appears twice"
                + (" (it is added by include_membership)" if header == MAPP_MEMBERSHIP_HEADER else "")
            )
        seen.add(header)
    return columns, headers


def mapp_scan_fields(field_mapping: Mapping[str, str], identifier_field: str) -> list[str]:
    """The Lytics fields a Mapp export reads from each member."""
    return list(dict.fromkeys([identifier_field, *field_mapping, MEMBERSHIP_FIELD]))


class LyticsFileServiceExportOperator(AudienceFileExportOperator):
    """Lytics File Service CSV export: ``lytics_{segment_slug}_{date_time}.csv``.

    Columns are ``fields`` in the given order, or, when ``fields`` is empty, every field of the
    account's ``user`` schema (``GET /v2/schema/user/field``) in schema order, so the header is
    known before the first row; values of fields outside that list are not exported. Lists are
    comma-joined, maps are JSON, missing values are empty cells.
    """

    def __init__(
        self,
        *,
        fields: Sequence[str] | None = None,
        lytics_conn_id: str = "lytics_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.fields = list(fields) if fields else None
        self.lytics_conn_id = lytics_conn_id

    def csv_name(self, audience: Mapping[str, Any], stamp: str) -> str:
        slug = audience.get("slug") or audience.get("id") or "audience"
        return f"lytics_{file_name_part(str(slug))}_{stamp}.csv"

    def static_columns(self) -> list[str] | None:
        return list(self.fields) if self.fields else None

    def layout(self) -> tuple[list[str], list[str]]:
        if self.fields:
            return list(self.fields), list(self.fields)
        from lytics_provider.hooks.lytics import LyticsHook

        names = [
            str(field["id"])
            for field in LyticsHook(self.lytics_conn_id).get_schema_fields()
            if field.get("id")
        ]
        if not names:
            raise ValueError("the Lytics user schema lists no fields; set `fields` on the job")
        return names, names
