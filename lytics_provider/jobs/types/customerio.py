"""Customer.io job type: "Export Users", people created or updated with attributes.

The seed: "For each user to export, it will create or update the user in Customer.io with the
user fields selected during configuration as attributes", plus **Extra Attributes**;
authorization **Site ID** and **API Key** (the ``customerio`` connection). Exits do nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from lytics_provider.jobs.base import AudienceExportConfig
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.sync_tasks import add_deliver_tasks

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext


class CustomerIOExportJob(AudienceExportConfig):
    """Create or update each audience member as a Customer.io person (Track API identify)."""

    type: Literal["customerio_export"]
    customerio_conn_id: str = connection_field(
        "customerio_default", "Customer.io connection id (Site ID, API Key)."
    )
    id_field: str | None = Field(
        default=None,
        description="Member field sent as the person's id (default: people are identified by email).",
    )
    email_field: str | None = Field(
        default="email",
        description="Member field sent as the email attribute (the identifier without id_field).",
    )
    fields: list[str] | None = Field(
        default=None, description="Lytics fields sent as attributes under their own names (default none)."
    )
    extra_attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Extra Attributes: Customer.io attribute name -> the Lytics field whose value it gets.",
    )
    fields_to_trigger: list[str] | None = Field(
        default=None,
        description="A person already sent is updated again only when one of these moved "
        "(default: any sent field).",
    )
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=5000,
        description="Members per checkpoint; each goes in requests of at most 500 KB.",
    )

    @model_validator(mode="after")
    def _identifier(self) -> CustomerIOExportJob:
        if not self.id_field and not self.email_field:
            raise ValueError("set id_field or email_field: the member field Customer.io identifies people by")
        return self

    def identifier_fields(self) -> list[str]:
        return [f for f in (self.id_field, self.email_field) if f]

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``; config field names equal the operator's arguments."""
        from lytics_provider.transfers.lytics_to_customerio import LyticsToCustomerIOOperator

        fields = self.fields_and([*self.identifier_fields(), *self.extra_attributes.values()])
        add_deliver_tasks(self, job, LyticsToCustomerIOOperator, fields, self.fields_to_trigger)
