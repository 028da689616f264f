"""Klaviyo job types: Export Audiences and Import Users & Activity.

The integration page names both jobs and their behaviour ("send users to a list in Klaviyo";
"larger audiences may take a few days to be completely added to a list due to Klaviyo API
limitations"; the ``klaviyo_users`` and ``klaviyo_activity`` streams) but its option lists were
not captured; the options here are the ones that behaviour needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from lytics_provider.jobs.base import AudienceExportConfig, JobConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.operator_args import operator_kwargs
from lytics_provider.jobs.sync_tasks import add_scan_deliver_report

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

_CONN = Field(default="klaviyo_default", min_length=1, description="Klaviyo connection (private API key).")


class KlaviyoExportJob(ExitGuardFields, AudienceExportConfig):
    """Export Audiences: members imported as Klaviyo profiles into a list, in bulk import jobs."""

    type: Literal["klaviyo_export"]
    klaviyo_conn_id: str = _CONN
    list_name: str | None = Field(
        default=None, max_length=255, description='Klaviyo list; default "Lytics " + audience name.'
    )
    create_list: bool = Field(default=True, description="Create the list if none of that name exists.")
    email_field: str = Field(
        default="email", min_length=1, description="Lytics field with the profile's email."
    )
    id_field: str | None = Field(
        default="klaviyo_id",
        description="Lytics field with the Klaviyo profile id (klaviyo_users imports it); saves a lookup "
        "on exit.",
    )
    property_map: dict[str, str] = Field(
        default_factory=lambda: {"first_name": "first_name", "last_name": "last_name"},
        description="Lytics field -> Klaviyo profile attribute (first_name, phone_number, ...) or "
        "properties.<name> for a custom property. Consent is refused.",
    )
    on_exit: Literal["remove", "ignore"] = Field(
        default="remove",
        description="On exit: remove from the list (only members this job added; never unsubscribes) "
        "or ignore.",
    )
    batch_size: int = Field(
        default=10_000, ge=1, le=10_000, description="Members per acknowledged batch (one bulk import job)."
    )
    poll_interval: float = Field(
        default=10.0, ge=0, description="Seconds between two reads of a job's status."
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.transfers.lytics_to_klaviyo import LyticsToKlaviyoOperator

        fields = [self.email_field, *([self.id_field] if self.id_field else []), *self.property_map]
        fields = list(dict.fromkeys(f.split(".")[0] for f in [*fields, *(self.fields or [])]))
        add_scan_deliver_report(self, job, LyticsToKlaviyoOperator, fields)


class KlaviyoImportJob(JobConfig):
    """Import Users & Activity: profiles into ``klaviyo_users``, events into ``klaviyo_activity``."""

    type: Literal["klaviyo_import"]
    klaviyo_conn_id: str = _CONN
    import_users: bool = Field(default=True, description="Import profiles (into klaviyo_users).")
    import_activity: bool = Field(default=True, description="Import events (into klaviyo_activity).")
    initial_since: str = Field(
        default="2000-01-01",
        pattern=r"^\d{4}-\d{2}-\d{2}",
        description="ISO date the first run (and a full_refresh run) reads from.",
    )

    @model_validator(mode="after")
    def _something_selected(self) -> KlaviyoImportJob:
        if not self.import_users and not self.import_activity:
            raise ValueError(
                "import_users and import_activity are both false; select users, activity or both"
            )
        return self

    def params(self) -> dict[str, Any]:
        return {"full_refresh": False, "dry_run": False}

    def add_tasks(self, job: JobContext) -> None:
        """One ``import`` task."""
        from lytics_provider.transfers.klaviyo_to_lytics import KlaviyoToLyticsOperator

        KlaviyoToLyticsOperator(
            **operator_kwargs(self, KlaviyoToLyticsOperator, task_id="import", job_id=job.job_id, dag=job.dag)
        )
