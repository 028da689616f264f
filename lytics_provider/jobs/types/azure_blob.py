"""Microsoft Azure Blob Storage job types: Export Audiences (JSON / CSV), Export Events, Import Data.

Audience exports build ``scan`` → ``deliver`` → ``report``; the events export and the import
build one task. Operators (and the microsoft-azure provider) are imported inside ``add_tasks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from lytics_provider.jobs.base import AudienceExportConfig, JobConfig
from lytics_provider.jobs.fields import check_listing_since
from lytics_provider.jobs.file_name import FileNameTemplate
from lytics_provider.jobs.one_task import OneTaskJob
from lytics_provider.jobs.operator_args import operator_kwargs

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

_STREAM = r"^[A-Za-z0-9_.-]+$"
_CONTAINER = r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$"
_CONTAINER_RULE = "3-63 lowercase letters, digits and single hyphens, starting with a letter or digit"


def _check_container(value: str) -> str:
    import re

    if not re.match(_CONTAINER, value):
        raise ValueError(f"container {value!r} is not an Azure container name: use {_CONTAINER_RULE}")
    return value


class _AzureBlobFields(JobConfig):
    container: str = Field(min_length=1, description="Blob container (Azure container naming rules).")
    wasb_conn_id: str = Field(
        default="wasb_default",
        description="Airflow Azure Blob Storage (wasb) connection whose connection_string extra is the "
        "authorization's Connection String.",
    )
    pgp_conn_id: str | None = Field(
        default=None,
        description="PGP Key: a lytics_pgp connection (public key: exports are encrypted, .pgp appended; "
        "private key: .pgp/.gpg imports are decrypted).",
    )

    _container_name = field_validator("container")(_check_container)


class _AzureBlobFileExport(_AzureBlobFields):
    directory: str = Field(default="", description="Folder (blob name prefix) the files are written to.")
    compression: Literal["none", "gz", "zip"] = Field(
        default="none", description="none (plain files), gz (.gz appended) or zip."
    )


class _AzureBlobAudienceExport(_AzureBlobFileExport, AudienceExportConfig, FileNameTemplate):
    fields: list[str] | None = Field(
        default=None,
        validation_alias=AliasChoices("user_fields", "fields"),
        description="User Fields: the Lytics user fields exported (key user_fields); default every field.",
    )

    def _add_deliver(self, job: JobContext, file_format: str) -> None:
        from lytics_provider.transfers.lytics_to_azure_blob import LyticsToAzureBlobOperator

        deliver = LyticsToAzureBlobOperator(
            **operator_kwargs(
                self, LyticsToAzureBlobOperator, task_id="deliver", job_id=job.job_id, file_format=file_format
            )
        )
        self.add_scan_deliver_report(job, deliver, row_renderer=deliver.row_renderer())


class AzureBlobExportJsonJob(_AzureBlobAudienceExport):
    """Export Audiences (Blob Storage) JSON: the audience as one newline-JSON file per run."""

    type: Literal["azure_blob_export_json"]

    def add_tasks(self, job: JobContext) -> None:
        self._add_deliver(job, "jsonl")


class AzureBlobExportCsvJob(_AzureBlobAudienceExport):
    """Export Audiences (Blob Storage) CSV: the audience as one CSV file (header row) per run."""

    type: Literal["azure_blob_export_csv"]

    def add_tasks(self, job: JobContext) -> None:
        self._add_deliver(job, "csv")


# A dry run counts the new events without uploading or moving the stream position.
class AzureBlobEventsExportJob(OneTaskJob, _AzureBlobFileExport):
    """Export Events (Blob Storage): a stream's new events (every field) as one CSV per run."""

    type: Literal["azure_blob_events_export"]
    task_operator: ClassVar[str] = (
        "lytics_provider.transfers.lytics_to_azure_blob.LyticsStreamToAzureBlobOperator"
    )
    task_id: ClassVar[str] = "export"
    stream: str = Field(min_length=1, pattern=_STREAM, description="Lytics stream whose events are exported.")
    filename: str = Field(
        default="lytics_{slug}_events_{timestamp}.{ext}",
        description="File name template: {slug} the stream, {timestamp} run time (UTC), {ext}.",
    )


# A dry run lists the blobs it would import without reading or sending them.
class AzureBlobImportJob(OneTaskJob, _AzureBlobFields):
    """Import Data: CSV blobs of a container into a Lytics stream; continuous: timestamp.csv files."""

    type: Literal["azure_blob_import"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.azure_blob_to_lytics.AzureBlobToLyticsOperator"
    stream: str = Field(min_length=1, pattern=_STREAM, description="Lytics stream to import into.")
    prefix: str = Field(default="", description="Blob name prefix (folders allowed: incoming/).")
    file_type: Literal["csv", "json"] = Field(
        default="csv", description="csv (with a header row) or json (JSON lines)."
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV delimiter.")
    timestamp_field: str | None = Field(default=None, description="Record field holding the event time.")
    since: str | None = Field(default=None, description="Oldest blob date imported, yyyy/mm/dd HH:MM/SS.")
    starting_file: str | None = Field(default=None, description="This blob and newer ones are imported.")
    continuous: bool = Field(
        default=False,
        description="Continuous import of blobs named timestamp.csv, in timestamp order; without a next "
        "file the sequence waits.",
    )
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="Records per batch sent to Lytics.")

    _check_since = field_validator("since")(check_listing_since)

    @model_validator(mode="after")
    def _check_continuous(self) -> AzureBlobImportJob:
        if self.continuous and self.file_type != "csv":
            raise ValueError("continuous imports read timestamp.csv files: set file_type: csv")
        return self
