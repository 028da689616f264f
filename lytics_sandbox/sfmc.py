"""Loopback stand-in for Salesforce Marketing Cloud: OAuth 2.0 tokens, data extension rows, journey events.

Contract followed (Salesforce's published Marketing Cloud API reference; no vendor code or spec is
copied):

* auth, https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/access-token-s2s.html :
  ``POST /v2/token`` on the Authentication Base URI with a JSON body (``grant_type``
  ``client_credentials``, ``client_id``, ``client_secret``, optional ``account_id``); the answer
  holds ``access_token``, ``expires_in`` (1079 s by default), ``rest_instance_url`` and
  ``soap_instance_url``. Refused credentials: 401 ``{"error": "invalid_client", ...}``. REST calls
  carry ``Authorization: Bearer``; a missing, wrong or expired token is 401
  ``{"message": "Not Authorized", "errorcode": 0, ...}``. ``GET /v2/userinfo`` answers for a token;
* data extension rows (synchronous), ``postDataExtensionRowsetByKey`` under
  https://developer.salesforce.com/docs/marketing/marketing-cloud/references/mc_rest_data_extensions/ :
  ``POST /hub/v1/dataevents/key:{key}/rowset``, a JSON array of ``{"keys": {...}, "values": {...}}``,
  an upsert on the primary key; the published best practice is at most 50 records per call, which
  the stand-in enforces (``rowset_limit``). A row whose column the data extension lacks, or whose
  ``EmailAddress`` column is not an email, refuses the whole call with 400
  ``{"message", "errorcode": 10006, "documentation", "additionalErrors": [...]}``; an unknown data
  extension key is 404;
* data extensions (SOAP ``Create`` of a ``DataExtension``), "Create a Data Extension" in
  https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/ (SOAP technical articles):
  ``POST /Service.asmx`` on the SOAP instance URL with a ``fueloauth`` header; the stand-in reads
  ``CustomerKey``, ``Name`` and the ``Fields`` (``Name``, ``FieldType``, ``IsPrimaryKey``) and
  answers a ``CreateResponse`` with ``OverallStatus`` ``OK`` (``Error`` when the key exists);
* subscribers and tracking events (SOAP ``Retrieve``), "Retrieve a Subscriber"
  (https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/retrieve_a_subscriber_via_the_web_service_api.html),
  the ``Subscriber`` object (.../guide/subscriber_appex.html), the tracking articles
  (.../guide/soap_tech_articles_tracking.html: ``SentEvent``, ``OpenEvent``, ``BounceEvent``
  details) and "Retrieve More than 2500 Records Using the ContinueRequest Property"
  (.../guide/continuerequest_2500records.html): a
  ``RetrieveRequestMsg`` names the ``ObjectType``, its ``Properties`` and a ``Filter``
  (``SimpleFilterPart`` with ``DateValue``s or ``Value``s, ``ComplexFilterPart`` with ``AND`` /
  ``OR``); the answer holds at most 2,500 ``Results`` (:attr:`SfmcSandbox.retrieve_limit`) and an
  ``OverallStatus`` of ``OK``, or ``MoreDataAvailable`` with the ``RequestID`` a following
  ``RetrieveRequest`` holding only ``ContinueRequest`` reads on from. A property the object does
  not have answers ``OverallStatus`` ``Error: The Request Property(s) ... do not match with the
  fields of ... retrieve``. Dates in a filter are normalized as "Incoming Date Normalization"
  (.../guide/incoming_date_normalization.html) says (``Z`` is UTC, an offset is honoured, no offset
  is server time); answered dates are server time, Central Standard Time without daylight saving
  (UTC-6), without an offset;
* subscribers on lists (SOAP ``Create`` / ``Update`` of ``Subscriber``), "Create a Subscriber"
  (https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/creating_a_subscriber.html),
  "Update a Subscriber" with ``SaveOption`` ``UpdateAdd``
  (.../guide/updating_an_existing_subscriber_using_the_create_method_with_updateadd.html),
  "Add Subscribers to a List" (.../guide/adding_subscribers_to_a_list.html), "Manage Subscribers
  On Lists" (.../guide/managing_subscribers_on_lists.html) and "Manage Subscriber Status for One
  or All Lists" (.../guide/managing_subscriber_status_for_one_or_all_lists.html): a
  ``Subscriber`` carries ``SubscriberKey``, ``EmailAddress``, ``Attributes`` (``Name``, ``Value``)
  and ``Lists`` (``SubscriberList``: ``ID`` of the list, ``Status`` ``Active`` / ``Unsubscribed``,
  ``Action`` ``Create`` / ``Update`` / ``Delete`` / ``Upsert``). ``Create`` of a subscriber that
  exists is refused unless ``UpdateAdd`` is set; ``Update`` of one that does not exist is refused.
  ``Delete`` takes the subscriber off the list; ``Update`` with ``Status`` ``Unsubscribed``
  unsubscribes them from that list alone. Where the articles are silent the stand-in reads an
  ``Upsert`` without ``Status`` as "a new member is ``Active``, an existing one keeps its status".
  Each object gets its own ``Results`` entry (``StatusCode`` ``OK`` / ``Error``, ``StatusMessage``,
  ``OrdinalID``, ``ErrorCode`` on an error) and ``OverallStatus`` is ``OK``, ``Has Errors`` or
  ``Error``. Lists are read with ``Retrieve`` of ``List`` (``ID``, ``ListName``) and a ``Value``
  filter;
* journey entry events, ``postEvent`` under
  https://developer.salesforce.com/docs/marketing/marketing-cloud/references/mc_rest_interaction/ :
  ``POST /interaction/v1/events`` with ``ContactKey``, ``EventDefinitionKey`` and ``Data``; 201
  ``{"eventInstanceId"}``; an unknown event definition is 400;
* rate limiting,
  https://developer.salesforce.com/docs/atlas.en-us.mc-apis.meta/mc-apis/rate-limiting-errors.htm :
  429 with ``Retry-After`` and ``{"message": "Rate limit exceeded", "errorcode": 50100, "retryAfter"}``
  (injected through :attr:`faults` with ``kind="429"``).

One server plays the authentication, REST and SOAP hosts (the token names its own URLs).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lytics_sandbox.faults import FaultRule
from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

ROWSET_LIMIT = 50
TOKEN_LIFETIME = 1079
DOC = "https://developer.salesforce.com/docs/atlas.en-us.mc-apis.meta/mc-apis/error-handling.htm"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
RETRIEVE_LIMIT = 2500
PARTNER_NS = "http://exacttarget.com/wsdl/partnerAPI"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
SERVER_TIME = timedelta(hours=-6)
MEMBER_ID = "5150"
SUBSCRIBER_PROPERTIES = frozenset(
    {"ID", "CreatedDate", "Client.ID", "EmailAddress", "SubscriberKey", "UnsubscribedDate", "Status",
     "EmailTypePreference"}
)  # fmt: skip
EVENT_PROPERTIES = frozenset(
    {"Client.ID", "SendID", "SubscriberKey", "EventDate", "EventType", "BatchID",
     "TriggeredSendDefinitionObjectID"}
)  # fmt: skip
LIST_PROPERTIES = frozenset({"ID", "ListName"})
TRACKING_PROPERTIES = {
    "SentEvent": EVENT_PROPERTIES | {"ListID"},
    "OpenEvent": EVENT_PROPERTIES,
    "ClickEvent": EVENT_PROPERTIES | {"URL", "URLID"},
    "BounceEvent": EVENT_PROPERTIES | {"BounceCategory", "BounceType", "SMTPCode", "SMTPReason"},
    "UnsubEvent": EVENT_PROPERTIES,
    "ForwardedEmailEvent": EVENT_PROPERTIES,
    "ForwardedEmailOptInEvent": EVENT_PROPERTIES,
    "SurveyEvent": EVENT_PROPERTIES,
}


def rest_error(message: str, status: int, code: int = 10000, extra: list[str] | None = None) -> Response:
    """Marketing Cloud's REST error body."""
    body: dict[str, Any] = {"message": message, "errorcode": code, "documentation": DOC}
    if extra:
        body["additionalErrors"] = [{"message": m, "errorcode": code} for m in extra]
    return json_response(body, status)


