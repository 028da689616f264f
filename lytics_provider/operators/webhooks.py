"""Audience Triggers Webhook and Webhook User Enrichment: audience events to a webhook URL.

Runs as the ``deliver`` task after ``scan``. The sync engine diffs the run's snapshot with the last
committed one and this operator sends one event per entered, exited or changed member
(``sync.events``): alone, or with Batch Events as arrays of up to Batch Size events. Each event
has a deterministic id (job, run, member, kind), carried in the body (``id``; the CloudEvents
``id``) and in the ``Idempotency-Key`` header, so a receiver that de-duplicates sees a retried
request once; acknowledged batches are never sent again by a retried task.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import Context

from lytics_provider.hooks.webhook_payloads import CLOUDEVENTS_SOURCE, CLOUDEVENTS_TYPE, EventRenderer
from lytics_provider.hooks.webhooks import WebhookDestination, WebhookEnrichmentDestination, WebhooksHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.pipeline.state_store import baseline_snapshot
from lytics_provider.sync.event_operator import AudienceEventOperator
from lytics_provider.sync.operator import SyncRunInputs


class WebhookRequestOperator(AudienceEventOperator):
    """The request options both webhook jobs share, on the kit's event operator.

    :param webhooks_conn_id: the ``webhooks`` connection (its authorization and CA bundle).
    :param webhook_url: "Webhook URL" (https).
    :param webhook_url_template: jsonnet that outputs each event's URL (instead of ``webhook_url``).
    :param webhook_template: jsonnet that outputs each request's body.
    :param http_method: "HTTP Method" (default POST).
    :param existing_users: "Existing Users": the first run sends an enter for every member already in.
    :param kwargs: :class:`~lytics_provider.sync.event_operator.AudienceEventOperator`'s arguments.
    """

    default_batch_size = 10

    def __init__(
        self,
        *,
        webhooks_conn_id: str = "webhooks_default",
        webhook_url: str = "",
        webhook_url_template: str | None = None,
        webhook_template: str | None = None,
        http_method: str = "POST",
        existing_users: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(existing_users=existing_users, **kwargs)
        keep_arguments(self, locals())
        if not webhook_url and not webhook_url_template:
            raise self.config_error("set webhook_url (or webhook_url_template)")

    def request_arguments(self, inputs: SyncRunInputs, renderer: EventRenderer) -> dict[str, Any]:
        """The destination's arguments: the hook, the renderer, the method and the run's event options.

        The first run is the one without a committed snapshot of the job.
        """
        return {
            **self.event_arguments(inputs),
            "hook": WebhooksHook(self.webhooks_conn_id),
            "renderer": renderer,
            "http_method": self.http_method,
            "first_run": baseline_snapshot(self.job_id) is None,
        }


class WebhookAudienceTriggersOperator(WebhookRequestOperator):
    """Send audience events to a webhook.

    :param cloud_events: "CloudEvents": CloudEvents in structured JSON mode.
    :param cloud_events_type: "CloudEvents Type".
    :param cloud_events_source: "CloudEvents Source".
    :param batch_events: "Batch Events": events go as arrays of up to ``batch_size``.
    :param include_audience_membership: "Include Audience Membership": add ``segments_all``.
    :param kwargs: :class:`WebhookRequestOperator`'s arguments ("Webhook Template", "Audience Trigger
        Events", "Export Fields", "Fields to Trigger", "Batch Size": events per request with Batch
        Events, and per checkpoint).
    """

    def __init__(
        self,
        *,
        cloud_events: bool = False,
        cloud_events_type: str = CLOUDEVENTS_TYPE,
        cloud_events_source: str = CLOUDEVENTS_SOURCE,
        batch_events: bool = False,
        include_audience_membership: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def event_kinds(self) -> list[str]:
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
        return WebhookDestination(
            batch_events=self.batch_events, **self.request_arguments(inputs, self.renderer())
        )


class WebhookUserEnrichmentOperator(WebhookRequestOperator):
    """Webhook User Enrichment: send each entering member's Export Fields to a webhook and post each
    JSON answer, with an ``origin`` of the member's BY fields, to a Lytics stream.

    The answers are kept in the run folder as they arrive, so a retried task posts them without
    calling the webhook again for members already answered; posting to the stream is checkpointed
    by line and each event id is posted once.

    :param stream: "Stream": the Lytics stream the answers go to (default ``webhook_enrichment``).
    :param origin_fields: the BY fields under ``origin`` (the job's identity fields).
    :param lytics_conn_id: the Lytics connection that posts to the stream.
    :param kwargs: :class:`WebhookRequestOperator`'s arguments ("Template ID" is ``webhook_template``,
        "Export Fields" the fields the request carries).
    """

    def __init__(
        self,
        *,
        stream: str = "webhook_enrichment",
        origin_fields: Sequence[str] = ("_uid",),
        lytics_conn_id: str = "lytics_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.origin_fields = list(origin_fields)

    def responses_file(self, inputs: SyncRunInputs) -> Path:
        return inputs.folder / "enrichment_responses.jsonl"

    def make_destination(self, inputs: SyncRunInputs) -> WebhookEnrichmentDestination:
        renderer = EventRenderer(
            webhook_url=self.webhook_url,
            url_template=self.webhook_url_template,
            template=self.webhook_template,
            fields_only=True,
        )
        arguments = self.request_arguments(inputs, renderer)
        for option in ("events", "trigger_fields"):
            arguments.pop(option)
        return WebhookEnrichmentDestination(
            responses=self.responses_file(inputs), origin_fields=self.origin_fields, **arguments
        )

    def execute(self, context: Context) -> dict[str, Any]:
        inputs = self.sync_inputs(context)
        report = self.run_sync(inputs, plan_name="enrichment_plan")
        if not inputs.dry_run:
            report["enrichment"] = self.post_answers(inputs)
        return report

    def post_answers(self, inputs: SyncRunInputs) -> dict[str, Any]:
        """Post the run's answers to the stream, each event id once, from the last acknowledged line."""
        from lytics_provider.files.ingest import FileCheckpoint, StreamWriter
        from lytics_provider.hooks.lytics import LyticsHook

        path = self.responses_file(inputs)
        checkpoint = FileCheckpoint(inputs.folder / "enrichment_posted.json")
        done = int(checkpoint.load() or 0)
        seen: set[str] = set()
        writer = StreamWriter(
            hook=LyticsHook(self.lytics_conn_id), stream=self.stream, on_ack=checkpoint.save
        )
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        with writer:
            for number, line in enumerate(lines, 1):
                answer = json.loads(line)
                if answer["event_id"] in seen:
                    continue
                seen.add(answer["event_id"])
                if number > done:
                    writer.add(answer["record"], position=number)
        return {
            "stream": self.stream,
            "answers": len(seen),
            "posted": writer.records,
            "accepted": writer.accepted,
        }
