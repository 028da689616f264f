"""Import CSV / JSON-lines files from Amazon S3 into a Lytics stream.

The file-import engine shared with GCS lives in :class:`ObjectFilesToLyticsOperator`; a store
subclass only lists and downloads. Each run:

1. lists the objects under **Prefix** and keeps those at or after **Since**, from **Starting
   File** on, newer than the last file imported (or, for the continuous ``prefix_timestamp.json``
   sequence, with a later name timestamp) — see :func:`select_objects`;
2. for each file, oldest first: downloads it, undoes PGP and gzip, reads rows (bad rows go to a
   rejects file with the reason) and posts them to ``/collect/json/{stream}`` in batches;
3. after each acknowledged batch commits ``{key, rows_done}``, and after the last one the file as
   the new "last file". A retried task resumes inside the file where the last acknowledged batch
   ended: nothing is sent twice, nothing skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from airflow.sdk import BaseOperator, Context

from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.object_files import (
    ObjectInfo,
    open_plain,
    parse_since,
    read_records,
    select_objects,
)
from lytics_provider.pipeline.progress import Progress
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.retention import prune_job_runs
from lytics_provider.pipeline.workarea import JobState, run_dir, safe_name

FileType = Literal["csv", "json"]


class ObjectFilesToLyticsOperator(BaseOperator):
    """Import Files: object-store files into a Lytics stream (see the module docstring).

    :param bucket: Bucket.
    :param prefix: Prefix, e.g. ``new-users-`` or ``exports/new-users-``.
    :param file_type: ``csv`` (with a header row) or ``json`` (one object per line).
    :param stream: Lytics stream.
    :param timestamp_field: Timestamp Field (event time in Lytics).
    :param since: Since, ``yyyy/mm/dd HH:MM/SS``: oldest file date to import.
    :param starting_file: Starting File: this file and newer ones are imported.
    :param continuous: Continuous Import of ``prefix_timestamp.json`` files, in name order.
    :param pgp_conn_id: connection with ``private_key`` extra (and the passphrase as password).
    """

    template_fields: Sequence[str] = ("bucket", "prefix", "stream", "since", "starting_file")
    store_name = "objects"

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
        lytics_conn_id: str = LyticsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if file_type not in ("csv", "json"):
            raise ValueError(
                f"file_type {file_type!r} is not supported; "
                "use 'csv' (with a header row) or 'json' (JSON lines)"
            )
        self.job_id = job_id
        self.bucket = bucket
        self.stream = stream
        self.prefix = prefix
        self.file_type = file_type
        self.timestamp_field = timestamp_field
        self.since = since
        self.starting_file = starting_file
        self.continuous = continuous
        self.pgp_conn_id = pgp_conn_id
        self.batch_size = batch_size
        self.lytics_conn_id = lytics_conn_id

    # -- store interface -----------------------------------------------------------------------
    def list_objects(self) -> Iterable[ObjectInfo]:  # pragma: no cover - abstract
        """Every object under the prefix."""
        raise NotImplementedError

    def download(self, key: str, path: Path) -> None:  # pragma: no cover - abstract
        """Copy one object to a local file (streamed)."""
        raise NotImplementedError

    # -- run -----------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        since = parse_since(self.since)
        state = JobState(self.job_id)
        saved = state.load()
        ordered, skipped = select_objects(
            self.list_objects(),
            prefix=self.prefix,
            since=since,
            starting_file=self.starting_file,
            last_file=saved.get("last_file"),
            continuous=self.continuous,
        )
        for reason in skipped[:20]:
            self.log.warning("Skipped %s", reason)
        self.log.info(
            "%d files to import from %s://%s/%s: %s",
            len(ordered),
            self.store_name,
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
            "dry_run": as_bool((context.get("params") or {}).get("dry_run")),
        }
        if report["dry_run"]:
            return report
        if self.continuous and not ordered:
            self.log.warning(
                "No next file after %s: the continuous sequence has stopped until a newer "
                "prefix_timestamp.json file arrives",
                (saved.get("last_file") or {}).get("key", "the start"),
            )
        private_key = passphrase = None
        if self.pgp_conn_id:
            from lytics_provider.hooks.pgp import PGPHook

            private_key, passphrase = PGPHook(self.pgp_conn_id).decryption_keys()
        hook = LyticsHook(self.lytics_conn_id)
        work = run_dir(self.job_id, context["run_id"])
        for obj in ordered:
            sent, rejected, by_lytics = self._import_file(obj, state, hook, work, private_key, passphrase)
            report["rows"] += sent
            report["rejected"] += rejected
            report["rejected_by_lytics"] += by_lytics
        report["api_calls"] = hook.calls
        self.log.info("Import done: %s", {k: v for k, v in report.items() if k != "files"})
        prune_job_runs(self.job_id, context["run_id"])
        return report

    def _import_file(
        self,
        obj: ObjectInfo,
        state: JobState,
        hook: LyticsHook,
        work: Path,
        private_key: str | None,
        passphrase: str | None,
    ) -> tuple[int, int, int]:
        progress_state = state.get("in_progress") or {}
        resume = int(progress_state.get("rows_done") or 0) if progress_state.get("key") == obj.key else 0
        if resume:
            self.log.info("Resuming %s after row %d (acknowledged by Lytics before)", obj.key, resume)
        local = work / "downloads" / safe_name(obj.key)
        local.parent.mkdir(parents=True, exist_ok=True)
        self.download(obj.key, local)
        fmt = "csv" if self.file_type == "csv" else "jsonl"
        sent = by_lytics = 0
        progress = Progress(self.log, f"rows of {obj.key}")
        rejects = RejectsWriter(work / f"rejects_{safe_name(obj.key)}.jsonl", logger=self.log)
        with rejects, open_plain(local, private_key, passphrase) as stream:
            batch: list[dict[str, Any]] = []
            last = resume
            for number, record in read_records(stream, fmt, obj.key, rejects):  # type: ignore[arg-type]
                if number <= resume:
                    continue
                batch.append(record)
                last = number
                if len(batch) >= self.batch_size:
                    by_lytics += self._send(hook, batch, obj, state, last)
                    sent += len(batch)
                    progress.advance(len(batch))
                    batch = []
            if batch:
                by_lytics += self._send(hook, batch, obj, state, last)
                sent += len(batch)
                progress.advance(len(batch))
        state.update(last_file={"key": obj.key, "updated": obj.updated.isoformat()}, in_progress=None)
        local.unlink(missing_ok=True)
        progress.finish()
        return sent, rejects.count, by_lytics

    def _send(
        self, hook: LyticsHook, batch: list[dict[str, Any]], obj: ObjectInfo, state: JobState, last: int
    ) -> int:
        result = hook.collect_json(self.stream, batch, timestamp_field=self.timestamp_field, filename=obj.key)
        state.update(in_progress={"key": obj.key, "rows_done": last})
        return result.rejected


class S3ToLyticsOperator(ObjectFilesToLyticsOperator):
    """Import Audiences & Activity Data (CSV) / Custom Data (JSON) from S3 (official ``S3Hook``)."""

    store_name = "s3"

    def __init__(self, *, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id

    def _client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id).get_conn()

    def list_objects(self) -> Iterable[ObjectInfo]:
        paginator = self._client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"], int(item["Size"]), item["LastModified"])

    def download(self, key: str, path: Path) -> None:
        self._client().download_file(self.bucket, key, str(path))
