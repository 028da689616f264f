"""Hook for Salesforce Marketing Cloud and its destination adapters (data extensions, journeys).

Auth: an installed package's API Integration (server-to-server): Login = Client ID, Password =
Client Secret, Host = the Authentication Base URI (``https://<subdomain>.auth.marketingcloudapis.com``),
extra ``account_id`` (the business unit's MID, optional). ``POST /v2/token`` with a JSON body
answers the access token and the account's ``rest_instance_url`` and ``soap_instance_url``; the REST
calls go to the REST instance. The token lives about 18 minutes: it is fetched again shortly before
it expires and once on a 401.

* data extension rows: ``POST /hub/v1/dataevents/key:{key}/rowset`` (synchronous upsert on the
  primary key; Salesforce's published best practice is at most 50 rows a call). A call refused
  with a 400 names the rows at fault; the sync engine splits the batch to find them;
* a new data extension: SOAP ``Create`` of a ``DataExtension`` (the REST API has no call for it);
* subscribers on a list: SOAP ``Create`` (``SaveOption`` ``UpdateAdd``: created or updated) and
  ``Update`` of ``Subscriber`` objects whose ``Lists`` name the list and the ``SubscriberList``
  ``Action``; every object gets its own ``Results`` entry (``StatusCode``, ``StatusMessage``,
  ``OrdinalID``), read by :meth:`SfmcHook.save_objects`. A list is looked up with a ``Retrieve``
  of ``List`` by ``ID``;
* journeys: ``POST /interaction/v1/events`` (``ContactKey``, ``EventDefinitionKey``, ``Data``), one
  entry event per call;
* subscribers and tracking events (``SentEvent``, ``OpenEvent``, ``ClickEvent``, ``BounceEvent``,
  ``UnsubEvent``, ...): SOAP ``Retrieve`` with a filter on a date (the REST API has no general
  export of them), at most 2,500 results a call; ``OverallStatus`` ``MoreDataAvailable`` names a
  ``RequestID`` whose next page a ``RetrieveRequest`` holding only ``ContinueRequest`` reads. Dates
  are sent in UTC (``Z``); the answers' dates are in the server's time, Central Standard Time
  without daylight saving (UTC-6), and :func:`server_time_to_utc` converts them.

SOAP envelopes are built and read with :mod:`xml.etree.ElementTree`; the access token travels in
the ``fueloauth`` header of each envelope.

Errors: ``{"message", "errorcode", "documentation"}``; 429 (``errorcode`` 50100) carries
``Retry-After``, honoured by the REST hook base.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from lytics_provider.hooks.field_mapping import mapped_values
from lytics_provider.hooks.rest import JSON_HEADERS, RestHook
from lytics_provider.hooks.rest_auth import Credentials, HostOAuth2ClientCredentials, OAuth2Token
from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.pipeline.http import AuthError, HttpClient, PermanentServiceError
from lytics_provider.sync.act import RowLevelBatchError
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.events import AudienceEvent, EventDestination
from lytics_provider.sync.identifiers import is_email, lookup_field, scalar_text
from lytics_provider.sync.plan import Outcome, Work

log = logging.getLogger(__name__)

ROWSET_LIMIT = 50
"""Rows per rowset upsert (Salesforce's published best practice for the synchronous API)."""
TOKEN_MARGIN = 60.0
UPSERTED, REJECTED = "upserted", "Rejected"
SOAP_NS = "http://exacttarget.com/wsdl/partnerAPI"
ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
TOKEN_NS = "http://exacttarget.com"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
SERVER_TIME = timedelta(hours=-6)
"""The SOAP API's server time: Central Standard Time, without daylight saving."""
FIELD_TYPES = ("Text", "Number", "Date", "Boolean", "EmailAddress", "Phone", "Decimal", "Locale")


@error_reader
def sfmc_error(body: dict[str, Any]) -> str | None:
    """The text of a Marketing Cloud error body (``message``, ``additionalErrors``, OAuth ``error``)."""
    parts = [str(body.get("message") or body.get("error_description") or body.get("error") or "")]
    if body.get("errorcode") not in (None, ""):
        parts.append(f"(errorcode {body['errorcode']})")
    for extra in (body.get("additionalErrors") or [])[:5]:
        if isinstance(extra, dict) and extra.get("message"):
            parts.append(f"- {extra['message']}")
    return " ".join(p for p in parts if p)[:800]


def local_name(element: ET.Element) -> str:
    """An element's tag without its namespace."""
    return element.tag.rsplit("}", 1)[-1]


def child_text(element: ET.Element, name: str) -> str:
    """The text of ``element``'s first child called ``name`` (any namespace); empty when missing."""
    found = next((c for c in element if local_name(c) == name), None)
    return (found.text or "").strip() if found is not None else ""


def add(parent: ET.Element, name: str, text: str | None = None, xsi_type: str | None = None) -> ET.Element:
    """A child of ``parent`` in the partner API's namespace."""
    element = ET.SubElement(parent, f"{{{SOAP_NS}}}{name}")
    if xsi_type:
        element.set(XSI_TYPE, xsi_type)
    if text is not None:
        element.text = text
    return element


def flat_result(element: ET.Element, prefix: str = "") -> dict[str, str]:
    """A ``Results`` object as ``{property: text}``; nested objects' properties dotted (``Client.ID``)."""
    found: dict[str, str] = {}
    for child in element:
        name = f"{prefix}{local_name(child)}"
        if len(child):
            found.update(flat_result(child, f"{name}."))
        elif (child.text or "").strip():
            found[name] = child.text.strip()  # type: ignore[union-attr]
    return found


def server_time_to_utc(text: str) -> str:
    """A date of a SOAP answer (server time when it names no offset) as UTC ISO 8601 (``Z``)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    utc = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment - SERVER_TIME
    return utc.isoformat(timespec="milliseconds") + "Z"


@dataclass(frozen=True)
class ValueFilter:
    """``SimpleFilterPart``: ``property`` compared by ``operator`` with one value."""

    property: str
    operator: str
    value: str
    value_element: ClassVar[str] = "Value"

    def render(self, parent: ET.Element, tag: str) -> None:
        part = add(parent, tag, xsi_type="SimpleFilterPart")
        add(part, "Property", self.property)
        add(part, "SimpleOperator", self.operator)
        add(part, self.value_element, self.value)


@dataclass(frozen=True)
class DateFilter(ValueFilter):
    """``SimpleFilterPart`` comparing with one date (UTC ISO 8601), a ``DateValue``."""

    value_element: ClassVar[str] = "DateValue"


@dataclass(frozen=True)
class JoinedFilter:
    """``ComplexFilterPart``: two filter parts joined by ``AND`` or ``OR``."""

    left: ValueFilter | JoinedFilter
    logical: str
    right: ValueFilter | JoinedFilter

    def render(self, parent: ET.Element, tag: str) -> None:
        part = add(parent, tag, xsi_type="ComplexFilterPart")
        self.left.render(part, "LeftOperand")
        add(part, "LogicalOperator", self.logical)
        self.right.render(part, "RightOperand")


def date_window(prop: str, since: str, until: str) -> JoinedFilter:
    """``since <= prop < until``: consecutive windows neither overlap nor leave a gap."""
    return JoinedFilter(
        DateFilter(prop, "greaterThanOrEqual", since), "AND", DateFilter(prop, "lessThan", until)
    )


class SfmcHook(RestHook):
    """Talk to Marketing Cloud with the installed package credentials of an ``sfmc`` connection.

    Connection: Login = Client ID, Password = Client Secret, Host = Authentication Base URI, extra
    ``account_id`` (MID of the business unit; default the package's own).

    :param sfmc_conn_id: the ``sfmc`` connection (default ``sfmc_default``).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    """

    conn_type = "sfmc"
    hook_name = "Salesforce Marketing Cloud"
    auth = HostOAuth2ClientCredentials(
        "/v2/token", client_auth="json", margin=TOKEN_MARGIN, param_extras=("account_id",)
    )
    """Client ID (Login) and Client Secret (Password) exchanged at ``<Host>/v2/token`` (JSON body),
    for the business unit of the extra ``account_id`` when set."""
    credentials_hint = (
        "needs the Client ID in Login, the Client Secret in Password and the Authentication Base URI in Host."
    )
    credentials_fix = (
        "the installed package's Client ID (Login) and Client Secret (Password), the Authentication Base "
        "URI (Host), and that the package has the permissions the job needs (Data Extensions read/write, "
        "Journeys execute; for Export Lists List and Subscribers read/write; for the import List and "
        "Subscribers read and Tracking Events read)."
    )
    default_headers = JSON_HEADERS
    error_text = staticmethod(sfmc_error)

    auth_base = ""
    token: OAuth2Token | None = None

    def configure_client(self, client: HttpClient, credentials: Credentials) -> None:
        """Fetch the first token and send every REST call to the account's ``rest_instance_url``."""
        token = credentials.requests_auth
        assert isinstance(token, OAuth2Token)
        self.auth_base = client.base_url
        self.token = token
        token.token()
        rest = str(token.answer.get("rest_instance_url") or "").rstrip("/")
        if not rest:
            raise ValueError(
                f"Connection {self.sfmc_conn_id!r}: the token answer has no rest_instance_url; is Host the "
                "Authentication Base URI (https://<subdomain>.auth.marketingcloudapis.com)?"
            )
        client.base_url = rest

    def check_call(self) -> str:
        """Fetch a token and read ``/v2/userinfo`` (any valid token may)."""
        client = self.get_conn()
        body = self.call("GET", f"{self.auth_base}/v2/userinfo")
        member = (body.get("organization") or {}).get("member_id")
        return f"account {member}, REST instance {client.base_url}"

    # -- data extensions -----------------------------------------------------------------------
    def upsert_rows(self, key: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Upsert up to 50 ``{"keys": {...}, "values": {...}}`` rows in one synchronous rowset call."""
        if len(rows) > ROWSET_LIMIT:
            raise ValueError(f"at most {ROWSET_LIMIT} rows per rowset call")
        self.call("POST", f"/hub/v1/dataevents/key:{quote(key, safe='')}/rowset", json=list(rows))

    def create_data_extension(
        self,
        key: str,
        name: str,
        columns: Sequence[tuple[str, str, bool]],
        sendable_column: str | None = None,
    ) -> tuple[bool, str]:
        """SOAP ``Create`` of a data extension; ``(created, message)``.

        :param columns: ``(name, FieldType, is_primary_key)`` of each column.
        :param sendable_column: the column related to Subscriber Key (a sendable data extension).
        """
        request = ET.Element(f"{{{SOAP_NS}}}CreateRequest")
        obj = add(request, "Objects", xsi_type="DataExtension")
        add(obj, "CustomerKey", key)
        add(obj, "Name", name)
        if sendable_column:
            add(obj, "IsSendable", "true")
            add(add(obj, "SendableDataExtensionField"), "Name", sendable_column)
            add(add(obj, "SendableSubscriberField"), "Name", "Subscriber Key")
        fields = add(obj, "Fields")
        for column, kind, primary in columns:
            field = add(fields, "Field")
            add(field, "CustomerKey", column)
            add(field, "Name", column)
            add(field, "FieldType", kind)
            if kind in ("Text", "EmailAddress"):
                add(field, "MaxLength", "254")
            add(field, "IsPrimaryKey", str(primary).lower())
            add(field, "IsRequired", str(primary).lower())
        answer = self.soap_call("Create", request)
        result = next((r for r in answer if local_name(r) == "Results"), answer)
        return child_text(answer, "OverallStatus") == "OK", child_text(result, "StatusMessage")

    # -- SOAP ----------------------------------------------------------------------------------
    def soap_call(self, action: str, request: ET.Element) -> ET.Element:
        """Send ``request`` as the body of a SOAP ``action`` call; the answer's body element.

        The token is written into the envelope, so an envelope refused with a 401 (a token that
        expired in between; the client renewed it) is built again and sent once more.
        """
        client = self.get_conn()
        assert self.token is not None
        url = f"{str(self.token.answer.get('soap_instance_url') or '').rstrip('/')}/Service.asmx"
        try:
            response = self._post_envelope(client, url, action, request)
        except AuthError as exc:
            if exc.status != 401:
                raise
            response = self._post_envelope(client, url, action, request)
        found = next((e for e in ET.fromstring(response.content).iter() if local_name(e) == "Body"), None)
        if found is None or not len(found):
            raise PermanentServiceError(f"SOAP {action}: the answer has no body", response.status_code)
        return found[0]

    def _post_envelope(
        self, client: HttpClient, url: str, action: str, request: ET.Element
    ) -> requests.Response:
        """POST ``request`` in an envelope carrying the current token; the response."""
        assert self.token is not None
        envelope = ET.Element(f"{{{ENVELOPE_NS}}}Envelope")
        header = ET.SubElement(envelope, f"{{{ENVELOPE_NS}}}Header")
        ET.SubElement(header, f"{{{TOKEN_NS}}}fueloauth").text = self.token.token()
        ET.SubElement(envelope, f"{{{ENVELOPE_NS}}}Body").append(request)
        return client.request(
            "POST",
            url,
            data=ET.tostring(envelope, encoding="utf-8", xml_declaration=True, default_namespace=SOAP_NS),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": action},
        )

    def save_objects(
        self, action: str, objects: Sequence[ET.Element], update_add: bool = False
    ) -> list[dict[str, str]]:
        """SOAP ``Create`` or ``Update`` of ``objects``; each object's result, in the request's order.

        :param action: ``Create`` or ``Update``.
        :param objects: ``Objects`` elements (:func:`add` under any parent, or built alone).
        :param update_add: ``SaveOption`` ``UpdateAdd`` on every property: an object that exists is
            updated instead of refused.
        :returns: per object its flattened ``Results`` (``StatusCode`` ``OK`` or ``Error``,
            ``StatusMessage``, ``ErrorCode``, ``OrdinalID``).
        """
        request = ET.Element(f"{{{SOAP_NS}}}{action}Request")
        if update_add:
            option = add(add(add(request, "Options"), "SaveOptions"), "SaveOption")
            add(option, "PropertyName", "*")
            add(option, "SaveAction", "UpdateAdd")
        request.extend(objects)
        answer = self.soap_call(action, request)
        results = [flat_result(r) for r in answer if local_name(r) == "Results"]
        if len(results) != len(objects):
            status = child_text(answer, "OverallStatus")
            raise PermanentServiceError(
                f"SOAP {action}: {status or 'no status'} ({len(results)} results for {len(objects)} objects)",
                400,
                status,
            )
        return sorted(results, key=lambda r: int(r.get("OrdinalID") or 0))

    def retrieve_pages(
        self, object_type: str, properties: Sequence[str], where: ValueFilter | JoinedFilter
    ) -> Iterator[tuple[list[dict[str, str]], str | None]]:
        """SOAP ``Retrieve`` of ``object_type``: each page's results and the next page's ``RequestID``.

        :param object_type: the object retrieved (``Subscriber``, ``SentEvent``, ...).
        :param properties: the properties answered.
        :param where: the filter.
        :returns: ``(results, request_id)`` per page; ``request_id`` is ``None`` after the last page.
        """
        following: str | None = None
        while True:
            message = ET.Element(f"{{{SOAP_NS}}}RetrieveRequestMsg")
            request = add(message, "RetrieveRequest")
            if following is None:
                add(request, "ObjectType", object_type)
                for name in properties:
                    add(request, "Properties", name)
                where.render(request, "Filter")
            else:
                add(request, "ContinueRequest", following)
            answer = self.soap_call("Retrieve", message)
            status = child_text(answer, "OverallStatus")
            if status not in ("OK", "MoreDataAvailable"):
                raise PermanentServiceError(f"SOAP Retrieve of {object_type}: {status}", 400, status)
            following = child_text(answer, "RequestID") if status == "MoreDataAvailable" else None
            yield [flat_result(r) for r in answer if local_name(r) == "Results"], following
            if following is None:
                return

    # -- journeys ------------------------------------------------------------------------------
    def fire_entry_event(self, contact_key: str, event_definition_key: str, data: Mapping[str, Any]) -> str:
        """Send one journey entry event; return its ``eventInstanceId``."""
        body = self.call(
            "POST",
            "/interaction/v1/events",
            json={"ContactKey": contact_key, "EventDefinitionKey": event_definition_key, "Data": dict(data)},
        )
        return str(body.get("eventInstanceId") or "")


def key_of(record: dict[str, Any], field: str) -> str:
    """The member's key (``field`` of the profile) as text; an email is trimmed and lower-cased."""
    value = lookup_field(record, field)
    if isinstance(value, list):
        value = value[0] if value else None
    text = scalar_text(value).strip()
    return text.lower() if is_email_field(field) else text


def is_email_field(field: str) -> bool:
    """A field that holds an email (its name says so), whose values must be valid addresses."""
    return "email" in field.lower()


class SfmcMembers:
    """Destination mixin: members keyed by one profile field (:meth:`key_field`), which must be a
    valid address when its name says it holds an email, carrying their mapped fields
    (``field_mapping``)."""

    field_mapping: dict[str, str]
    key_name: str
    """What the key is called at Marketing Cloud (in reject reasons)."""

    def key_field(self) -> str:
        """The profile field of the key."""
        raise NotImplementedError

    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        return key_of(record, self.key_field()), None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        field = self.key_field()
        if not ident:
            return f"no {self.key_name} in field {field!r}"
        if is_email_field(field) and not is_email(ident):
            return f"{field!r} is not a valid email address (the {self.key_name})"
        return None

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        return mapped_values(record, self.field_mapping)


class SfmcDataExtensionDestination(SfmcMembers, SyncDestination):
    """Members upserted as rows of one data extension, keyed by the subscriber key column.

    Exits are not sent: the rows stay (the REST API deletes no rows; journeys and sends read the
    data extension as it is).
    """

    enter_kinds = ("enter", "change")
    tracked_exit_actions = ()
    reject_status = REJECTED
    key_name = "subscriber key"

    def __init__(
        self,
        hook: SfmcHook | None,
        key: str,
        subscriber_key_field: str,
        subscriber_key_column: str,
        field_mapping: Mapping[str, str],
        batch_size: int = ROWSET_LIMIT,
        created: bool = False,
    ) -> None:
        self.hook = hook
        self.key = key
        self.subscriber_key_field = subscriber_key_field
        self.subscriber_key_column = subscriber_key_column
        self.field_mapping = dict(field_mapping)
        self.batch_size = batch_size
        self.created = created

    def key_field(self) -> str:
        return self.subscriber_key_field

    def targets(self, record: dict[str, Any]) -> list[str]:
        return [self.key]

    def describe(self) -> dict[str, Any]:
        return {
            "data_extension": self.key,
            "subscriber_key_column": self.subscriber_key_column,
            "created": self.created,
            "exits": "kept",
        }

    def describe_after(self) -> dict[str, Any]:
        return {"sfmc_calls": self.hook.calls if self.hook else 0}

    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        """Upsert the rows in one rowset call; a 400 is a row-level refusal (the batch is split)."""
        assert self.hook is not None
        body = [{"keys": {self.subscriber_key_column: w.ident}, "values": w.fields()} for w in rows]
        try:
            self.hook.upsert_rows(target, body)
        except PermanentServiceError as exc:
            if exc.status != 400:
                raise
            text = str(exc)
            if "do not exist" in text or "does not exist" in text:
                raise  # a mapped column the data extension lacks: a configuration error, not a row's
            raise RowLevelBatchError(f"Marketing Cloud refused the row: {text}") from None
        return [(w.ident, target, "add", w.uid, UPSERTED, None, None) for w in rows]


class SfmcJourneyDestination(SfmcMembers, EventDestination):
    """Members who enter the audience sent as entry events of one journey (``ContactKey`` from a field)."""

    reject_status = REJECTED
    key_name = "ContactKey"

    def __init__(
        self,
        hook: SfmcHook | None,
        event_definition_key: str,
        contact_key_field: str,
        field_mapping: Mapping[str, str],
        **event_arguments: Any,
    ) -> None:
        super().__init__(**event_arguments)
        self.hook = hook
        self.event_definition_key = event_definition_key
        self.contact_key_field = contact_key_field
        self.field_mapping = dict(field_mapping)
        self.instances: list[str] = []

    def key_field(self) -> str:
        return self.contact_key_field

    def describe(self) -> dict[str, Any]:
        return {
            "event_definition_key": self.event_definition_key,
            "contact_key_field": self.contact_key_field,
        }

    def describe_after(self) -> dict[str, Any]:
        return {"sfmc_calls": self.hook.calls if self.hook else 0, "entry_events": len(self.instances)}

    def send_events(self, events: list[AudienceEvent]) -> Mapping[str, str | None] | None:
        """One ``POST /interaction/v1/events`` per event; a 400 refuses that event alone."""
        assert self.hook is not None
        refused: dict[str, str | None] = {}
        for event in events:
            try:
                self.instances.append(
                    self.hook.fire_entry_event(event.ident, self.event_definition_key, event.fields)
                )
            except PermanentServiceError as exc:
                if exc.status != 400 or "not found" in str(exc):
                    raise
                refused[event.id] = f"Marketing Cloud refused the entry event: {exc}"
        return refused