@dataclass
class DataExtension:
    """A data extension: its columns (name -> FieldType), primary key columns and rows by key."""

    key: str
    name: str
    columns: dict[str, str]
    primary_keys: list[str]
    rows: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)


@dataclass
class SfmcData:
    """What the stand-in holds; tests read and change it directly."""

    data_extensions: dict[str, DataExtension] = field(default_factory=dict)
    event_definitions: set[str] = field(default_factory=set)
    journey_events: list[dict[str, Any]] = field(default_factory=list)
    subscribers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Subscribers by SubscriberKey: their properties, dates as UTC datetimes."""
    tracking: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Tracking events by object type (``SentEvent``, ...): their properties, dates as UTC datetimes."""
    lists: dict[str, dict[str, str]] = field(default_factory=dict)
    """Lists by ID: ``ID``, ``ListName``."""
    list_members: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per list ID, the status (``Active``, ``Unsubscribed``) of each SubscriberKey on it."""

    def add_list(self, list_id: str, name: str) -> None:
        with self.lock:
            self.lists[str(list_id)] = {"ID": str(list_id), "ListName": name}
            self.list_members.setdefault(str(list_id), {})

    def __post_init__(self) -> None:
        self.lock = threading.RLock()

    def add_subscriber(
        self, key: str, email: str, created: datetime, status: str = "Active"
    ) -> dict[str, Any]:
        """A subscriber (``created`` in UTC)."""
        with self.lock:
            subscriber = self.subscribers.setdefault(
                key, {"ID": str(len(self.subscribers) + 1), "SubscriberKey": key, "Client.ID": MEMBER_ID}
            )
            subscriber.update(
                EmailAddress=email, CreatedDate=created, Status=status, EmailTypePreference="HTML"
            )
            return subscriber

    def unsubscribe(self, key: str, when: datetime) -> None:
        """The subscriber unsubscribes from every list at ``when`` (UTC)."""
        with self.lock:
            self.subscribers[key].update(Status="Unsubscribed", UnsubscribedDate=when)

    def add_event(self, object_type: str, key: str, when: datetime, send_id: int = 1, **extra: Any) -> None:
        """A tracking event of ``object_type`` for the subscriber ``key`` at ``when`` (UTC)."""
        kind = {"SentEvent": "Sent", "OpenEvent": "Open", "ClickEvent": "Click", "UnsubEvent": "Unsubscribe"}
        event = {
            "Client.ID": MEMBER_ID, "SendID": str(send_id), "SubscriberKey": key, "EventDate": when,
            "EventType": kind.get(object_type, object_type.removesuffix("Event")), "BatchID": "1", **extra,
        }  # fmt: skip
        with self.lock:
            self.tracking.setdefault(object_type, []).append(event)

    def add_data_extension(
        self, key: str, columns: dict[str, str], primary_keys: list[str], name: str | None = None
    ) -> DataExtension:
        with self.lock:
            de = DataExtension(key, name or key, dict(columns), list(primary_keys))
            self.data_extensions[key.lower()] = de
            return de

    def data_extension(self, key: str) -> DataExtension | None:
        return self.data_extensions.get(key.lower())


class SfmcSandbox(SandboxHTTPServer):
    """Marketing Cloud's auth, REST and SOAP endpoints on one loopback server."""

    def __init__(self, data: SfmcData | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data or SfmcData()
        self.client_id = "sandbox-client"
        self.client_secret = "sandbox-secret"
        self.token_lifetime = TOKEN_LIFETIME
        self.rowset_limit = ROWSET_LIMIT
        self.retrieve_limit = RETRIEVE_LIMIT
        self.continuations: dict[str, list[ET.Element]] = {}
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.add_route("POST", r"/v2/token", self._token, "token")
        self.add_route("GET", r"/v2/userinfo", self._userinfo, "userinfo")
        self.add_route("POST", r"/hub/v1/dataevents/key:(?P<key>[^/]+)/rowset", self._rowset, "rowset")
        self.add_route("POST", r"/Service\.asmx", self._soap, "soap")
        self.add_route("POST", r"/interaction/v1/events", self._event, "event")

    def reset(self) -> None:
        """A new, empty account with the default credentials."""
        self.data = SfmcData()
        self.client_id, self.client_secret = "sandbox-client", "sandbox-secret"
        self.token_lifetime = TOKEN_LIFETIME
        self.rowset_limit = ROWSET_LIMIT
        self.retrieve_limit = RETRIEVE_LIMIT
        self.continuations.clear()
        self.tokens.clear()
        self.tokens_issued = 0
        self.faults.clear()
        self.reset_counters()

    def connection(self, conn_type: str = "sfmc") -> dict[str, Any]:
        """An Airflow connection (JSON form): Host = Authentication Base URI."""
        return {
            "conn_type": conn_type,
            "host": self.base_url,
            "login": self.client_id,
            "password": self.client_secret,
        }

    # -- auth ----------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        if request.route == "token":
            return None
        if request.route == "soap":
            match = re.search(rb"<(?:\w+:)?fueloauth[^>]*>([^<]+)</(?:\w+:)?fueloauth>", request.body)
            token = match.group(1).decode() if match else ""
        else:
            header = request.header("Authorization") or ""
            token = header[7:] if header.startswith("Bearer ") else ""
        expires = self.tokens.get(token)
        if expires is None or expires <= time.time():
            return rest_error("Not Authorized", 401, 0)
        return None

    def _token(self, request: Request) -> Response:
        try:
            body = request.json() or {}
        except ValueError:
            body = {}
        if body.get("grant_type") != "client_credentials":
            return json_response(
                {"error": "unsupported_grant_type", "error_description": "Use client_credentials."}, 400
            )
        if body.get("client_id") != self.client_id or body.get("client_secret") != self.client_secret:
            return json_response(
                {
                    "error": "invalid_client",
                    "error_description": "Client authentication failed.",
                    "error_uri": DOC,
                },
                401,
            )
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.token_lifetime
        self.tokens_issued += 1
        return json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "scope": "data_extensions_read data_extensions_write journeys_execute",
                "soap_instance_url": f"{self.base_url}/",
                "rest_instance_url": f"{self.base_url}/",
            }
        )

    def _userinfo(self, request: Request) -> Response:
        return json_response(
            {"organization": {"member_id": 5150, "enterprise_id": 5150}, "user": {"sub": "api"}}
        )

    def error_response(self, status: int, message: str, request: Request) -> Response:
        return rest_error(message, status)

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        if rule.kind == "429":
            wait = int(rule.retry_after or 1)
            return json_response(
                {
                    "message": "Rate limit exceeded",
                    "errorcode": 50100,
                    "retryAfter": wait,
                    "documentation": DOC,
                },
                429,
                {"Retry-After": str(wait)},
            )
        return super().fault_response(rule, request)

    # -- data extension rows -------------------------------------------------------------------
    def _rowset(self, request: Request) -> Response:
        de = self.data.data_extension(request.params["key"])
        if de is None:
            return rest_error(f"Data extension with key {request.params['key']} was not found.", 404, 10002)
        rows = request.json()
        if not isinstance(rows, list) or not rows:
            return rest_error("The request body must be a non-empty array of rows.", 400, 10001)
        if len(rows) > self.rowset_limit:
            return rest_error(f"At most {self.rowset_limit} rows per rowset call.", 400, 10001)
        problems: list[str] = []
        staged: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        for index, row in enumerate(rows):
            keys = dict(row.get("keys") or {})
            values = {**dict(row.get("values") or {}), **keys}
            missing = [k for k in de.primary_keys if str(keys.get(k) or "") == ""]
            if missing:
                problems.append(f"Row {index}: primary key column(s) {missing} missing.")
                continue
            unknown = [c for c in values if c not in de.columns]
            if unknown:
                problems.append(f"Row {index}: the column(s) {unknown} do not exist in the data extension.")
                continue
            bad = [
                c
                for c, kind in de.columns.items()
                if kind == "EmailAddress"
                and values.get(c) not in (None, "")
                and not _EMAIL.match(str(values[c]))
            ]
            if bad:
                problems.append(f"Row {index} (key {keys}): {bad[0]} is not a valid email address.")
                continue
            staged.append((tuple(str(keys[k]) for k in de.primary_keys), values))
        if problems:
            return rest_error("Unable to save rows for data extension.", 400, 10006, problems)
        with self.data.lock:
            for key, values in staged:
                de.rows.setdefault(key, {}).update({k: v for k, v in values.items()})
        return json_response([{"keys": r.get("keys"), "values": r.get("values")} for r in rows])

    # -- SOAP: create a data extension, retrieve subscribers and tracking events ----------------
    def _soap(self, request: Request) -> Response:
        root = ET.fromstring(request.body)
        retrieve = next((e for e in root.iter() if _local(e) == "RetrieveRequest"), None)
        if retrieve is not None:
            return self._retrieve(retrieve)
        objects = [e for e in root.iter() if e.tag.endswith("}Objects") or e.tag == "Objects"]
        if not objects:
            return _soap_response("Error", "Only Create of DataExtension is served here.", "")
        if all(o.get(XSI_TYPE) == "Subscriber" for o in objects):
            request_tag = next(_local(e) for e in root.iter() if _local(e).endswith("Request"))
            update_add = any(
                _text(o, "SaveAction") == "UpdateAdd" for o in root.iter() if _local(o) == "SaveOption"
            )
            return self._save_subscribers(request_tag.removesuffix("Request"), objects, update_add)
        obj = objects[0]

        def text(element: ET.Element, name: str) -> str:
            found = next((e for e in element if e.tag.split("}")[-1] == name), None)
            return (found.text or "").strip() if found is not None else ""

        key, name = text(obj, "CustomerKey"), text(obj, "Name")
        columns: dict[str, str] = {}
        primary: list[str] = []
        for element in obj.iter():
            if element.tag.split("}")[-1] != "Field":
                continue
            column = text(element, "Name")
            columns[column] = text(element, "FieldType") or "Text"
            if text(element, "IsPrimaryKey").lower() == "true":
                primary.append(column)
        if not key or not columns:
            return _soap_response("Error", "CustomerKey and Fields are required.", key)
        if self.data.data_extension(key) is not None:
            return _soap_response("Error", f"A data extension with CustomerKey {key} already exists.", key)
        self.data.add_data_extension(key, columns, primary, name or key)
        return _soap_response("OK", "Created DataExtension", key)

    def _save_subscribers(self, method: str, objects: list[ET.Element], update_add: bool) -> Response:
        """``Create`` or ``Update`` of ``Subscriber`` objects, each with its own result."""
        results: list[tuple[str, str, str]] = []
        with self.data.lock:
            for obj in objects:
                try:
                    results.append(("OK", self._save_subscriber(method, obj, update_add), ""))
                except SubscriberError as exc:
                    results.append(("Error", exc.message, exc.code))
        return _save_response(method, results)

    def _save_subscriber(self, method: str, obj: ET.Element, update_add: bool) -> str:
        key = _text(obj, "SubscriberKey")
        email = _text(obj, "EmailAddress")
        if not key:
            raise SubscriberError("SubscriberKey is required.", "12000")
        existing = self.data.subscribers.get(key)
        if method == "Create" and existing is not None and not update_add:
            raise SubscriberError("The subscriber already exists.", "12014")
        if method == "Update" and existing is None:
            raise SubscriberError("The subscriber was not found.", "12001")
        if (existing is None or email) and not _EMAIL.match(email):
            raise SubscriberError("Invalid Email Address.", "12002")
        changes: list[tuple[str, str, str]] = []
        for entry in (e for e in obj if _local(e) == "Lists"):
            list_id, action, status = (
                _text(entry, "ID"),
                _text(entry, "Action") or "Create",
                _text(entry, "Status"),
            )
            members = self.data.list_members.get(list_id)
            if members is None:
                raise SubscriberError(f"List {list_id} was not found.", "12010")
            on_list = key in members
            if (action == "Create" and on_list) or (action in ("Update", "Delete") and not on_list):
                raise SubscriberError(
                    f"{action} of list {list_id}: the subscriber is {'' if on_list else 'not '}on it.",
                    "12011",
                )
            changes.append((list_id, action, status))
        subscriber = existing or self.data.add_subscriber(key, email, datetime.now(UTC))
        if email:
            subscriber["EmailAddress"] = email
        for attribute in (e for e in obj if _local(e) == "Attributes"):
            subscriber.setdefault("Attributes", {})[_text(attribute, "Name")] = _text(attribute, "Value")
        for list_id, action, status in changes:
            members = self.data.list_members[list_id]
            if action == "Delete":
                del members[key]
            else:
                members[key] = status or members.get(key) or "Active"
        return "Created Subscriber." if existing is None else "Updated Subscriber."

    def _retrieve(self, request: ET.Element) -> Response:
        following = _text(request, "ContinueRequest")
        if following:
            with self.data.lock:
                rest = self.continuations.pop(following, None)
            if rest is None:
                return _retrieve_response(
                    "Error: The ContinueRequest is unknown or has expired.", [], following
                )
            return self._page(rest)
        object_type = _text(request, "ObjectType")
        properties = [(e.text or "").strip() for e in request if _local(e) == "Properties"]
        if object_type == "Subscriber":
            known, rows = SUBSCRIBER_PROPERTIES, list(self.data.subscribers.values())
        elif object_type == "List":
            known, rows = LIST_PROPERTIES, list(self.data.lists.values())
        elif object_type in TRACKING_PROPERTIES:
            known, rows = TRACKING_PROPERTIES[object_type], list(self.data.tracking.get(object_type, []))
        else:
            return _retrieve_response(f"Error: Unable to retrieve objects of type {object_type}.", [], "")
        unknown = [p for p in properties if p not in known]
        if unknown or not properties:
            return _retrieve_response(
                f"Error: The Request Property(s) {','.join(unknown)} do not match with the fields of "
                f"{object_type} retrieve",
                [],
                "",
            )
        where = next((e for e in request if _local(e) == "Filter"), None)
        matched = [row for row in rows if where is None or _matches(where, row)]
        return self._page([_result(object_type, row, properties) for row in matched])

    def _page(self, results: list[ET.Element]) -> Response:
        request_id = str(uuid.uuid4())
        page, rest = results[: self.retrieve_limit], results[self.retrieve_limit :]
        if not rest:
            return _retrieve_response("OK", page, request_id)
        with self.data.lock:
            self.continuations[request_id] = rest
        return _retrieve_response("MoreDataAvailable", page, request_id)

    # -- journeys ------------------------------------------------------------------------------
    def _event(self, request: Request) -> Response:
        body = request.json() or {}
        contact = str(body.get("ContactKey") or "")
        definition = str(body.get("EventDefinitionKey") or "")
        if not contact:
            return rest_error("ContactKey is required.", 400, 30000)
        if definition not in self.data.event_definitions:
            return rest_error(f"Event definition {definition!r} was not found or is not active.", 400, 30000)
        instance = str(uuid.uuid4())
        with self.data.lock:
            self.data.journey_events.append(
                {
                    "eventInstanceId": instance,
                    "ContactKey": contact,
                    "EventDefinitionKey": definition,
                    "Data": body.get("Data") or {},
                }
            )
        return json_response({"eventInstanceId": instance}, 201)


