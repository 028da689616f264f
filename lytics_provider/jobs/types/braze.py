"""Braze job type: "Export Audiences", membership as a custom attribute through the User Track API.

The seed's options: the identifier, at least one of **External User ID**, **Braze ID**, **Email**,
**Phone**, or the pair **User Alias Label** + **User Alias Field**; authorization **Rest API Key**
and **Braze Instance** (the ``braze`` connection). "This integration utilizes the Braze User Track
API to attach Lytics audience membership data to Braze as a user attribute."

Also "Import Activity": Users by Segment export files, a preset of the object-store file import
into ``braze_users`` (:class:`BrazeImportJob`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from lytics_provider.jobs.base import AudienceExportConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.sync_tasks import add_deliver_tasks
from lytics_provider.jobs.types.warehouses import FileImportOptions

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

_IDENTIFIERS = ("external_user_id", "braze_id", "email", "phone", "user_alias_field")


class BrazeExportJob(ExitGuardFields, AudienceExportConfig):
    """Set an audience-membership attribute on Braze users (true on enter, false on exit)."""

    type: Literal["braze_export"]
    braze_conn_id: str = connection_field(
        "braze_default", "Braze connection id (Rest API Key, Braze Instance)."
    )
    external_user_id: str | None = Field(
        default=None, description="External User ID: member field sent as external_id."
    )
    braze_id: str | None = Field(default=None, description="Braze ID: member field sent as braze_id.")
    email: str | None = Field(default=None, description="Email: member field sent as email.")
    phone: str | None = Field(default=None, description="Phone: member field sent as phone (E.164).")
    user_alias_label: str | None = Field(
        default=None, description="User Alias Label: the alias_label of the user_alias identifier."
    )
    user_alias_field: str | None = Field(
        default=None, description="User Alias Field: member field sent as the user_alias alias_name."
    )
    fields: list[str] | None = Field(
        default=None,
        description="Lytics fields also sent as Braze attributes under their own names (each is a Braze data "
        "point); default none: the identifiers and the membership attribute only.",
    )
    membership_attribute: str = Field(
        default="lytics_{audience_slug}",
        min_length=1,
        description="Custom attribute holding membership; {audience_slug} is the exported audience's slug.",
    )
    on_exit: Literal["set_false", "remove_attribute", "ignore"] = Field(
        default="set_false",
        description="What an exit does to the attribute of a member this job set: set it false, remove it "
        "(null), or nothing.",
    )
    fields_to_trigger: list[str] | None = Field(
        default=None,
        description="Fields to Trigger: a member already exported is sent again only when one of these moved "
        "(default: any exported field).",
    )
    batch_size: int = Field(
        default=75, ge=1, le=75, description="Attribute objects per /users/track request (Braze allows 75)."
    )

    @model_validator(mode="after")
    def _one_identifier(self) -> BrazeExportJob:
        if not any(getattr(self, name) for name in _IDENTIFIERS):
            raise ValueError(
                "set at least one of external_user_id, braze_id, email, phone, or user_alias_label with "
                "user_alias_field: the member field Braze identifies users by"
            )
        if bool(self.user_alias_label) != bool(self.user_alias_field):
            raise ValueError("user_alias_label and user_alias_field go together; set both or neither")
        return self

    def identifier_fields(self) -> list[str]:
        """The configured identifier fields key members after ``_uid``."""
        return [f for f in (getattr(self, name) for name in _IDENTIFIERS) if f]

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``; config field names equal the operator's arguments."""
        from lytics_provider.transfers.lytics_to_braze import LyticsToBrazeOperator

        fields = self.fields_and(self.identifier_fields())
        add_deliver_tasks(self, job, LyticsToBrazeOperator, fields, self.fields_to_trigger)


SEGMENT_EXPORT_PREFIX = "segment-export/"


class BrazeImportJob(FileImportOptions):
    """Braze Import Activity: Users by Segment export files from S3, Azure or GCS into braze_users."""

    type: Literal["braze_import"]
    task_operator: ClassVar[str] = "lytics_provider.files.ingest_operator.StorageFilesToLyticsOperator"
    storage: Literal["s3", "gcs", "azure_blob"] = Field(
        default="s3",
        description="Where Braze writes its exports: s3, gcs or azure_blob (bucket = container).",
    )
    bucket: str = Field(min_length=1, description="Bucket (or Azure container) Braze exports to.")
    segment_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Braze segment id: only segment-export/{segment_id}/ is read; default every segment.",
    )
    prefix: str | None = Field(  # type: ignore[assignment]
        default=None,
        description="Key prefix of the export files; default segment-export/{segment_id}/, or "
        "segment-export/ without segment_id.",
    )
    file_type: Literal["csv", "json"] = Field(default="json", description="json (JSON lines) or csv.")
    stream: str = Field(default="braze_users", pattern=r"^[A-Za-z0-9_.-]+$", description="Lytics stream.")
    aws_conn_id: str = Field(default="aws_default", description="Airflow AWS connection (storage s3).")
    gcp_conn_id: str = Field(
        default="google_cloud_default", description="Google Cloud connection (storage gcs)."
    )
    wasb_conn_id: str = Field(
        default="wasb_default", description="Azure Blob connection (storage azure_blob)."
    )

    @model_validator(mode="after")
    def _segment_prefix(self) -> BrazeImportJob:
        if self.segment_id and self.prefix is not None:
            raise ValueError("set either segment_id or prefix, not both")
        return self

    def segment_prefix(self) -> str:
        """Where the files are read: the configured prefix, else the segment's (or every segment's)."""
        if self.prefix is not None:
            return self.prefix
        return f"{SEGMENT_EXPORT_PREFIX}{self.segment_id}/" if self.segment_id else SEGMENT_EXPORT_PREFIX

    def task_arguments(self) -> dict[str, Any]:
        """The segment's (or every segment's) export prefix."""
        return {"prefix": self.segment_prefix()}
