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
* journeys: ``POST /interaction/v1/events`` (``ContactKey``, ``EventDefinitionKey``, ``Data``), one
  entry event per call.

Errors: ``{"message", "errorcode", "documentation"}``; 429 (``errorcode`` 50100) carries
``Retry-After``, honoured by the REST hook base.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from lytics_provider.hooks.field_mapping import mapped_values
from lytics_provider.hooks.rest import JSON_HEADERS, RestHook
from lytics_provider.hooks.rest_auth import Credentials, HostOAuth2ClientCredentials, OAuth2Token
from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.pipeline.http import HttpClient, PermanentServiceError
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
        "Journeys execute)."
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
        client = self.get_conn()
        assert self.token is not None
        soap = str(self.token.answer.get("soap_instance_url") or "").rstrip("/")
        fields = "".join(
            "<Field>"
            f"<CustomerKey>{escape(c)}</CustomerKey><Name>{escape(c)}</Name><FieldType>{t}</FieldType>"
            + ("<MaxLength>254</MaxLength>" if t in ("Text", "EmailAddress") else "")
            + f"<IsPrimaryKey>{str(pk).lower()}</IsPrimaryKey><IsRequired>{str(pk).lower()}</IsRequired>"
            "</Field>"
            for c, t, pk in columns
        )
        sendable = (
            f"<IsSendable>true</IsSendable><SendableDataExtensionField><Name>{escape(sendable_column)}</Name>"
            "</SendableDataExtensionField><SendableSubscriberField><Name>Subscriber Key</Name>"
            "</SendableSubscriberField>"
            if sendable_column
            else ""
        )
        envelope = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<s:Header><fueloauth>{self.token.token()}</fueloauth></s:Header>"
            f'<s:Body><CreateRequest xmlns="{SOAP_NS}"><Objects xsi:type="DataExtension">'
            f"<CustomerKey>{escape(key)}</CustomerKey><Name>{escape(name)}</Name>{sendable}"
            f"<Fields>{fields}</Fields></Objects></CreateRequest></s:Body></s:Envelope>"
        )
        response = client.request(
            "POST",
            f"{soap}/Service.asmx",
            data=envelope.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "Create"},
        )
        root = ET.fromstring(response.content)
        found = {e.tag.split("}")[-1]: (e.text or "") for e in root.iter()}
        return found.get("OverallStatus") == "OK", found.get("StatusMessage", "")

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
