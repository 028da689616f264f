"""GA4 Measurement Protocol: audience enters and exits as events, through ``/mp/collect``.

Connection ``ga4_measurement_protocol``: Password = the stream's Measurement Protocol API secret
(Admin > Data Streams > stream > Measurement Protocol > Create), sent as the ``api_secret`` query
parameter; Host optional (default ``https://www.google-analytics.com``; the EU collection host
``https://region1.google-analytics.com`` works the same).

``/mp/collect`` answers 2xx to everything and drops what breaks a rule, so nothing can be learned
from its answer: :mod:`lytics_provider.hooks.ga4_rules` checks every request first and a member
whose request would be dropped is a reject naming the rule. The validation server
(``/debug/mp/collect``) backs the Test button. One request carries one ``client_id`` (or
``app_instance_id``), so each member is one request, acknowledged (and checkpointed) on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.ga4_rules import (
    MAX_USER_PROPERTY_VALUE_LENGTH,
    Violation,
    event_name_problem,
    validate_payload,
)
from lytics_provider.hooks.rest import RestHook
from lytics_provider.hooks.rest_auth import QueryApiKey
from lytics_provider.pipeline.http import HttpClient
from lytics_provider.pipeline.log_redaction import hide_in_http_logs
from lytics_provider.sync.events import AudienceEvent, EventDestination
from lytics_provider.sync.identifiers import lookup_field, scalar_text

DEFAULT_HOST = "https://www.google-analytics.com"
GA4Version = Literal["gtag.js", "Firebase"]


class GA4ConfigError(AirflowFailException):
    """The job or connection cannot work (no API secret, an event name GA4 refuses)."""


class GA4MeasurementProtocolHook(RestHook):
    """Send events to a GA4 data stream with the API secret of a ``ga4_measurement_protocol`` connection.

    :param ga4_conn_id: the connection (API secret in Password; Host optional).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    """

    conn_name_attr = "ga4_conn_id"
    default_conn_name = "ga4_default"
    conn_type = "ga4_measurement_protocol"
    hook_name = "GA4 Measurement Protocol"
    default_host = DEFAULT_HOST
    auth: ClassVar[Any] = QueryApiKey("api_secret")
    credentials_hint = "needs the GA4 Measurement Protocol API secret in Password."
    default_headers: ClassVar[Mapping[str, str]] = {"Content-Type": "application/json"}

    sent = 0

    def get_conn(self) -> HttpClient:
        """The client; the API secret (a query parameter) is masked in the HTTP library's debug log."""
        try:
            client = super().get_conn()
        except ValueError as exc:
            raise GA4ConfigError(str(exc)) from None
        hide_in_http_logs(*client.secrets)
        return client

    def collect(self, stream: Mapping[str, str], payload: Mapping[str, Any]) -> None:
        """``POST /mp/collect`` (2xx whatever was sent; check the payload first).

        :param stream: ``{"measurement_id": ...}`` or ``{"firebase_app_id": ...}``.
        """
        self.request("POST", "/mp/collect", params=dict(stream), data=json.dumps(payload).encode("utf-8"))
        self.sent += 1

    def validate(self, stream: Mapping[str, str], payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The validation server's ``validationMessages`` for one payload (nothing is recorded)."""
        body = self.call("POST", "/debug/mp/collect", params=dict(stream), data=json.dumps(payload).encode())
        return list((body or {}).get("validationMessages") or [])

    def check_call(self) -> str:
        """Validate a probe event at ``/debug/mp/collect`` (it checks the payload, not the secret)."""
        messages = self.validate(
            {"measurement_id": "G-CHECK"},
            {"client_id": "connection.test", "events": [{"name": "lytics_check"}]},
        )
        if messages:
            raise ValueError(f"the validation server refused a valid probe: {messages}")
        return (
            "the validation server answered; it does not check the API secret, so confirm events arrive "
            "in the stream's Realtime report"
        )


def segments_value(segments: list[str]) -> str:
    """A member's audiences, comma-separated (GA takes no arrays), whole slugs up to 36 characters."""
    kept: list[str] = []
    for slug in segments:
        if len(",".join([*kept, slug])) > MAX_USER_PROPERTY_VALUE_LENGTH:
            break
        kept.append(slug)
    return ",".join(kept)


@dataclass(frozen=True)
class GA4Payload:
    """How a record (a member or a stream event) becomes one ``/mp/collect`` body.

    :param identifier: ``client_id`` (gtag.js) or ``app_instance_id`` (Firebase).
    :param user_id_field: the field sent as ``user_id`` and as the user dimension.
    :param user_dimension: the user property of the user id.
    :param segment_dimension: the user property of the record's ``segments`` (when it has some).
    :param engagement_time_field: the field sent as ``engagement_time_msec``.
    :param session_id_field: the field sent as ``session_id``.
    :param export_scalar_fields: fields sent as event params (named as the field).
    """

    identifier: str
    user_id_field: str | None = None
    user_dimension: str = "ly_user_id_dim"
    segment_dimension: str = "ly_segments_dim"
    engagement_time_field: str | None = None
    session_id_field: str | None = None
    export_scalar_fields: tuple[str, ...] = ()

    def body(self, ident: str, name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        record = dict(fields)
        params: dict[str, Any] = {}
        dedicated = (
            ("engagement_time_msec", self.engagement_time_field),
            ("session_id", self.session_id_field),
        )
        for param, field_name in dedicated:
            value = lookup_field(record, field_name) if field_name else None
            if value is not None:
                params[param] = value
        for field_name in self.export_scalar_fields:
            value = lookup_field(record, field_name)
            if value is not None:
                params[field_name] = value
        body: dict[str, Any] = {self.identifier: ident, "events": [{"name": name, "params": params}]}
        properties: dict[str, Any] = {}
        user_id = scalar_text(lookup_field(record, self.user_id_field)).strip() if self.user_id_field else ""
        if user_id:
            body["user_id"] = user_id
            properties[self.user_dimension] = {"value": user_id}
        segments = record.get("segments")
        if isinstance(segments, list) and segments:
            properties[self.segment_dimension] = {"value": segments_value([str(x) for x in segments])}
        if properties:
            body["user_properties"] = properties
        return body


class GA4AudienceDestination(EventDestination):
    """Audience enters and exits as ``{enter|exit}_{audience_slug}`` events, one request per member.

    :param hook: the Measurement Protocol hook.
    :param ga4_version: ``gtag.js`` (``client_id`` + ``measurement_id``) or ``Firebase``
        (``app_instance_id`` + ``firebase_app_id``).
    :param stream: the query naming the data stream (``measurement_id`` or ``firebase_app_id``).
    :param client_id: the member field holding the gtag.js client id.
    :param app_instance_id_field: the member field holding the Firebase app instance id.
    :param user_id_field: the member field sent as ``user_id`` and as the user dimension.
    :param user_dimension: the user property holding the user id (default ``ly_user_id_dim``).
    :param segment_dimension: the user property holding the member's audiences (``ly_segments_dim``).
    :param engagement_time_field: the member field sent as ``engagement_time_msec``.
    :param session_id_field: the member field sent as ``session_id``.
    :param export_scalar_fields: member fields sent as event params (their names are the param names).
    :param kwargs: :class:`~lytics_provider.sync.events.EventDestination`'s arguments.
    """

    def __init__(
        self,
        *,
        hook: GA4MeasurementProtocolHook,
        ga4_version: GA4Version,
        stream: Mapping[str, str],
        client_id: str | None = None,
        app_instance_id_field: str | None = None,
        user_id_field: str | None = None,
        user_dimension: str = "ly_user_id_dim",
        segment_dimension: str = "ly_segments_dim",
        engagement_time_field: str | None = None,
        session_id_field: str | None = None,
        export_scalar_fields: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_size = 1  # one client per request: each member is acknowledged on its own
        self.hook = hook
        self.ga4_version = ga4_version
        self.stream = dict(stream)
        self.identifier = "app_instance_id" if ga4_version == "Firebase" else "client_id"
        self.identifier_field = app_instance_id_field if ga4_version == "Firebase" else client_id
        if not self.identifier_field:
            raise GA4ConfigError(
                "GA4 Version Firebase needs app_instance_id_field"
                if ga4_version == "Firebase"
                else "GA4 Version gtag.js needs client_id (the member field holding the GA client id)"
            )
        self.user_id_field = user_id_field
        self.user_dimension = user_dimension
        self.segment_dimension = segment_dimension
        self.engagement_time_field = engagement_time_field
        self.session_id_field = session_id_field
        self.export_scalar_fields = list(export_scalar_fields)
        self.segments_cut = 0
        for kind in ("enter", "exit"):
            problem = event_name_problem(self.event_name(kind))
            if problem:
                raise GA4ConfigError(
                    f"audience {self.audience!r} gives the event name {self.event_name(kind)!r}, which GA4 "
                    f"drops: {problem.description}"
                )

    def event_name(self, kind: str) -> str:
        return f"{'exit' if kind == 'exit' else 'enter'}_{self.audience}"

    # -- planning --------------------------------------------------------------------------------
    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        return scalar_text(lookup_field(record, str(self.identifier_field))).strip(), None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        """The rules the member's request would break (the validation server's codes), or None."""
        if not ident:
            return str(
                Violation(self.identifier, "VALUE_REQUIRED", f"the member has no {self.identifier_field}")
            )
        problems = validate_payload(self.payload_for(ident, record, "enter"), self.identifier)
        return "; ".join(map(str, problems)) or None

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        """What the plan keeps of a member: the fields the request is built from."""
        names = [
            self.user_id_field,
            self.engagement_time_field,
            self.session_id_field,
            *self.export_scalar_fields,
        ]
        kept = {name: lookup_field(record, name) for name in names if name}
        kept["segments"] = record.get("segments")
        return kept

    # -- acting ----------------------------------------------------------------------------------
    def payload_for(self, ident: str, fields: Mapping[str, Any], kind: str) -> dict[str, Any]:
        """The ``/mp/collect`` body of one member's event."""
        return self.shape().body(ident, self.event_name(kind), fields)

    def shape(self) -> GA4Payload:
        return GA4Payload(
            identifier=self.identifier,
            user_id_field=self.user_id_field,
            user_dimension=self.user_dimension,
            segment_dimension=self.segment_dimension,
            engagement_time_field=self.engagement_time_field,
            session_id_field=self.session_id_field,
            export_scalar_fields=tuple(self.export_scalar_fields),
        )

    def send_events(self, events: list[AudienceEvent]) -> dict[str, str | None]:
        refused: dict[str, str | None] = {}
        for event in events:
            body = self.payload_for(event.ident, event.fields, event.kind)
            problems = validate_payload(body, self.identifier)
            if problems:
                refused[event.id] = "; ".join(map(str, problems))
                continue
            segments = event.fields.get("segments")
            if isinstance(segments, list) and len(segments_value([str(x) for x in segments])) < len(
                ",".join(str(x) for x in segments)
            ):
                self.segments_cut += 1
            self.hook.collect(self.stream, body)
        return refused

    def describe(self) -> dict[str, Any]:
        return {
            "ga4_version": self.ga4_version,
            **self.stream,
            "event_names": [self.event_name(k) for k in ("enter", "exit")],
        }

    def describe_after(self) -> dict[str, Any]:
        return {"requests": self.hook.sent, "segment_dimension_cut": self.segments_cut}
