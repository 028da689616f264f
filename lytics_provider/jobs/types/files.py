"""File-drop job types: Mapp SFTP Export, Lytics File Service CSV export and file import.

Exports build ``scan`` → ``deliver`` → ``report``; the import builds one ``import`` task.
Operators are imported inside ``add_tasks`` so reading configs stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from lytics_provider.jobs.base import AudienceExportConfig, JobConfig
from lytics_provider.jobs.import_fields import ImportFieldSelection
from lytics_provider.jobs.one_task import OneTaskJob
from lytics_provider.jobs.operator_args import operator_kwargs

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

MAPP_MEMBERSHIP_HEADER = "user.CustomAttribute.SegmentMembership"


class _SftpExportFields(AudienceExportConfig):
    sftp_conn_id: str = Field(min_length=1, description="Airflow SFTP connection of the destination server.")
    folder: str = Field(
        default="",
        description="Remote folder the file is placed in (the authorization's Folder); empty for the "
        "login directory.",
    )

    def _add_export_tasks(self, job: JobContext, scan_fields: list[str] | None, deliver: Any) -> None:
        self.add_scan_deliver_report(job, deliver, fields=scan_fields, row_renderer=deliver.row_renderer())


class MappSftpExportJob(_SftpExportFields):
    """Mapp SFTP Export: a daily CSV of the whole audience with Mapp header names (add only)."""

    type: Literal["mapp_sftp_export"]
    keep_updated: bool = Field(
        default=True, description="Keep Updated: export every day at time_of_day (default on for Mapp)."
    )
    field_mapping: dict[str, str] = Field(
        description="Fields Mapping: Lytics field -> Mapp CSV header, e.g. {email: user.Email}. "
        f"{MAPP_MEMBERSHIP_HEADER} is added by include_membership and needs no mapping.",
    )
    identifier_field: str = Field(
        default="email", min_length=1, description="Lytics field identifying the user (email or another)."
    )
    include_membership: bool = Field(
        default=True, description=f"Add {MAPP_MEMBERSHIP_HEADER}: the user's audiences, comma-separated."
    )

    @model_validator(mode="after")
    def _check_mapping(self) -> MappSftpExportJob:
        if self.fields is not None:
            raise ValueError("Mapp exports take their columns from field_mapping; remove `fields`")
        if self.is_sub_daily or self.frequency in ("weekly", "monthly"):
            raise ValueError(
                f"Mapp SFTP Export runs daily at time_of_day; frequency {self.frequency!r} is not offered"
            )
        if self.identifier_field not in self.field_mapping:
            raise ValueError(
                f"identifier_field {self.identifier_field!r} is not in field_mapping; add its Mapp header, "
                f"e.g. `{self.identifier_field}: user.Email`"
            )
        headers = list(self.field_mapping.values())
        if self.include_membership:
            headers.append(MAPP_MEMBERSHIP_HEADER)
        repeated = sorted({h for h in headers if headers.count(h) > 1})
        if repeated:
            raise ValueError(
                f"Mapp header(s) {', '.join(repeated)} appear twice in field_mapping"
                + (
                    " (include_membership adds the membership column)"
                    if MAPP_MEMBERSHIP_HEADER in repeated
                    else ""
                )
            )
        if any(not header.strip() for header in headers):
            raise ValueError("field_mapping has an empty Mapp header name")
        return self

    def identifier_fields(self) -> list[str]:
        return [self.identifier_field]

    def add_tasks(self, job: JobContext) -> None:
        from lytics_provider.transfers.lytics_to_sftp import MappSftpExportOperator, mapp_scan_fields

        deliver = MappSftpExportOperator(
            **operator_kwargs(self, MappSftpExportOperator, task_id="deliver", job_id=job.job_id)
        )
        self._add_export_tasks(job, mapp_scan_fields(self.field_mapping, self.identifier_field), deliver)


class FileServiceExportJob(_SftpExportFields):
    """Lytics File Service CSV export to SFTP: ``lytics_{segment_slug}_{date_time}.csv``."""

    type: Literal["file_service_export"]
    compression: Literal["none", "zip", "gz"] = Field(
        default="none", description="none, gz (.csv.gz) or zip (.zip holding the .csv)."
    )
    pgp_conn_id: str | None = Field(
        default=None,
        description="lytics_pgp connection whose public key encrypts the file (.pgp is appended).",
    )

    def add_tasks(self, job: JobContext) -> None:
        from lytics_provider.transfers.lytics_to_sftp import LyticsFileServiceExportOperator

        deliver = LyticsFileServiceExportOperator(
            **operator_kwargs(self, LyticsFileServiceExportOperator, task_id="deliver", job_id=job.job_id)
        )
        self._add_export_tasks(job, list(self.fields) if self.fields else None, deliver)


# A dry run lists and validates the new files without sending or recording them.
class FileServiceImportJob(OneTaskJob, JobConfig, ImportFieldSelection):
    """Lytics File Service import: CSV or JSON-lines files from an SFTP folder into a stream."""

    type: Literal["file_service_import"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.sftp_to_lytics.SFTPToLyticsOperator"
    sftp_conn_id: str = Field(min_length=1, description="Airflow SFTP connection of the source server.")
    folder: str = Field(default="", description="Remote folder to read; empty for the login directory.")
    pattern: str = Field(
        default="*", min_length=1, description="Glob of the file names to import, e.g. contacts_*.csv*."
    )
    format: Literal["csv", "jsonl"] = Field(
        default="csv",
        description="csv (header row first) or jsonl (newline-delimited JSON, one record a line).",
    )
    stream: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Lytics stream the records go to."
    )
    pgp_conn_id: str | None = Field(
        default=None, description="lytics_pgp connection whose private key decrypts .pgp/.gpg files."
    )
    timestamp_field: str | None = Field(default=None, description="Record field holding the event time.")
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV delimiter.")
    max_files: int | None = Field(default=None, ge=1, description="Import at most this many files per run.")

    @field_validator("pattern")
    @classmethod
    def _no_path_in_pattern(cls, value: str) -> str:
        if "/" in value:
            raise ValueError("pattern matches file names only; put the directory in `folder`")
        return value
