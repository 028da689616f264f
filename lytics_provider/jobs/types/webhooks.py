"""Webhooks job types: "Audience Triggers Webhook" (with Webhook Templates) and "Webhook User Enrichment".

Option names follow the Lytics job form (https://docs.lytics.com/docs/webhooks), snake_cased, with
its defaults. Lytics fires these on every enter and exit; here the job runs as micro-batches on a
Keep Updated schedule (``frequency: every 15 minutes``, down to every 5 minutes): each run scans,
diffs with the last run and sends the difference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from lytics_provider.hooks.webhook_payloads import (
    CLOUDEVENTS_SOURCE,
    CLOUDEVENTS_TYPE,
    TemplateError,
    check_template,
)
from lytics_provider.jobs.base import AudienceExportConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.operator_args import operator_kwargs
from lytics_provider.jobs.sync_tasks import add_scan_chain

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

HTTP_METHODS = ("POST", "PUT", "PATCH")
MAX_FIELDS_TO_TRIGGER = 75


class _WebhookRequestFields(AudienceExportConfig):
    """The audiences, and where and how each request goes: the connection, the URL (or its template),
    the body template."""

    audience: str | None = Field(  # type: ignore[assignment]
        default=None, min_length=1, description="Audience (segment) slug or id; or list several in audiences."
    )
    audiences: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Audiences: several audience slugs, each scanned and sent on its own (its own baseline); "
        "instead of audience.",
    )

    webhooks_conn_id: str = connection_field(
        "webhooks_default",
        "Webhooks connection: its authorization (request headers / parameters, OAuth 2.0 Client "
        "Credentials, or none) and CA bundle.",
    )
    webhook_url: str | None = Field(
        default=None, description="Webhook URL: the https URL that accepts the events (application/json)."
    )
    webhook_url_template: str | None = Field(
        default=None,
        description='Jsonnet that outputs each event\'s URL from its fields, e.g. "https://h.example/u/" + '
        'event.get("email"); instead of webhook_url.',
    )
    webhook_template: str | None = Field(
        default=None,
        description="Webhook Template: jsonnet that outputs each event's JSON body; "
        'event.get("field") reads the member (null when absent). One job for entrances, one for exits.',
    )
    http_method: Literal[HTTP_METHODS] = Field(  # type: ignore[valid-type]
        default="POST", description="HTTP Method of the webhook request."
    )
    existing_users: bool = Field(
        default=False,
        description="Existing Users: the first run sends an enter event for every member already in the "
        "audience (a backfill); off, it only records the audience and later runs send the changes.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError(
                f"webhook URL {value!r} must be an https:// URL (the Webhook URL must have the https scheme)"
            )
        return value

    @field_validator("webhook_template", "webhook_url_template")
    @classmethod
    def _jsonnet(cls, value: str | None, info: object) -> str | None:
        if value is None:
            return None
        try:
            check_template(value, getattr(info, "field_name", "template"))
        except TemplateError as exc:
            raise ValueError(f"{exc}; fix the jsonnet") from None
        return value

    @model_validator(mode="after")
    def _one_url(self) -> _WebhookRequestFields:
        if bool(self.audience) == bool(self.audiences):
            raise ValueError("set exactly one of audience (one slug) and audiences (a list of slugs)")
        if self.audiences and len(set(self.audiences)) != len(self.audiences):
            raise ValueError("an audience is listed twice in audiences; list each audience once")
        if bool(self.webhook_url) == bool(self.webhook_url_template):
            raise ValueError(
                "set exactly one of webhook_url (a fixed https URL) and webhook_url_template (jsonnet that "
                "outputs the URL of each event)"
            )
        return self

    def params(self) -> dict[str, Any]:
        """The run params; with ``audiences`` there is no single ``audience`` to override."""
        found = super().params()
        if self.audiences:
            found.pop("audience", None)
        return found

    def add_deliveries(self, job: JobContext, fields: list[str] | None, operator: type, **extra: Any) -> None:
        """One ``scan`` -> ``deliver`` -> ``report`` chain per audience (``_<n>`` after each task id and
        ``__<slug>`` after the job id when ``audiences`` lists several).

        :param fields: the fields the scan reads (None: every field).
        :param operator: the deliver operator, given every config field it takes and ``extra``.
        """
        chains = (
            [(f"_{n}", f"{job.job_id}__{slug}", slug) for n, slug in enumerate(self.audiences, 1)]
            if self.audiences
            else [("", job.job_id, "{{ params.audience }}")]
        )
        for suffix, job_id, audience in chains:
            deliver = operator(
                **operator_kwargs(
                    self,
                    operator,
                    task_id=f"deliver{suffix}",
                    job_id=job_id,
                    scan_task_id=f"scan{suffix}",
                    webhook_url=self.webhook_url or "",
                    dag=job.dag,
                    **extra,
                )
            )
            add_scan_chain(
                job,
                deliver,
                lytics_conn_id=self.lytics_conn_id,
                audience=audience,
                job_id=job_id,
                suffix=suffix,
                fields=fields,
                user_limit=self.user_limit,
                identity_fields=self.identity(),
            )


class WebhooksAudienceTriggersJob(ExitGuardFields, _WebhookRequestFields):
    """Audience Triggers Webhook: send an audience's enter / exit events (and field changes) to a URL."""

    type: Literal["webhooks_audience_triggers"]
    cloud_events: bool = Field(
        default=False,
        description="CloudEvents: send CloudEvents (JSON, structured mode) instead of the Lytics body.",
    )
    cloud_events_type: str = Field(
        default=CLOUDEVENTS_TYPE, min_length=1, description="CloudEvents Type of every event."
    )
    cloud_events_source: str = Field(
        default=CLOUDEVENTS_SOURCE, min_length=1, description="CloudEvents Source of every event."
    )
    audience_trigger_events: list[Literal["enter", "exit"]] = Field(
        default_factory=lambda: ["enter", "exit"],
        min_length=1,
        description="Audience Trigger Events: which audience events to send (enter, exit or both).",
    )
    export_fields: list[str] | None = Field(
        default=None, description="Export Fields: the user fields each event carries; none = every field."
    )
    fields_to_trigger: list[str] | None = Field(
        default=None,
        max_length=MAX_FIELDS_TO_TRIGGER,
        description="Fields to Trigger (up to 75): a member of the audience whose value of one of these "
        "fields changed is sent as a change event.",
    )
    batch_events: bool = Field(
        default=False, description="Batch Events: send events as a JSON array of up to batch_size events."
    )
    batch_size: int = Field(
        default=10, ge=1, le=1000, description="Batch Size: the most events in one batched request."
    )
    include_audience_membership: bool = Field(
        default=False,
        description="Include Audience Membership: add the member's audiences as the field segments_all.",
    )

    @model_validator(mode="after")
    def _one_body_shape(self) -> WebhooksAudienceTriggersJob:
        if self.webhook_template and self.cloud_events:
            raise ValueError(
                "webhook_template and cloud_events both shape the body; remove one (a template may build a "
                "CloudEvent itself)"
            )
        return self

    def scan_fields(self) -> list[str] | None:
        """The fields the scan reads: Export Fields, Fields to Trigger and ``fields`` (None: all)."""
        if self.export_fields is None:
            return self.fields
        wanted = [*self.export_fields, *(self.fields_to_trigger or []), *(self.fields or [])]
        if self.include_audience_membership:
            wanted.append("segments_all")
        return list(dict.fromkeys(["_uid", *wanted]))

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` (the events) -> ``report``, per audience."""
        from lytics_provider.operators.webhooks import WebhookAudienceTriggersOperator

        self.add_deliveries(job, self.scan_fields(), WebhookAudienceTriggersOperator)


class WebhooksUserEnrichmentJob(_WebhookRequestFields):
    """Webhook User Enrichment: each entering member's fields to a webhook; its answers into a stream."""

    type: Literal["webhooks_user_enrichment"]
    stream: str = Field(
        default="webhook_enrichment",
        min_length=1,
        pattern=r"^[A-Za-z0-9_]+$",
        description="Stream: the Lytics stream the webhook's answers are posted to.",
    )
    export_fields: list[str] = Field(
        min_length=1, description="Export Fields: the user fields the request carries (only these are sent)."
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` (requests, then answers into the stream) -> ``report``, per audience."""
        from lytics_provider.operators.webhooks import WebhookUserEnrichmentOperator

        identity = self.identity()

        fields = list(dict.fromkeys([*identity, *self.export_fields, *(self.fields or [])]))
        self.add_deliveries(job, fields, WebhookUserEnrichmentOperator, origin_fields=identity)
