"""GA4 Measurement Protocol job type: "GA4: Measurement Protocol Audience Export".

Options are the seed's (Google Marketing page), snake_cased: GA4 Version, Client ID, Measurement
ID, Firebase App ID, Engagement Time Field, User ID Field, User Dimension (default
``ly_user_id_dim``), Session ID Field, App Instance ID Field, Segment Dimension (default
``ly_segments_dim``), Export Scalar Fields (up to 25). The seed's "Client ID" text box is read as
the member field holding each user's GA client id: one fixed id would make every member the same
GA user. The event name is ``{enter|exit}_{audience_slug}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from lytics_provider.hooks.ga4_rules import param_name_problem, user_property_name_problem
from lytics_provider.jobs.base import JobConfig
from lytics_provider.jobs.event_fields import AudienceEventFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.one_task import OneTaskJob

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

MAX_EXPORT_SCALAR_FIELDS = 25


class GA4AudienceExportJob(AudienceEventFields):
    """Send an audience's enters and exits to a GA4 data stream as ``enter_`` / ``exit_`` events."""

    type: Literal["ga4_audience_export"]
    ga4_conn_id: str = connection_field(
        "ga4_default", "GA4 Measurement Protocol connection id (the API secret in Password)."
    )
    ga4_version: Literal["gtag.js", "Firebase"] = Field(
        default="gtag.js",
        description="GA4 Version: gtag.js (Client ID and Measurement ID) or Firebase (Firebase App ID and "
        "App Instance ID Field).",
    )
    client_id: str | None = Field(
        default=None, description="Client ID: the member field holding the GA client id (gtag.js)."
    )
    measurement_id: str | None = Field(
        default=None, description="Measurement ID of the web data stream, e.g. G-XXXXXXX (gtag.js)."
    )
    firebase_app_id: str | None = Field(default=None, description="Firebase App ID (Firebase).")
    app_instance_id_field: str | None = Field(
        default=None,
        description="App Instance ID Field: the member field holding the app instance id (Firebase).",
    )
    engagement_time_field: str | None = Field(
        default=None, description="Engagement Time Field: member field sent as engagement_time_msec."
    )
    session_id_field: str | None = Field(
        default=None, description="Session ID Field: member field sent as session_id."
    )
    user_id_field: str | None = Field(
        default=None, description="User ID Field: member field sent as user_id and as the User Dimension."
    )
    user_dimension: str = Field(
        default="ly_user_id_dim", description="User Dimension: the user property holding the User ID Field."
    )
    segment_dimension: str = Field(
        default="ly_segments_dim",
        description="Segment Dimension: the user property holding the member's audiences (comma-separated).",
    )
    export_scalar_fields: list[str] = Field(
        default_factory=list,
        max_length=MAX_EXPORT_SCALAR_FIELDS,
        description="Export Scalar Fields: up to 25 member fields sent as event params (named as the field).",
    )

    @model_validator(mode="after")
    def _check_ga4(self) -> GA4AudienceExportJob:
        if self.ga4_version == "gtag.js" and not (self.client_id and self.measurement_id):
            raise ValueError(
                "ga4_version gtag.js needs client_id (the field holding the GA client id) and measurement_id"
            )
        if self.ga4_version == "Firebase" and not (self.firebase_app_id and self.app_instance_id_field):
            raise ValueError("ga4_version Firebase needs firebase_app_id and app_instance_id_field")
        for name in self.export_scalar_fields:
            problem = param_name_problem(name)
            if problem:
                raise ValueError(
                    f"export_scalar_fields: {problem.description}; export a field with such a name"
                )
        dedicated = sum(1 for f in (self.engagement_time_field, self.session_id_field) if f)
        if len(self.export_scalar_fields) + dedicated > MAX_EXPORT_SCALAR_FIELDS:
            raise ValueError(
                f"export_scalar_fields ({len(self.export_scalar_fields)}) plus engagement / session params "
                f"({dedicated}) exceed the {MAX_EXPORT_SCALAR_FIELDS} params GA4 keeps per event; drop some"
            )
        for option in ("user_dimension", "segment_dimension"):
            problem = user_property_name_problem(getattr(self, option))
            if problem:
                raise ValueError(f"{option}: {problem.description}")
        return self

    def scan_fields(self) -> list[str] | None:
        """The fields the scan reads: every field when ``fields`` is unset, else those and the ones used."""
        return self.fields_and(
            [
                self.client_id,
                self.app_instance_id_field,
                self.user_id_field,
                self.engagement_time_field,
                self.session_id_field,
                *self.export_scalar_fields,
                "segments",
            ]
        )

    def exported_fields(self) -> list[str] | None:
        """Each event carries the job's ``fields``."""
        return list(self.fields) if self.fields else None

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.transfers.lytics_to_ga4 import LyticsToGA4AudienceOperator

        self.add_event_tasks(job, LyticsToGA4AudienceOperator)


class GA4EventExportJob(OneTaskJob, JobConfig):
    """Send Lytics stream events to a GA4 data stream, each once, oldest first."""

    type: Literal["ga4_event_export"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.lytics_stream_to_ga4.LyticsStreamToGA4Operator"
    task_id: ClassVar[str] = "export"
    frequency: str = Field(
        default="hourly",
        description='How often a Keep Updated export runs (default "hourly"; the seed\'s export is '
        "near real time).",
    )
    data_streams_to_export: list[str] = Field(
        min_length=1,
        description="Data Streams to Export: the Lytics streams whose events are sent (the seed's "
        '"none = all streams" needs a stream listing this provider does not read: name them).',
    )
    ga4_conn_id: str = connection_field("ga4_default", "GA4 Measurement Protocol connection id.")
    ga4_version: Literal["gtag.js", "Firebase"] = Field(default="gtag.js", description="GA4 Version.")
    client_id: str | None = Field(
        default=None, description="Client ID: the event field holding the GA client id."
    )
    measurement_id: str | None = Field(default=None, description="Measurement ID (gtag.js).")
    firebase_app_id: str | None = Field(default=None, description="Firebase App ID (Firebase).")
    app_instance_id_field: str | None = Field(default=None, description="App Instance ID Field (Firebase).")
    event_name_field: str | None = Field(
        default=None,
        description="Event Name Field: the field holding the event name; default the stream's name.",
    )
    engagement_time_field: str | None = Field(default=None, description="Engagement Time Field.")
    session_id_field: str | None = Field(default=None, description="Session ID Field.")
    user_id_field: str | None = Field(default=None, description="User ID Field.")
    user_dimension: str = Field(default="ly_user_id_dim", description="User Dimension.")
    segment_dimension: str = Field(default="ly_segments_dim", description="Segment Dimension.")
    export_scalar_fields: list[str] = Field(
        default_factory=list,
        description="Export Scalar Fields: event fields sent as params (named as the field).",
    )

    _check_ga4 = model_validator(mode="after")(GA4AudienceExportJob._check_ga4)
