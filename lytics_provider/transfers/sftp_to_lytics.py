"""Lytics File Service import: CSV or JSON-lines files on SFTP into a Lytics stream.

Each run lists ``folder``, keeps regular files matching ``pattern`` and none of ``exclude``
(names starting with ``.`` are in-progress uploads and are skipped) and imports the ones not
imported before, oldest first (by modification time, then name). A file is identified by name
+ size + modification time, so a file replaced under the same name is imported again.

Per file: download (streamed), decrypt when the name ends in ``.pgp``/``.gpg``/``.asc``
(``pgp_conn_id`` private key + passphrase), decompress gzip or zip (recognised by the file's
first bytes), parse, validate (:mod:`lytics_provider.files.readers`), and post to
``/collect/json/{stream}`` in batches of at most ``batch_bytes``. JSON batches (rather than one
``/collect/bulk`` upload per file) let every row be checked here first, so each bad row lands in
the rejects file with its reason, and let the import checkpoint after every acknowledged batch
(:mod:`lytics_provider.files.ingest`): a retry resumes after the last acknowledged batch instead
of sending the file again. A file is recorded as imported in the job state only after its last
batch was acknowledged.

``fields`` selects the columns (CSV) or keys (JSON) sent; the others are left out. A selected
field that a file does not have is a warning naming the file and the field (the selection is made
from one file's fields, and JSON lines carry no fixed set of keys), and the report lists, per
file, the fields it has (``fields``) and the selected ones it lacks (``missing_fields``): a dry
run reads the files and so lists their fields without sending anything.

Bad rows (malformed JSON lines, lines that are not JSON objects, CSV rows with the wrong number
of columns, records over the 16 KB Lytics limit) go to ``rejects-<file>.jsonl`` in the run
directory; the rest is imported. A file that cannot be read at all (bad header, wrong key,
corrupt gzip) is reported and left for the next run; the task fails after importing the others.
"""

from __future__ import annotations

import fnmatch
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.field_selection import check_selected_fields
from lytics_provider.files.ingest import FileCheckpoint, StreamWriter, ingest_file
from lytics_provider.files.ingest_operator import pgp_decrypt
from lytics_provider.files.listing import ObjectInfo, SFTPStore
from lytics_provider.files.readers import FORMATS, FileImportError, ReadOptions
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.pgp import PGPError
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.retention import prune_job_runs
from lytics_provider.pipeline.workarea import JobState, run_dir, safe_name

__all__ = ["FileImportError", "SFTPToLyticsOperator"]
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
STATE_KEY = "imported_files"


