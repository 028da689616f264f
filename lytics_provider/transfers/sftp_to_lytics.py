"""Lytics File Service import: CSV or JSON-lines files on SFTP into a Lytics stream.

Each run lists ``folder``, keeps regular files matching ``pattern`` (names starting with ``.``
are in-progress uploads and are skipped) and imports the ones not imported before, oldest
first (by modification time, then name). A file is identified by name + size + modification
time, so a file replaced under the same name is imported again.

Per file: download (streamed), decrypt when the name ends in ``.pgp``/``.gpg``/``.asc``
(``pgp_conn_id`` private key + passphrase), decompress when it then ends in ``.gz`` or
``.zip``, parse, validate, and post to ``/collect/json/{stream}`` in batches of at most
``batch_bytes``. JSON batches (rather than one ``/collect/bulk`` upload per file) let every row
be checked here first, so each bad row lands in the rejects file with its reason, and let the
import checkpoint after every acknowledged batch: a retry resumes after the last acknowledged
batch instead of sending the file again. A file is recorded as imported in the job state only
after its last batch was acknowledged.

Bad rows (malformed JSON lines, lines that are not JSON objects, CSV rows with the wrong number
of columns, records over the 16 KB Lytics limit) go to ``rejects-<file>.jsonl`` in the run
directory; the rest is imported. A file that cannot be read at all (bad header, wrong key,
corrupt gzip) is reported and left for the next run; the task fails after importing the others.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import stat
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.hooks.lytics import MAX_RECORD_BYTES
from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.compression import detect_compression, open_decompressed
from lytics_provider.pipeline.pgp import PGPError, strip_pgp_suffix
from lytics_provider.pipeline.progress import Progress
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.retention import prune_job_runs
from lytics_provider.pipeline.workarea import JobState, atomic_write_text, run_dir, safe_name

if TYPE_CHECKING:
    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from paramiko import SFTPAttributes, SFTPClient

    from lytics_provider.hooks.lytics import LyticsHook

FORMATS = ("csv", "jsonl")
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
STATE_KEY = "imported_files"
_ID_FIELDS = ("_uid", "email", "user_id", "id")


class FileImportError(Exception):
    """A file that cannot be imported as a whole (the message names the file and the fix)."""


def parse_jsonl(raw: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | None, str | None, Any]]:
    """``(line number, record, reason, raw text)`` per non-blank line; reason set when rejected."""
    for number, line in enumerate(raw, 1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            yield number, None, "not valid UTF-8", line.decode("utf-8", "replace").rstrip("\r\n")
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            yield number, None, f"malformed JSON: {exc}", text.rstrip("\r\n")
            continue
        if not isinstance(value, dict):
            yield number, None, f"not a JSON object (a {type(value).__name__})", value
            continue
        yield number, value, None, value


def parse_csv(
    raw: IO[bytes], name: str, delimiter: str = ","
) -> Iterator[tuple[int, dict[str, Any] | None, str | None, Any]]:
    """``(line number, record, reason, raw row)`` per data row; the first row is the header."""
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        return
    except UnicodeDecodeError as exc:
        raise FileImportError(f"{name}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    header = [column.strip() for column in header]
    if any(not column for column in header) or len(set(header)) != len(header):
        raise FileImportError(
            f"{name}: the header row has empty or repeated column names {header!r}; fix the header"
        )
    width = len(header)
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != width:
                yield reader.line_num, None, f"wrong number of columns: expected {width}, got {len(row)}", row
                continue
            yield reader.line_num, dict(zip(header, row, strict=True)), None, row
    except UnicodeDecodeError as exc:
        raise FileImportError(f"{name}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except csv.Error as exc:
        raise FileImportError(f"{name}: unreadable CSV at line {reader.line_num}: {exc}") from None


def record_id(record: Any) -> Any:
    """A short identifier of a row for the rejects file (first identity field present)."""
    if isinstance(record, dict):
        for field in _ID_FIELDS:
            if record.get(field) not in (None, ""):
                return record[field]
    return None


class SFTPToLyticsOperator(BaseOperator):
    """Import new CSV / JSON-lines files from an SFTP folder into a Lytics stream.

    :param job_id: the job (names the run directory and the state that remembers files).
    :param stream: Lytics stream the records go to.
    :param sftp_conn_id: Airflow SFTP connection of the source server.
    :param folder: remote folder; empty for the login directory.
    :param pattern: glob of the file names to import, e.g. ``contacts_*.csv*``.
    :param format: ``csv`` (header row first) or ``jsonl`` (one JSON object per line).
    :param pgp_conn_id: ``lytics_pgp`` connection with the private key for ``.pgp`` files.
    :param timestamp_field: record field Lytics uses as the event time.
    :param delimiter: CSV delimiter.
    :param max_files: import at most this many files per run (oldest first); the rest wait.
    :param batch_bytes: upper bound of one ``/collect/json`` request body.
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
        format: str = "csv",
        lytics_conn_id: str = "lytics_default",
        pgp_conn_id: str | None = None,
        timestamp_field: str | None = None,
        delimiter: str = ",",
        max_files: int | None = None,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
        self.job_id = job_id
        self.stream = stream
        self.sftp_conn_id = sftp_conn_id
        self.folder = folder
        self.pattern = pattern
        self.format = format
        self.lytics_conn_id = lytics_conn_id
        self.pgp_conn_id = pgp_conn_id
        self.timestamp_field = timestamp_field
        self.delimiter = delimiter
        self.max_files = max_files
        self.batch_bytes = min(int(batch_bytes), 8 * 1024 * 1024)

    # -- planning ------------------------------------------------------------------------------
    def list_candidates(self, sftp: SFTPClient) -> list[SFTPAttributes]:
        """Regular files in ``folder`` matching ``pattern``, oldest first."""
        entries = sftp.listdir_attr(self.folder or ".")
        files = [
            entry
            for entry in entries
            if entry.st_mode is not None
            and stat.S_ISREG(entry.st_mode)
            and not entry.filename.startswith(".")
            and fnmatch.fnmatchcase(entry.filename, self.pattern)
        ]
        return sorted(files, key=lambda entry: (entry.st_mtime or 0, entry.filename))

    @staticmethod
    def fingerprint(entry: SFTPAttributes) -> dict[str, int]:
        """What identifies one version of a remote file."""
        return {"size": int(entry.st_size or 0), "mtime": int(entry.st_mtime or 0)}

    # -- run -----------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        from lytics_provider.hooks.lytics import LyticsHook
        from lytics_provider.pipeline.sftp_upload import ensure_folder, open_sftp

        dry_run = as_bool((context.get("params") or {}).get("dry_run"))
        state = JobState(self.job_id)
        work = run_dir(self.job_id, context["run_id"]) / safe_name(self.task_id)
        work.mkdir(parents=True, exist_ok=True)
        lytics = LyticsHook(self.lytics_conn_id)
        files: list[dict[str, Any]] = []
        failures: list[str] = []
        sftp_hook = SFTPHook(ssh_conn_id=self.sftp_conn_id)
        with open_sftp(sftp_hook) as sftp:
            ensure_folder(sftp, self.folder)
            candidates = self.list_candidates(sftp)
        imported = dict(state.get(STATE_KEY) or {})
        new = [entry for entry in candidates if imported.get(entry.filename) != self.fingerprint(entry)]
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
        present = {entry.filename for entry in candidates}
        for entry in new:
            try:
                report = self._import_file(sftp_hook, lytics, entry, work, dry_run)
            except (FileImportError, PGPError, OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
                if isinstance(exc, ConnectionError):
                    raise
                failures.append(f"{entry.filename}: {exc}")
                self.log.error("Could not import %s: %s", entry.filename, exc)
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

    def _commit(
        self, state: JobState, entry: SFTPAttributes, report: dict[str, Any], present: set[str]
    ) -> None:
        """Remember the imported file; forget entries whose files left the folder."""
        imported = {name: value for name, value in (state.get(STATE_KEY) or {}).items() if name in present}
        imported[entry.filename] = self.fingerprint(entry)
        state.update(**{STATE_KEY: imported})
        self.log.info("Committed %s (%d rows)", entry.filename, report["rows"])

    def _import_file(
        self, sftp_hook: SFTPHook, lytics: LyticsHook, entry: SFTPAttributes, work: Path, dry_run: bool
    ) -> dict[str, Any]:
        """Download (own SFTP session, closed before posting), decrypt, parse and send one file."""
        from lytics_provider.pipeline.sftp_upload import download_file, open_sftp, remote_path

        name = entry.filename
        base = safe_name(name)
        fingerprint = self.fingerprint(entry)
        checkpoint_path = work / f"{base}.checkpoint.json"
        checkpoint = _read_json(checkpoint_path)
        if checkpoint.get("fingerprint") != fingerprint or dry_run:
            checkpoint = {"fingerprint": fingerprint, "acked": 0, "accepted": 0, "lytics_rejected": 0}
        local = work / f"{base}.download"
        if not local.exists() or local.stat().st_size != fingerprint["size"]:
            with open_sftp(sftp_hook) as sftp:
                download_file(sftp, remote_path(self.folder, name), local)
        plain_name, encrypted = strip_pgp_suffix(name)
        source = local
        if encrypted:
            if not self.pgp_conn_id:
                raise FileImportError(f"{name} is PGP-encrypted; set pgp_conn_id to a lytics_pgp connection")
            from lytics_provider.hooks.pgp import PGPHook

            source = work / f"{base}.decrypted"
            PGPHook(self.pgp_conn_id).decrypt_file(local, source)
        rejects_path = work.parent / f"rejects-{base}.jsonl"
        try:
            counts = self._send_file(
                lytics, source, plain_name, name, rejects_path, checkpoint, checkpoint_path, dry_run
            )
        finally:
            if encrypted:
                source.unlink(missing_ok=True)
        local.unlink(missing_ok=True)
        if not dry_run:
            checkpoint_path.unlink(missing_ok=True)
        return {
            "name": name,
            "bytes": fingerprint["size"],
            "rejects_file": str(rejects_path),
            **counts,
        }

    def _send_file(
        self,
        lytics: LyticsHook,
        source: Path,
        plain_name: str,
        name: str,
        rejects_path: Path,
        checkpoint: dict[str, Any],
        checkpoint_path: Path,
        dry_run: bool,
    ) -> dict[str, int]:
        acked = int(checkpoint["acked"])
        if acked:
            self.log.info("Resuming %s after %d acknowledged records", name, acked)
        valid = 0
        last_in_batch = acked
        batch: list[dict[str, Any]] = []
        size = 2
        progress = Progress(self.log, f"{name}: records")

        def flush() -> None:
            nonlocal batch, size
            if batch and not dry_run:
                result = lytics.collect_json(
                    self.stream,
                    batch,
                    timestamp_field=self.timestamp_field,
                    filename=name,
                    max_batch_bytes=self.batch_bytes + 1024,
                )
                checkpoint["acked"] = last_in_batch
                checkpoint["accepted"] += result.accepted
                checkpoint["lytics_rejected"] += result.rejected
                atomic_write_text(checkpoint_path, json.dumps(checkpoint))
            batch, size = [], 2

        compression = detect_compression(plain_name)
        with (
            open_decompressed(source, compression) as raw,
            RejectsWriter(rejects_path, logger=self.log) as rejects,
        ):
            rows = parse_csv(raw, name, self.delimiter) if self.format == "csv" else parse_jsonl(raw)
            for number, record, reason, original in rows:
                if record is not None:
                    encoded = len(json.dumps(record, separators=(",", ":"), default=str).encode())
                    if encoded > MAX_RECORD_BYTES:
                        reason = f"record over the 16 KB Lytics limit: {encoded} bytes"
                        record = None
                if record is None:
                    rejects.reject(reason or "rejected", number, original, id=record_id(original))
                    continue
                valid += 1
                progress.advance(1)
                if valid <= acked:
                    continue
                if batch and size + encoded + 1 > self.batch_bytes:
                    flush()
                batch.append(record)
                last_in_batch = valid
                size += encoded + 1
            flush()
            rejected = rejects.count
        progress.finish()
        if checkpoint["lytics_rejected"]:
            self.log.warning("Lytics rejected %d records of %s", checkpoint["lytics_rejected"], name)
        return {
            "rows": valid,
            "rejected": rejected,
            "accepted": int(checkpoint["accepted"]),
            "lytics_rejected": int(checkpoint["lytics_rejected"]),
        }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