class SubscriberError(Exception):
    """One subscriber object refused: its ``StatusMessage`` and ``ErrorCode``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def _save_response(method: str, results: list[tuple[str, str, str]]) -> Response:
    """A ``CreateResponse`` / ``UpdateResponse``: one ``Results`` per object, then ``OverallStatus``."""
    envelope = ET.Element("{http://schemas.xmlsoap.org/soap/envelope/}Envelope")
    body = ET.SubElement(envelope, "{http://schemas.xmlsoap.org/soap/envelope/}Body")
    message = ET.SubElement(body, f"{{{PARTNER_NS}}}{method}Response")
    for ordinal, (status, text, code) in enumerate(results):
        result = ET.SubElement(message, f"{{{PARTNER_NS}}}Results")
        ET.SubElement(result, f"{{{PARTNER_NS}}}StatusCode").text = status
        ET.SubElement(result, f"{{{PARTNER_NS}}}StatusMessage").text = text
        ET.SubElement(result, f"{{{PARTNER_NS}}}OrdinalID").text = str(ordinal)
        if code:
            ET.SubElement(result, f"{{{PARTNER_NS}}}ErrorCode").text = code
    failed = sum(1 for status, _, _ in results if status != "OK")
    overall = "OK" if not failed else "Error" if failed == len(results) else "Has Errors"
    ET.SubElement(message, f"{{{PARTNER_NS}}}RequestID").text = str(uuid.uuid4())
    ET.SubElement(message, f"{{{PARTNER_NS}}}OverallStatus").text = overall
    xml = ET.tostring(envelope, encoding="utf-8", xml_declaration=True, default_namespace=PARTNER_NS)
    return Response(200, xml, "text/xml; charset=utf-8")


def _soap_response(status: str, message: str, key: str) -> Response:
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        '<CreateResponse xmlns="http://exacttarget.com/wsdl/partnerAPI"><Results>'
        f"<StatusCode>{status}</StatusCode><StatusMessage>{message}</StatusMessage>"
        f'<Object xsi:type="DataExtension" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><CustomerKey>{key}</CustomerKey></Object>'
        f"</Results><OverallStatus>{status}</OverallStatus></CreateResponse></soap:Body></soap:Envelope>"
    )
    return Response(200, xml.encode(), "text/xml; charset=utf-8")


def _local(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _text(element: ET.Element, name: str) -> str:
    found = next((e for e in element if _local(e) == name), None)
    return (found.text or "").strip() if found is not None else ""


def _parse_date(text: str) -> datetime:
    """A filter's date as UTC: ``Z`` or an offset as given, no offset in server time."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC) - SERVER_TIME
    return moment.astimezone(UTC)