class SFTPToLyticsOperator(BaseOperator):
    """Import new CSV / JSON-lines files from an SFTP folder into a Lytics stream.

    :param job_id: the job (names the run directory and the state that remembers files).
    :param stream: Lytics stream the records go to.
    :param sftp_conn_id: Airflow SFTP connection of the source server.
    :param folder: remote folder; empty for the login directory.
    :param pattern: glob of the file names to import, e.g. ``contacts_*.csv*``.
    :param exclude: globs of names never imported though they match ``pattern`` (marker files
        such as ``*.ready`` that a partner writes beside its data files).
    :param format: ``csv`` (header row first) or ``jsonl`` (one JSON object per line).
    :param pgp_conn_id: ``lytics_pgp`` connection with the private key for ``.pgp`` files.
    :param timestamp_field: record field Lytics uses as the event time.
    :param delimiter: CSV delimiter.
    :param max_files: import at most this many files per run (oldest first); the rest wait.
    :param batch_bytes: upper bound of one ``/collect/json`` request body.
    :param fields: the columns (CSV) or keys (JSON) to import; empty or ``None``: every one.
    """

    template_fields: Sequence[str] = ("folder", "pattern", "stream")
    ui_color = "#e8f8ec"

    def __init__(
        self,
        *,
        job_id: str,
        stream: str,
        sftp_conn_id: str,
        folder: str = "",
        pattern: str = "*",
        exclude: Sequence[str] = (),
        format: str = "csv",
        lytics_conn_id: str = "lytics_default",
        pgp_conn_id: str | None = None,
        timestamp_field: str | None = None,
        delimiter: str = ",",
        max_files: int | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        fields: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
        self.fields = list(fields or [])
        check_selected_fields(self.fields, timestamp_field)
        self.batch_bytes = min(int(batch_bytes), 8 * 1024 * 1024)

    # -- planning ------------------------------------------------------------------------------
    def list_candidates(self, store: SFTPStore) -> list[ObjectInfo]:
        """Regular files in ``folder`` matching ``pattern`` and no ``exclude`` glob, oldest first."""
        files = [
            f
            for f in store.list_objects("")
            if fnmatch.fnmatchcase(f.key, self.pattern)
            and not any(fnmatch.fnmatchcase(f.key, glob) for glob in self.exclude)
        ]
        return sorted(files, key=lambda f: (f.updated, f.key))

    @staticmethod
    def fingerprint(entry: ObjectInfo) -> dict[str, int]:
        """What identifies one version of a remote file."""
        return {"size": entry.size, "mtime": int(entry.updated.timestamp())}

    # -- run -----------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = run_param(context, "dry_run")
        state = JobState(self.job_id)
        work = run_dir(self.job_id, context["run_id"]) / safe_name(self.task_id)
        work.mkdir(parents=True, exist_ok=True)
        lytics = LyticsHook(self.lytics_conn_id)
        files: list[dict[str, Any]] = []
        failures: list[str] = []
        store = SFTPStore(self.sftp_conn_id, self.folder)
        candidates = self.list_candidates(store)
        imported = dict(state.get(STATE_KEY) or {})
        new = [entry for entry in candidates if imported.get(entry.key) != self.fingerprint(entry)]
        waiting = new[self.max_files :] if self.max_files else []
        new = new[: self.max_files] if self.max_files else new
        self.log.info(
            "%d files match %r in %r: %d already imported, %d to import%s",
            len(candidates),
            self.pattern,
            self.folder or ".",
            len(candidates) - len(new) - len(waiting),
            len(new),
            f", {len(waiting)} left for later runs (max_files)" if waiting else "",
        )
        present = {entry.key for entry in candidates}
        for entry in new:
            try:
                report = self._import_file(store, lytics, entry, work, dry_run)
            except (FileImportError, PGPError, OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
                if isinstance(exc, ConnectionError):
                    raise
                failures.append(f"{entry.key}: {exc}")
                self.log.error("Could not import %s: %s", entry.key, exc)
                continue
            files.append(report)
            if not dry_run:
                self._commit(state, entry, report, present)
        report = {
            "stream": self.stream,
            "files": files,
            "files_imported": 0 if dry_run else len(files),
            "files_skipped": len(candidates) - len(new) - len(waiting),
            "files_waiting": len(waiting),
            "files_failed": failures,
            "rows": sum(f["rows"] for f in files),
            "rejected": sum(f["rejected"] for f in files),
            "lytics_rejected": sum(f["lytics_rejected"] for f in files),
            "bytes": sum(f["bytes"] for f in files),
            "rejects_files": [f["rejects_file"] for f in files if f["rejected"]],
            "missing_fields": {f["name"]: f["missing_fields"] for f in files if f["missing_fields"]},
            "api_calls": lytics.calls,
            "dry_run": dry_run,
        }
        self.log.info(
            "Import report: %d files, %d rows sent, %d rejected here, %d rejected by Lytics%s",
            len(files),
            report["rows"],
            report["rejected"],
            report["lytics_rejected"],
            " (dry run: nothing sent)" if dry_run else "",
        )
        if failures:
            raise FileImportError(
                f"{len(failures)} file(s) could not be imported (the others were): " + "; ".join(failures)
            )
        if not dry_run:
            prune_job_runs(self.job_id, context["run_id"])
        return report

    def _commit(self, state: JobState, entry: ObjectInfo, report: dict[str, Any], present: set[str]) -> None:
        """Remember the imported file; forget entries whose files left the folder."""
        imported = {name: value for name, value in (state.get(STATE_KEY) or {}).items() if name in present}
        imported[entry.key] = self.fingerprint(entry)
        state.update(**{STATE_KEY: imported})
        self.log.info("Committed %s (%d rows)", entry.key, report["rows"])

    def _import_file(
        self, store: SFTPStore, lytics: LyticsHook, entry: ObjectInfo, work: Path, dry_run: bool
    ) -> dict[str, Any]:
        """Download (own SFTP session, closed before posting), decrypt, parse and send one file."""
        name = entry.key
        base = safe_name(name)
        fingerprint = self.fingerprint(entry)
        checkpoint = FileCheckpoint(work / f"{base}.checkpoint.json")
        local = work / f"{base}.download"
        if not local.exists() or local.stat().st_size != fingerprint["size"]:
            store.download(name, local)
        rejects_path = work.parent / f"rejects-{base}.jsonl"
        writer = StreamWriter(
            lytics,
            self.stream,
            timestamp_field=self.timestamp_field,
            filename=name,
            max_batch_bytes=self.batch_bytes,
            send=not dry_run,
        )
        with RejectsWriter(rejects_path, logger=self.log) as rejects:
            result = ingest_file(
                local,
                name,
                writer,
                checkpoint,
                rejects,
                ReadOptions(self.format, self.delimiter, fields=tuple(self.fields)),  # type: ignore[arg-type]
                scope=f"{name}@{fingerprint['size']}:{fingerprint['mtime']}",
                decrypt=pgp_decrypt(self.pgp_conn_id),
                keep_counts=True,
                logger=self.log,
            )
        local.unlink(missing_ok=True)
        if not dry_run:
            checkpoint.clear()
        return {
            "name": name,
            "bytes": fingerprint["size"],
            "rejects_file": str(rejects_path),
            "rows": result.rows,
            "rejected": result.rejected,
            "accepted": result.accepted,
            "lytics_rejected": result.lytics_rejected,
            "fields": result.fields_found,
            "missing_fields": result.missing_fields,
        }
