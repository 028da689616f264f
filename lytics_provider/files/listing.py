"""Which files an import reads, and in what order: one listing interface over S3, GCS, Azure
Blob Storage and SFTP.

A :class:`FileStore` lists the files under a prefix (:class:`ObjectInfo`: key, size, modified
time) and downloads one to a local path, through the official hooks (``S3Hook``, ``GCSHook``,
``WasbHook``, ``SFTPHook``); :func:`object_store` picks one by name. :func:`select_objects` then
orders a listing the way the Lytics file imports do: only keys under **Prefix**, modified at or
after **Since**, from **Starting File** on (inclusive), sorted by date (ties by name) and never
older than the last file already imported. With a continuous sequence (:class:`SequenceNaming`:
``prefix_timestamp.json`` for S3 and the presets' stores, ``timestamp.csv`` for Azure) the order is the
timestamp in the name.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from lytics_provider.files.azure_container import container_must_exist
from lytics_provider.pipeline.object_files import join_key

_STAMP = r"(?P<ts>\d{8,17}|\d{4}-\d{2}-\d{2}T[\d:.]+Z?)"
StoreKind = Literal["s3", "gcs", "azure_blob"]
STORE_KINDS: tuple[str, ...] = ("s3", "gcs", "azure_blob")


@dataclass(frozen=True)
class SequenceNaming:
    """How the files of a continuous import are named: ``label`` for messages, ``pattern`` with a
    ``ts`` group matched against the file name (without folders and without ``.pgp``/``.gpg``)."""

    label: str
    pattern: re.Pattern[str]

    def timestamp(self, key: str) -> str | None:
        """The name's timestamp, or ``None`` when the file is not part of the sequence."""
        match = self.pattern.match(key.rsplit("/", 1)[-1].removesuffix(".pgp").removesuffix(".gpg"))
        return match.group("ts") if match else None


#: S3 (and the presets' object stores): ``prefix_timestamp.json`` (also ``.jsonl``, ``.gz``).
PREFIX_TIMESTAMP_JSON = SequenceNaming(
    "prefix_timestamp.json", re.compile(rf"^(?P<prefix>.*)_{_STAMP}\.json(?:l)?(?:\.gz)?$")
)
#: Azure Blob Storage Import Data: ``timestamp.csv`` (also ``.csv.gz``).
TIMESTAMP_CSV = SequenceNaming("timestamp.csv", re.compile(rf"^{_STAMP}\.csv(?:\.gz)?$"))


def _stamp_order(stamp: str) -> str:
    """Digit stamps of different lengths compare as numbers; ISO stamps as text."""
    return stamp.rjust(17, "0") if stamp.isdigit() else stamp


@dataclass(frozen=True)
class ObjectInfo:
    """One listed file."""

    key: str
    size: int
    updated: datetime


class FileStore(Protocol):
    """Where an import's files are: list them, download one."""

    #: the URL scheme shown in logs (``s3``, ``gs``, ``sftp``).
    scheme: str

    def list_objects(self, prefix: str) -> Iterable[ObjectInfo]:
        """Every file whose key starts with ``prefix``."""
        ...

    def download(self, key: str, path: Path) -> None:
        """Copy one file to a local path (streamed)."""
        ...


class S3Store:
    """Files in an S3 bucket (official ``S3Hook``)."""

    scheme = "s3"

    def __init__(self, bucket: str, aws_conn_id: str | None = "aws_default") -> None:
        self.bucket = bucket
        self.aws_conn_id = aws_conn_id

    def _client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id).get_conn()

    def list_objects(self, prefix: str) -> Iterable[ObjectInfo]:
        paginator = self._client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"], int(item["Size"]), item["LastModified"])

    def download(self, key: str, path: Path) -> None:
        self._client().download_file(self.bucket, key, str(path))


class GCSStore:
    """Objects in a Google Cloud Storage bucket (official ``GCSHook``)."""

    scheme = "gs"

    def __init__(
        self, bucket: str, gcp_conn_id: str = "google_cloud_default", project: str | None = None
    ) -> None:
        self.bucket = bucket
        self.gcp_conn_id = gcp_conn_id
        self.project = project

    def client(self) -> Any:
        """The storage client: the connection's, in ``project`` when one is given (else the
        connection's project)."""
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        hook = GCSHook(gcp_conn_id=self.gcp_conn_id)
        if not self.project:
            return hook.get_conn()
        from google.cloud import storage

        return storage.Client(project=self.project, credentials=hook.get_credentials())

    def _bucket(self) -> Any:
        return self.client().bucket(self.bucket, user_project=None)

    def list_objects(self, prefix: str) -> Iterable[ObjectInfo]:
        for blob in self._bucket().list_blobs(prefix=prefix):
            yield ObjectInfo(blob.name, int(blob.size or 0), blob.updated)

    def download(self, key: str, path: Path) -> None:
        self._bucket().blob(key).download_to_filename(str(path))


class AzureBlobStore:
    """Blobs in an Azure Blob Storage container (official ``WasbHook``; a ``wasb`` connection)."""

    scheme = "wasb"

    def __init__(self, container: str, wasb_conn_id: str = "wasb_default") -> None:
        self.container = container
        self.wasb_conn_id = wasb_conn_id

    def _container(self) -> Any:
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        client = WasbHook(wasb_conn_id=self.wasb_conn_id).blob_service_client
        return client.get_container_client(self.container)

    def list_objects(self, prefix: str) -> Iterable[ObjectInfo]:
        with container_must_exist(self.container):
            for blob in self._container().list_blobs(name_starts_with=prefix or None):
                yield ObjectInfo(blob.name, int(blob.size or 0), blob.last_modified)

    def download(self, key: str, path: Path) -> None:
        """Stream the blob to ``path`` chunk by chunk (``WasbHook.get_file`` would read it whole)."""
        with open(path, "wb") as out:
            for chunk in self._container().download_blob(key).chunks():
                out.write(chunk)


