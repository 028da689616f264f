"""What a webhook request carries for one audience event: the Lytics default body, a CloudEvent, or
the output of a jsonnet Webhook Template; and the URL, which a template may build from the event.

* Lytics default (https://docs.lytics.com/docs/webhooks, "Lytics default"): ``{"id", "data",
  "meta"}``; ``data`` holds the member's exported fields plus ``segment_events`` (the event:
  ``id``, ``event``, ``slug`` and the time under the kind's name) and, with Include Audience
  Membership, ``segments_all``; ``meta`` names the event, audience, member (``uid``), job and time. The event
  id also rides in the ``Idempotency-Key`` header.
* CloudEvents (https://github.com/cloudevents/spec, JSON format, structured content mode):
  ``specversion`` 1.0, ``id`` = the event id, ``source`` (CloudEvents Source, default
  ``/work/id``), ``type`` (CloudEvents Type, default ``com.lytics.audience.user.event``),
  ``subject`` = the member, ``time``, ``datacontenttype`` and ``data`` as above; the extension
  attribute ``lyticsevent`` says enter / exit / change. A batch is the JSON batch format
  (``application/cloudevents-batch+json``, an array of events).
* Webhook Templates (https://docs.lytics.com/docs/webhook-templates): jsonnet, evaluated with the
  ``jsonnet`` package. A template reads the member with ``event.get("field")`` (null when the
  member lacks the field; ``event.get("field", default)``), and also sees ``event.id``,
  ``event.kind``, ``event.audience``, ``event.uid``, ``event.time`` and ``event.fields``. A body
  template outputs the JSON body; a URL template outputs one string, the URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lytics_provider.sync.event_body import event_document
from lytics_provider.sync.events import AudienceEvent

CLOUDEVENTS_TYPE = "com.lytics.audience.user.event"
CLOUDEVENTS_SOURCE = "/work/id"
JSON = "application/json"
CLOUDEVENT = "application/cloudevents+json; charset=utf-8"
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json; charset=utf-8"

# One line, so a template's own line numbers stay right in jsonnet's errors.
_PRELUDE = (
    "local event = { local e = std.extVar('event'), id: e.id, kind: e.kind, audience: e.audience, "
    "uid: e.uid, time: e.time, fields: e.fields, "
    "get(name, default=null):: if std.objectHas(e.fields, name) then e.fields[name] else default }; "
)
_SAMPLE = {"id": "sample", "kind": "enter", "audience": "sample", "uid": "sample", "time": "", "fields": {}}


class RenderError(ValueError):
    """One event could not be rendered (a template failed on it); the event lands in rejects."""


class TemplateError(ValueError):
    """A template that does not compile (a config error)."""


def evaluate(template: str, event: dict[str, Any], name: str = "template") -> Any:
    """Evaluate a jsonnet ``template`` for one event; the decoded JSON value.

    jsonnet's errors (``RuntimeError``) point into the template itself: the prelude's columns are
    taken off positions on its first line.
    """
    import _jsonnet

    try:
        text = _jsonnet.evaluate_snippet(name, _PRELUDE + template, ext_codes={"event": json.dumps(event)})
    except RuntimeError as exc:
        raise RuntimeError(_template_positions(str(exc), name)) from None
    return json.loads(text)


def _template_positions(message: str, name: str) -> str:
    """``name:1:C`` positions of jsonnet's message as columns of the template (without the prelude)."""

    def shift(match: re.Match[str]) -> str:
        line, first, last = match.group(1), int(match.group(2)), match.group(3)
        if line != "1":
            return match.group(0)
        columns = str(max(1, first - len(_PRELUDE)))
        if last:
            columns += f"-{max(1, int(last) - len(_PRELUDE))}"
        return f"{name}:{line}:{columns}"

    return re.sub(rf"{re.escape(name)}:(\d+):(\d+)(?:-(\d+))?", shift, message)


def check_template(template: str, name: str) -> None:
    """Raise :class:`TemplateError` when ``template`` is not valid jsonnet (a static error).

    Runtime errors are not checked here: they depend on the member and reject only that event.
    """
    try:
        evaluate(template, _SAMPLE, name)
    except RuntimeError as exc:
        if "STATIC ERROR" in str(exc):
            raise TemplateError(f"{name} is not valid jsonnet: {str(exc).strip().splitlines()[0]}") from None


def template_document(event: AudienceEvent) -> dict[str, Any]:
    """The event as a template sees it (``std.extVar('event')``): ``kind`` and ``fields``."""
    return event_document(event, kind_key="kind", fields_key="fields")


