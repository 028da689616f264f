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

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.export_events import iter_stream_events
from lytics_provider.hooks.ga4 import GA4ConfigError, GA4MeasurementProtocolHook, GA4Payload, GA4Version
from lytics_provider.hooks.ga4_rules import Violation, event_name_problem, validate_payload
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.workarea import JobState, run_dir
from lytics_provider.sync.identifiers import lookup_field, scalar_text

STATE_KEY = "ga4_events_handled"


class LyticsStreamToGA4Operator(BaseOperator):
    """Lytics stream events as GA4 Measurement Protocol events, each sent once.

    :param job_id: the job (its state holds how far each stream was sent).
    :param data_streams_to_export: the Lytics streams to send.
    :param ga4_conn_id: the ``ga4_measurement_protocol`` connection.
    :param ga4_version: ``gtag.js`` or ``Firebase``.
    :param measurement_id: the web stream's Measurement ID (gtag.js).
    :param firebase_app_id: the Firebase App ID (Firebase).
    :param client_id: the event field holding the GA client id (gtag.js).
    :param app_instance_id_field: the event field holding the app instance id (Firebase).
    :param event_name_field: the event field holding the GA4 event name; default the stream's name.
    :param user_id_field: the event field sent as ``user_id`` and as the user dimension.
    :param user_dimension: user property of the user id.
    :param segment_dimension: user property of the event's ``segments``.
    :param engagement_time_field: the event field sent as ``engagement_time_msec``.
    :param session_id_field: the event field sent as ``session_id``.
    :param export_scalar_fields: event fields sent as params.
    :param lytics_conn_id: the Lytics connection.
    """

    def __init__(
        self,
        *,
        job_id: str,
        data_streams_to_export: Sequence[str],
        ga4_conn_id: str = "ga4_default",
        ga4_version: GA4Version = "gtag.js",
        measurement_id: str | None = None,
        firebase_app_id: str | None = None,
        client_id: str | None = None,
        app_instance_id_field: str | None = None,
        event_name_field: str | None = None,
        user_id_field: str | None = None,
        user_dimension: str = "ly_user_id_dim",
        segment_dimension: str = "ly_segments_dim",
        engagement_time_field: str | None = None,
        session_id_field: str | None = None,
        export_scalar_fields: Sequence[str] = (),
        lytics_conn_id: str = "lytics_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.data_streams_to_export = list(data_streams_to_export)
        self.ga4_conn_id = ga4_conn_id
        self.ga4_version = ga4_version
        self.measurement_id = measurement_id
        self.firebase_app_id = firebase_app_id
        self.client_id = client_id
        self.app_instance_id_field = app_instance_id_field
        self.user_id_field = user_id_field
        self.user_dimension = user_dimension
        self.segment_dimension = segment_dimension
        self.engagement_time_field = engagement_time_field
        self.session_id_field = session_id_field
        self.export_scalar_fields = list(export_scalar_fields)
        self.identifier = "app_instance_id" if ga4_version == "Firebase" else "client_id"
        self.identifier_field = app_instance_id_field if ga4_version == "Firebase" else client_id
        self.event_name_field = event_name_field
        self.shape = GA4Payload(
            identifier=self.identifier,
            user_id_field=user_id_field,
            user_dimension=user_dimension,
            segment_dimension=segment_dimension,
            engagement_time_field=engagement_time_field,
            session_id_field=session_id_field,
            export_scalar_fields=tuple(export_scalar_fields),
        )
        self.lytics_conn_id = lytics_conn_id

    def stream_query(self) -> dict[str, str]:
        if self.ga4_version == "Firebase":
            return {"firebase_app_id": str(self.firebase_app_id)}
        return {"measurement_id": str(self.measurement_id)}

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
        dry_run = as_bool((context.get("params") or {}).get("dry_run"))
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