class SFTPStore:
    """Regular files of one SFTP folder (official ``SFTPHook``); keys are the file names.

    Names starting with ``.`` are uploads in progress and are not listed. Each call opens its own
    session, so no session stays open while records are posted to Lytics.
    """

    scheme = "sftp"

    def __init__(self, sftp_conn_id: str, folder: str = "") -> None:
        self.sftp_conn_id = sftp_conn_id
        self.folder = folder

    def _hook(self) -> Any:
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        return SFTPHook(ssh_conn_id=self.sftp_conn_id)

    def list_objects(self, prefix: str) -> Iterable[ObjectInfo]:
        from lytics_provider.pipeline.sftp_upload import ensure_folder, open_sftp

        with open_sftp(self._hook()) as sftp:
            ensure_folder(sftp, self.folder)
            entries = sftp.listdir_attr(self.folder or ".")
        for entry in entries:
            if entry.st_mode is None or not stat.S_ISREG(entry.st_mode) or entry.filename.startswith("."):
                continue
            if entry.filename.startswith(prefix):
                updated = datetime.fromtimestamp(int(entry.st_mtime or 0), UTC)
                yield ObjectInfo(entry.filename, int(entry.st_size or 0), updated)

    def download(self, key: str, path: Path) -> None:
        from lytics_provider.pipeline.sftp_upload import download_file, open_sftp, remote_path

        with open_sftp(self._hook()) as sftp:
            download_file(sftp, remote_path(self.folder, key), path)


def object_store(
    storage: StoreKind,
    bucket: str,
    *,
    aws_conn_id: str | None = "aws_default",
    gcp_conn_id: str = "google_cloud_default",
    wasb_conn_id: str = "wasb_default",
) -> FileStore:
    """The store of kind ``storage`` (``s3``, ``gcs`` or ``azure_blob``) over ``bucket`` (the
    container for Azure), with that kind's connection."""
    if storage == "s3":
        return S3Store(bucket, aws_conn_id)
    if storage == "gcs":
        return GCSStore(bucket, gcp_conn_id)
    if storage == "azure_blob":
        return AzureBlobStore(bucket, wasb_conn_id)
    raise ValueError(f"storage {storage!r} is not supported; use one of {', '.join(STORE_KINDS)}")


def parse_since(text: str | None) -> datetime | None:
    """**Since** as the Lytics form has it (``yyyy/mm/dd HH:MM/SS``), or ``yyyy/mm/dd``, or RFC 3339."""
    if not text:
        return None
    value = text.strip()
    for pattern in ("%Y/%m/%d %H:%M/%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"since {text!r} is not a date: use 'yyyy/mm/dd HH:MM/SS' (e.g. 2026/01/31 08:00/00) or RFC 3339"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sequence_timestamp(key: str, naming: SequenceNaming = PREFIX_TIMESTAMP_JSON) -> str | None:
    """The timestamp part of a continuous-import name (default ``prefix_timestamp.json``), else ``None``."""
    return naming.timestamp(key)


def select_objects(
    objects: Iterable[ObjectInfo],
    *,
    prefix: str = "",
    since: datetime | None = None,
    starting_file: str | None = None,
    last_file: Mapping[str, Any] | None = None,
    continuous: bool = False,
    naming: SequenceNaming = PREFIX_TIMESTAMP_JSON,
) -> tuple[list[ObjectInfo], list[str]]:
    """Objects to import in order, and keys skipped with why (for the log).

    ``last_file`` is the state committed after the previous run (``{"key", "updated"}``);
    only objects that sort after it are returned. ``naming`` is the continuous sequence's.
    """
    skipped: list[str] = []
    chosen: list[tuple[Any, ObjectInfo]] = []
    for obj in objects:
        if obj.key.endswith("/") or not obj.key.startswith(prefix):
            continue
        if continuous:
            stamp = naming.timestamp(obj.key)
            if stamp is None:
                skipped.append(f"{obj.key}: not named {naming.label} (continuous import)")
                continue
            order: Any = (_stamp_order(stamp), obj.key)
        else:
            order = (obj.updated, obj.key)
        if since is not None and obj.updated < since:
            continue
        chosen.append((order, obj))
    chosen.sort(key=lambda pair: pair[0])
    ordered = [obj for _, obj in chosen]
    if starting_file:
        keys = [o.key for o in ordered]
        start = starting_file if starting_file in keys else join_key(prefix.rsplit("/", 1)[0], starting_file)
        if start in keys:
            ordered = ordered[keys.index(start) :]
        else:
            ordered = [o for o in ordered if o.key.rsplit("/", 1)[-1] >= starting_file.rsplit("/", 1)[-1]]
    if last_file:
        keys = [o.key for o in ordered]
        if last_file.get("key") in keys:
            ordered = ordered[keys.index(last_file["key"]) + 1 :]
        elif not continuous and last_file.get("updated"):
            after = datetime.fromisoformat(last_file["updated"])
            ordered = [o for o in ordered if (o.updated, o.key) > (after, last_file["key"])]
        elif continuous:
            last_stamp = _stamp_order(naming.timestamp(last_file["key"]) or "")
            ordered = [o for o in ordered if _stamp_order(naming.timestamp(o.key) or "") > last_stamp]
    return ordered, skipped