def _server_time(moment: datetime) -> str:
    return (moment.astimezone(UTC) + SERVER_TIME).replace(tzinfo=None).isoformat(timespec="milliseconds")


def _matches(part: ET.Element, row: dict[str, Any]) -> bool:
    """Whether ``row`` passes a ``SimpleFilterPart`` or ``ComplexFilterPart``."""
    if _text(part, "LogicalOperator"):
        left = next(e for e in part if _local(e) == "LeftOperand")
        right = next(e for e in part if _local(e) == "RightOperand")
        if _text(part, "LogicalOperator").upper() == "OR":
            return _matches(left, row) or _matches(right, row)
        return _matches(left, row) and _matches(right, row)
    value = row.get(_text(part, "Property"))
    operator = _text(part, "SimpleOperator")
    dates = [_parse_date(e.text or "") for e in part if _local(e) == "DateValue"]
    if dates:
        if not isinstance(value, datetime):
            return False
        compare = {
            "equals": lambda: value == dates[0],
            "greaterThan": lambda: value > dates[0],
            "greaterThanOrEqual": lambda: value >= dates[0],
            "lessThan": lambda: value < dates[0],
            "lessThanOrEqual": lambda: value <= dates[0],
            "between": lambda: dates[0] <= value <= dates[-1],
        }
        return bool(compare[operator]())
    values = [(e.text or "").strip() for e in part if _local(e) == "Value"]
    if operator in ("equals", "IN"):
        return str(value) in values
    return operator == "notEquals" and str(value) not in values


