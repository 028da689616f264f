"""Audience Triggers Webhook: send an audience's enter / exit / change events to a webhook URL.

Runs as the ``deliver`` task after ``scan``. The sync engine diffs the run's snapshot with the last
committed one and this operator sends one event per entered, exited or changed member
(``sync.events``): alone, or with Batch Events as arrays of up to Batch Size events. Each event
has a deterministic id (job, run, member, kind), carried in the body (``id``; the CloudEvents
``id``) and in the ``Idempotency-Key`` header, so a receiver that de-duplicates sees a retried
request once; acknowledged batches are never sent again by a retried task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lytics_provider.hooks.webhook_payloads import CLOUDEVENTS_SOURCE, CLOUDEVENTS_TYPE, EventRenderer
from lytics_provider.hooks.webhooks import WebhookDestination, WebhooksHook
from lytics_provider.pipeline.state_store import baseline_snapshot
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs


class WebhookAudienceTriggersOperator(AudienceSyncOperator):
    """Send audience events to a webhook.

    :param webhooks_conn_id: the ``webhooks`` connection (its authorization and CA bundle).
    :param webhook_url: "Webhook URL" (https).
    :param webhook_url_template: jsonnet that outputs each event's URL (instead of ``webhook_url``).
    :param webhook_template: "Webhook Template": jsonnet that outputs each event's body.
    :param http_method: "HTTP Method" (default POST).
    :param cloud_events: "CloudEvents": CloudEvents in structured JSON mode.
    :param cloud_events_type: "CloudEvents Type".
    :param cloud_events_source: "CloudEvents Source".
    :param existing_users: "Existing Users": the first run sends an enter for every member already in.
    :param audience_trigger_events: "Audience Trigger Events": ``enter`` and / or ``exit``.
    :param export_fields: "Export Fields" (None: every field of the member).
    :param fields_to_trigger: "Fields to Trigger": a change of one of these sends a change event.
    :param batch_events: "Batch Events": events go as arrays of up to ``batch_size``.
    :param batch_size: "Batch Size": events per request with Batch Events (and per checkpoint).
    :param include_audience_membership: "Include Audience Membership": add ``segments_all``.
    """

    def __init__(
        self,
        *,
        webhooks_conn_id: str = "webhooks_default",
        webhook_url: str = "",
        webhook_url_template: str | None = None,
        webhook_template: str | None = None,
        http_method: str = "POST",
        cloud_events: bool = False,
        cloud_events_type: str = CLOUDEVENTS_TYPE,
        cloud_events_source: str = CLOUDEVENTS_SOURCE,
        existing_users: bool = False,
        audience_trigger_events: Sequence[str] = ("enter", "exit"),
        export_fields: Sequence[str] | None = None,
        fields_to_trigger: Sequence[str] | None = None,
        batch_events: bool = False,
        batch_size: int = 10,
        include_audience_membership: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not webhook_url and not webhook_url_template:
            raise self.config_error("set webhook_url (or webhook_url_template)")
        if batch_size < 1:
            raise self.config_error(f"batch_size {batch_size!r} must be 1 or more")
        self.webhooks_conn_id = webhooks_conn_id
        self.webhook_url = webhook_url
        self.webhook_url_template = webhook_url_template
        self.webhook_template = webhook_template
        self.http_method = http_method
        self.cloud_events = cloud_events
        self.cloud_events_type = cloud_events_type
        self.cloud_events_source = cloud_events_source
        self.existing_users = existing_users
        self.audience_trigger_events = list(audience_trigger_events)
        self.export_fields = list(export_fields) if export_fields else None
        self.fields_to_trigger = list(fields_to_trigger) if fields_to_trigger else None
        self.batch_events = batch_events
        self.batch_size = batch_size
        self.include_audience_membership = include_audience_membership

    def events(self) -> list[str]:
        """The kinds sent: the Audience Trigger Events, plus ``change`` when Fields to Trigger are set."""
        kinds = list(dict.fromkeys(self.audience_trigger_events))
        return [*kinds, "change"] if self.fields_to_trigger else kinds

    def renderer(self) -> EventRenderer:
        return EventRenderer(
            webhook_url=self.webhook_url,
            url_template=self.webhook_url_template,
            template=self.webhook_template,
            cloud_events=self.cloud_events,
            cloud_events_type=self.cloud_events_type,
            cloud_events_source=self.cloud_events_source,
            include_audience_membership=self.include_audience_membership,
        )

    def make_destination(self, inputs: SyncRunInputs) -> WebhookDestination:
        audience = str(
            inputs.audience.get("slug") or inputs.audience.get("name") or inputs.params.get("audience")
        )
        return WebhookDestination(
            hook=WebhooksHook(self.webhooks_conn_id),
            renderer=self.renderer(),
            http_method=self.http_method,
            batch_events=self.batch_events,
            job_id=self.job_id,
            run_id=inputs.run_id,
            audience=audience,
            events=self.events(),
            trigger_fields=self.fields_to_trigger,
            export_fields=self.export_fields,
            existing_users=self.existing_users,
            first_run=baseline_snapshot(self.job_id) is None,
            batch_size=self.batch_size,
        )
