"""Send a Lytics stream's events to a GA4 data stream ("GA4: Measurement Protocol Event Export").

The ``export`` task reads each of the Data Streams to Export, oldest event first, and sends every
event it has not sent before as one ``/mp/collect`` request: the event name is the Event Name
Field's value (default: the stream's name), the client the Client ID field's (or the App Instance
ID Field's), params ``engagement_time_msec``, ``session_id`` and the Export Scalar Fields, user
properties the User ID Field and the event's ``segments``. The first run starts from the first
event ever received, as the seed describes; each run then sends the events that arrived since.

Where each stream stands (events handled) is saved in the job's state after every request, so a
retried or interrupted run sends no event twice (GA4 does not de-duplicate). Events that would
break a Measurement Protocol rule are not sent: they land in ``rejects.jsonl`` with the rule and
count as handled. A dry run counts what would be sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from airflow.sdk import Context

from lytics_provider.files.export_events import iter_stream_events
from lytics_provider.hooks.ga4 import GA4ConfigError, GA4MeasurementProtocolHook
from lytics_provider.hooks.ga4_rules import Violation, event_name_problem, validate_payload
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.workarea import JobState, run_dir
from lytics_provider.sync.identifiers import lookup_field, scalar_text
from lytics_provider.transfers.lytics_to_ga4 import GA4Options

STATE_KEY = "ga4_events_handled"


class LyticsStreamToGA4Operator(GA4Options):
    """Lytics stream events as GA4 Measurement Protocol events, each sent once.

    :param job_id: the job (its state holds how far each stream was sent).
    :param data_streams_to_export: the Lytics streams to send.
    :param event_name_field: the event field holding the GA4 event name; default the stream's name.
    :param lytics_conn_id: the Lytics connection.
    :param kwargs: :class:`~lytics_provider.transfers.lytics_to_ga4.GA4Options`' arguments (the
        fields are event fields).
    """

    def __init__(
        self,
        *,
        job_id: str,
        data_streams_to_export: Sequence[str],
        event_name_field: str | None = None,
        lytics_conn_id: str = "lytics_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.data_streams_to_export = list(data_streams_to_export)
        firebase = self.ga4_version == "Firebase"
        self.identifier = "app_instance_id" if firebase else "client_id"
        self.identifier_field = self.app_instance_id_field if firebase else self.client_id
        self.shape = self.payload_shape(self.identifier)

    def body(self, stream: str, event: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """The request of one event, or None and the rule it breaks."""
        ident = scalar_text(lookup_field(event, str(self.identifier_field))).strip()
        if not ident:
            return None, str(
                Violation(self.identifier, "VALUE_REQUIRED", f"the event has no {self.identifier_field}")
            )
        name = (
            scalar_text(lookup_field(event, self.event_name_field)).strip()
            if self.event_name_field
            else stream
        )
        body = self.shape.body(ident, name, event)
        problems = validate_payload(body, self.identifier)
        return (None, "; ".join(map(str, problems))) if problems else (body, None)

    def execute(self, context: Context) -> dict[str, Any]:
        if not self.event_name_field:
            for stream in self.data_streams_to_export:
                problem = event_name_problem(stream)
                if problem:
                    raise GA4ConfigError(
                        f"stream {stream!r} is the event name when event_name_field is unset, and GA4 "
                        f"drops it: {problem.description}; set event_name_field"
                    )
        dry_run = run_param(context, "dry_run")
        state = JobState(self.job_id)
        handled: dict[str, int] = dict(state.get(STATE_KEY) or {})
        lytics = LyticsHook(self.lytics_conn_id)
        ga4 = GA4MeasurementProtocolHook(self.ga4_conn_id)
        folder = run_dir(self.job_id, context["run_id"])
        rejects_path = folder / "rejects.jsonl"
        report: dict[str, Any] = {"streams": {}, "dry_run": dry_run, "rejected": 0, "rows": 0}
        with open(rejects_path, "a", encoding="utf-8") as rejects:
            for stream in self.data_streams_to_export:
                counts = {"sent": 0, "rejected": 0, "skipped_already_sent": handled.get(stream, 0)}
                for position, event in self._new_events(lytics, stream, handled.get(stream, 0)):
                    body, reason = self.body(stream, event)
                    if dry_run:
                        counts["rejected" if reason else "sent"] += 1
                        continue
                    if body is not None:
                        ga4.collect(self.stream_query(), body)
                        counts["sent"] += 1
                    else:
                        rejects.write(
                            json.dumps({"stream": stream, "position": position, "reason": reason}) + "\n"
                        )
                        rejects.flush()
                        counts["rejected"] += 1
                    handled[stream] = position + 1
                    state.update(**{STATE_KEY: handled})
                report["streams"][stream] = counts
                report["rows"] += counts["sent"]
                report["rejected"] += counts["rejected"]
        report["rejects_file"] = str(rejects_path) if report["rejected"] and not dry_run else None
        if report["rejected"]:
            self.log.warning(
                "%d events broke a Measurement Protocol rule; reasons in %s", report["rejected"], rejects_path
            )
        self.log.info("GA4 event export: %s", report)
        return report

    @staticmethod
    def _new_events(lytics: LyticsHook, stream: str, done: int) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(position, event)`` of the stream's events after the first ``done`` (oldest first)."""
        for position, event in enumerate(iter_stream_events(lytics, stream)):
            if position >= done:
                yield position, event