def _result(object_type: str, row: dict[str, Any], properties: list[str]) -> ET.Element:
    """A ``Results`` element holding the asked ``properties`` of ``row`` (nested when dotted)."""
    result = ET.Element(f"{{{PARTNER_NS}}}Results")
    result.set("{http://www.w3.org/2001/XMLSchema-instance}type", object_type)
    for name in properties:
        value = row.get(name)
        if value is None:
            continue
        parent = result
        *path, leaf = name.split(".")
        for step in path:
            found = next((e for e in parent if _local(e) == step), None)
            parent = found if found is not None else ET.SubElement(parent, f"{{{PARTNER_NS}}}{step}")
        ET.SubElement(parent, f"{{{PARTNER_NS}}}{leaf}").text = (
            _server_time(value) if isinstance(value, datetime) else str(value)
        )
    return result


def _retrieve_response(status: str, results: list[ET.Element], request_id: str) -> Response:
    envelope = ET.Element("{http://schemas.xmlsoap.org/soap/envelope/}Envelope")
    body = ET.SubElement(envelope, "{http://schemas.xmlsoap.org/soap/envelope/}Body")
    message = ET.SubElement(body, f"{{{PARTNER_NS}}}RetrieveResponseMsg")
    ET.SubElement(message, f"{{{PARTNER_NS}}}OverallStatus").text = status
    ET.SubElement(message, f"{{{PARTNER_NS}}}RequestID").text = request_id
    message.extend(results)
    xml = ET.tostring(envelope, encoding="utf-8", xml_declaration=True, default_namespace=PARTNER_NS)
    return Response(200, xml, "text/xml; charset=utf-8")
