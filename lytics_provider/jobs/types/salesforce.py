"""Salesforce job types: "Export Audiences", "Import Leads & Opportunities" and "Import Custom Object".

The seed's configuration tables for these jobs were not captured, so the option names follow what
the page says each job does: the export "supports any kind of Salesforce object" and sends "all
fields that are provided in the mapping"; the Leads & Opportunities import maps Account, Contact,
Lead and Opportunity to their four streams and imports "all custom fields"; the Custom Object
import reads "any fields that are selected" into "the stream selected" and runs "again in 24
hours" when continuous (``frequency: daily``). ``daily_api_calls`` is the "number of API calls to
enter" of the seed's API Limitations section: ``(Total Daily API Calls Allowed - Daily API Calls For
Other Integrations) / 2`` for each of the import and the export.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from lytics_provider.jobs.base import AudienceExportConfig, JobConfig
from lytics_provider.jobs.context import JobContext
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.one_task import OneTaskJob
from lytics_provider.jobs.sync_tasks import add_deliver_tasks

_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DAILY_API_CALLS_DESCRIPTION = (
    "API calls per rolling 24 hours this job's direction may make on the connection (the seed: "
    "(Total Daily API Calls Allowed - Daily API Calls For Other Integrations) / 2); shared by every task "
    "of the connection. Default: the connection extra daily_api_calls, else 15000."
)


def _api_name(value: str, what: str) -> str:
    if not _API_NAME.match(value):
        raise ValueError(
            f"{what} {value!r} is not a Salesforce API name (letters, digits, _; e.g. Lead, My_Field__c)"
        )
    return value


class SalesforceConnectionFields(JobConfig):
    """The connection and API budget every Salesforce job has."""

    salesforce_conn_id: str = connection_field(
        "salesforce_default", "Salesforce connection id (Airflow's salesforce connection)."
    )
    daily_api_calls: int | None = Field(default=None, ge=1, description=DAILY_API_CALLS_DESCRIPTION)
    poll_interval: float = Field(
        default=5.0, gt=0, le=300, description="Seconds between Bulk API job status reads."
    )
    job_timeout_minutes: float = Field(
        default=120.0,
        gt=0,
        le=1440,
        description="Minutes one Bulk API job is waited for (a retry reconnects).",
    )


class SalesforceExportJob(ExitGuardFields, AudienceExportConfig, SalesforceConnectionFields):
    """Export Audiences: upsert the members of an audience into any Salesforce object (Bulk API 2.0)."""

    type: Literal["salesforce_export"]
    salesforce_object: str = Field(
        default="Lead",
        description="API name of the object to write (Lead, Contact, Opportunity, My_Object__c).",
    )
    external_id_field: str = Field(
        min_length=1,
        description="The object's External ID field (or Id) that matches a member to its record; upsert "
        "creates a record when none matches.",
    )
    id_field: str = Field(
        default="_uid", min_length=1, description="Lytics field whose value goes in external_id_field."
    )
    mapping: dict[str, str] = Field(
        min_length=1, description="Lytics field -> Salesforce field; every mapped field is sent."
    )
    membership_field: str | None = Field(
        default=None,
        description="A checkbox field set true when the member enters and false when it exits (optional).",
    )
    update_on_exit: bool = Field(
        default=True,
        description="Send exits: the member's mapped fields (and membership_field false); records are never "
        "deleted, and only records this job wrote are touched.",
    )
    batch_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1024,
        le=100 * 1024 * 1024,
        description="CSV bytes per ingest job upload (Salesforce: 150 MB base64-encoded, so 100 MB of CSV).",
    )

    @field_validator("salesforce_object", "external_id_field")
    @classmethod
    def _names(cls, value: str) -> str:
        return _api_name(value, "salesforce_object / external_id_field")

    @field_validator("mapping")
    @classmethod
    def _mapped(cls, value: dict[str, str]) -> dict[str, str]:
        for target in value.values():
            _api_name(target, "mapping target")
        return value

    def identifier_fields(self) -> list[str]:
        return [self.id_field] if self.id_field != "_uid" else ["email"]

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.transfers.lytics_to_salesforce import LyticsToSalesforceOperator

        fields = self.fields_and([self.id_field, *self.mapping])
        add_deliver_tasks(self, job, LyticsToSalesforceOperator, fields, sorted(self.mapping))


class _SalesforceImport(OneTaskJob, SalesforceConnectionFields):
    task_operator: ClassVar[str] = "lytics_provider.transfers.salesforce_to_lytics.SalesforceToLyticsOperator"
    page_size: int = Field(
        default=50000, ge=1, le=100000, description="Records per results page (maxRecords)."
    )

    def task_arguments(self) -> dict[str, Any]:  # pragma: no cover - every import overrides it
        """The streams and fields of the objects read."""
        raise NotImplementedError


class SalesforceImportJob(_SalesforceImport):
    """Import Leads & Opportunities: Account, Contact, Lead and Opportunity into their four streams."""

    type: Literal["salesforce_import"]
    objects: list[Literal["Account", "Contact", "Lead", "Opportunity"]] = Field(
        default_factory=lambda: ["Account", "Contact", "Lead", "Opportunity"],
        min_length=1,
        description="Objects to import: Account -> salesforce_accounts, Contact -> salesforce_contacts, "
        "Lead -> salesforce_leads, Opportunity -> salesforce_opportunities.",
    )
    include_custom_fields: bool = Field(
        default=True, description="Also import every custom (__c) field of these objects."
    )

    def task_arguments(self) -> dict[str, Any]:
        from lytics_provider.transfers.salesforce_to_lytics import STREAMS

        return {"streams": {name: STREAMS[name] for name in self.objects}, "object_fields": None}


class SalesforceCustomObjectImportJob(_SalesforceImport):
    """Import Custom Object: the selected fields of one object into the selected stream."""

    type: Literal["salesforce_custom_object_import"]
    frequency: str = Field(
        default="daily", description='A continuous import runs again every 24 hours ("daily").'
    )
    salesforce_object: str = Field(min_length=1, description="API name of the object, e.g. Subscription__c.")
    fields: list[str] = Field(
        min_length=1, description="Fields to import (Id and SystemModstamp are always read)."
    )
    stream: str = Field(min_length=1, description="Lytics stream the records go to.")

    @field_validator("salesforce_object")
    @classmethod
    def _object(cls, value: str) -> str:
        return _api_name(value, "salesforce_object")

    @model_validator(mode="after")
    def _field_names(self) -> SalesforceCustomObjectImportJob:
        for name in self.fields:
            _api_name(name, "field")
        return self

    def task_arguments(self) -> dict[str, Any]:
        return {
            "streams": {self.salesforce_object: self.stream},
            "object_fields": {self.salesforce_object: list(self.fields)},
            "include_custom_fields": False,
        }