@dataclass
class RenderedEvent:
    """One event ready to send: where to, which headers, which body (and its decoded form)."""

    event_id: str
    url: str
    headers: dict[str, str]
    body: bytes
    document: Any = field(repr=False, default=None)


@dataclass
class EventRenderer:
    """Builds the request of each event from the job's options.

    :param webhook_url: "Webhook URL" (https), used when no URL template is set.
    :param url_template: jsonnet that outputs the URL of one event.
    :param template: "Webhook Template": jsonnet that outputs the body of one event.
    :param cloud_events: "CloudEvents": send CloudEvents (structured JSON) instead of the Lytics body.
    :param cloud_events_type: "CloudEvents Type".
    :param cloud_events_source: "CloudEvents Source".
    :param include_audience_membership: "Include Audience Membership": add ``segments_all``.
    """

    webhook_url: str
    url_template: str | None = None
    template: str | None = None
    cloud_events: bool = False
    cloud_events_type: str = CLOUDEVENTS_TYPE
    cloud_events_source: str = CLOUDEVENTS_SOURCE
    include_audience_membership: bool = False
    fields_only: bool = False
    """Send the member's fields as the body (Webhook User Enrichment) instead of the event envelope."""

    @property
    def format_name(self) -> str:
        if self.template:
            return "template"
        if self.fields_only:
            return "fields"
        return "cloudevents" if self.cloud_events else "lytics"

    @property
    def shown_url(self) -> str:
        """The URL without its query (where a token might sit), or ``template`` for a URL template."""
        if self.url_template:
            return "template"
        parts = urlsplit(self.webhook_url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    # -- one event ---------------------------------------------------------------------------
    def data(self, event: AudienceEvent) -> dict[str, Any]:
        """The exported fields, the event under ``segment_events`` and, when asked, ``segments_all``."""
        data = dict(event.fields)
        data["segment_events"] = [
            {"id": event.id, "event": event.kind, "slug": event.audience, event.kind: event.time}
        ]
        if self.include_audience_membership:
            data["segments_all"] = membership(event)
        return data

    def lytics_body(self, event: AudienceEvent) -> dict[str, Any]:
        meta = {
            "event": event.kind,
            "audience": event.audience,
            "uid": event.uid,
            "job_id": event.job_id,
            "time": event.time,
        }
        return {"id": event.id, "data": self.data(event), "meta": meta}

    def cloud_event(self, event: AudienceEvent) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": event.id,
            "source": self.cloud_events_source,
            "type": self.cloud_events_type,
            "subject": event.uid,
            "time": event.time,
            "datacontenttype": JSON,
            "lyticsevent": event.kind,
            "data": self.data(event),
        }

    def url(self, event: AudienceEvent) -> str:
        if not self.url_template:
            return self.webhook_url
        try:
            url = evaluate(self.url_template, template_document(event), "webhook_url_template")
        except RuntimeError as exc:
            raise RenderError(f"webhook_url_template failed: {_first_line(exc)}") from None
        if not isinstance(url, str) or not url.startswith("https://"):
            raise RenderError(f"webhook_url_template gave {str(url)[:100]!r}, not an https:// URL")
        return url

    def render(self, event: AudienceEvent) -> RenderedEvent:
        """The request of one event; :class:`RenderError` when a template fails on it."""
        if self.template:
            try:
                document: Any = evaluate(self.template, template_document(event), "template")
            except RuntimeError as exc:
                raise RenderError(f"the webhook template failed: {_first_line(exc)}") from None
            content_type = JSON
        elif self.fields_only:
            document, content_type = dict(event.fields), JSON
        elif self.cloud_events:
            document, content_type = self.cloud_event(event), CLOUDEVENT
        else:
            document, content_type = self.lytics_body(event), JSON
        headers = {"Content-Type": content_type, "Idempotency-Key": event.id}
        return RenderedEvent(event.id, self.url(event), headers, _dumps(document), document)

    # -- a batch -------------------------------------------------------------------------------
    def batch_body(self, events: Sequence[RenderedEvent]) -> tuple[bytes, dict[str, str]]:
        """The body of several events sent as one array ("Batch Events") and its headers."""
        content_type = CLOUDEVENTS_BATCH if self.cloud_events and not self.template else JSON
        return _dumps([one.document for one in events]), {"Content-Type": content_type}


def membership(event: AudienceEvent) -> list[str]:
    """``segments_all``: the member's audiences as the profile lists them, else what the job knows."""
    found = event.fields.get("segments_all") or event.fields.get("segments")
    known = [str(s) for s in found] if isinstance(found, list) else []
    if event.kind == "exit":
        return [s for s in known if s != event.audience]
    return known if event.audience in known else [*known, event.audience]


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), default=str).encode()


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]
