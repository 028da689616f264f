"""Loopback emulator of the iContact API 2.x with synthetic contacts, messages and activity.

It follows the public contract (``/icp/a/{accountId}/c/{clientFolderId}/...``, the four
``API-*`` headers matched case-insensitively, ``limit``/``offset``/``total`` paging with a default
limit of 20, ``{"errors": [...]}`` error bodies, array request bodies). Choices where the public
contract is silent (documented, not claims about the real service):

* No maximum ``limit`` (none is published); ``max_limit`` caps it server-side to test clients
  against a server that silently answers fewer items than asked. A non-integer ``limit``/``offset``
  is 400.
* Ids are JSON strings on contacts, lists, messages and subscriptions and integers in the
  activity collections (as iContact's own activity examples show).
* ``GET contacts``: ``status=total`` returns every contact, no status returns only contacts
  subscribed to some list, ``status=unlisted`` only the others; ``email`` filters exactly
  (``*`` is a wildcard).
* ``POST contacts``: an item whose ``email`` (or ``contactId``) exists updates that contact and
  blanks the fields it does not send; an item without a valid email is skipped with a warning.
* ``POST subscriptions``: unknown contacts or lists and bad statuses are skipped with a warning
  (``"warnings": [...]``); an existing subscription takes the status sent.
* Unknown account or client folder: 404. Wrong credentials: 401. Unsupported ``API-Version``: 501.
* Fault injection comes from the shared server (:mod:`lytics_sandbox.faults`): use
  ``5xx`` with ``status=503`` for iContact's "high traffic" answer and ``drop`` for cut connections.
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

API_VERSIONS = frozenset({"2.0", "2.1", "2.2", "2.3"})
DEFAULT_LIMIT = 20
COLLECTIONS = {
    "bounces": "bounceTime",
    "opens": "openTime",
    "clicks": "clickTime",
    "unsubscribes": "unsubscribeTime",
}
CONTACT_FIELDS = (
    "email", "prefix", "firstName", "lastName", "suffix", "street", "street2", "city", "state",
    "postalCode", "phone", "fax", "business", "status", "bounceCount",
)  # fmt: skip
SUB_STATUSES = frozenset({"normal", "pending", "unsubscribed"})
EASTERN = timezone(timedelta(hours=-4))
AID_TAG = "<!-- lytics-aid:{aid} -->"
LINKS = (
    "https://shop.example.com/sale?utm_source=icontact&utm_medium=email",
    "https://shop.example.com/sale?utm_source=icontact&utm_campaign=b",
    "http://www.example.org/blog/post-1#top",
    "https://www.example.org/pricing",
)


def ic_time(moment: datetime) -> str:
    """iContact's activity timestamp form: ``2026-05-01T10:00:00-04:00``."""
    return moment.astimezone(EASTERN).isoformat(timespec="seconds")


@dataclass
class IContactData:
    """Everything the emulator serves; tests read and change it directly."""

    account_id: str = "1000001"
    client_folder_ids: tuple[str, ...] = ("2000001", "2000002")
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    activity: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._by_email = {
            c["email"].strip().lower(): cid for cid, c in self.contacts.items() if c.get("email")
        }
        self._ids = itertools.count(5_000_001)

    # -- building ----------------------------------------------------------------------------
    def add_contact(self, **fields: Any) -> dict[str, Any]:
        """Store a contact (``contactId`` assigned when missing) and return it."""
        with self.lock:
            cid = str(fields.pop("contactId", None) or next(self._ids))
            contact = {"contactId": cid, **{name: "" for name in CONTACT_FIELDS}}
            contact.update({k: ("" if v is None else v) for k, v in fields.items()})
            contact.setdefault("createDate", "2025-01-02 03:04:05")
            contact["status"] = contact["status"] or "normal"
            contact["bounceCount"] = str(contact["bounceCount"] or "0")
            self.contacts[cid] = contact
            if contact["email"]:
                self._by_email[contact["email"].strip().lower()] = cid
            return contact

    def add_list(self, name: str, list_id: str | None = None) -> dict[str, Any]:
        """Create a list and return it."""
        with self.lock:
            lid = str(list_id or next(self._ids))
            item = {
                "listId": lid,
                "name": name,
                "publicname": name,
                "description": "",
                "emailOwnerOnChange": 0,
            }
            self.lists[lid] = item
            return item

    def add_message(self, subject: str, html_body: str, message_id: str | None = None) -> dict[str, Any]:
        """Create a sent message and return it."""
        with self.lock:
            mid = str(message_id or next(self._ids))
            self.messages[mid] = {
                "messageId": mid,
                "campaignId": "9000001",
                "messageType": "normal",
                "subject": subject,
                "messageName": subject,
                "htmlBody": html_body,
                "textBody": subject,
            }
            for collection in COLLECTIONS:
                self.activity.setdefault((mid, collection), [])
            return self.messages[mid]

    def add_activity(
        self, message_id: str, collection: str, contact_id: str, when: datetime, link: str | None = None
    ) -> dict[str, Any]:
        """Record one bounce/open/click/unsubscribe of a message."""
        row: dict[str, Any] = {"contactId": int(contact_id), COLLECTIONS[collection]: ic_time(when)}
        if collection == "clicks":
            row["clickLink"] = link or LINKS[0]
        with self.lock:
            self.activity.setdefault((str(message_id), collection), []).append(row)
        return row

    def subscribe(self, list_id: str, contact_id: str, status: str = "normal") -> dict[str, Any]:
        """Set a subscription (as the API's POST does)."""
        with self.lock:
            sid = f"{list_id}_{contact_id}"
            sub = self.subscriptions.get(sid)
            if sub is None:
                sub = {
                    "subscriptionId": sid,
                    "contactId": str(contact_id),
                    "listId": str(list_id),
                    "status": status,
                    "addDate": "2026-01-01",
                    "confirmationMessageId": "",
                }
                self.subscriptions[sid] = sub
            sub["status"] = status
            return dict(sub)

    def contact_by_email(self, email: str) -> dict[str, Any] | None:
        cid = self._by_email.get(email.strip().lower())
        return self.contacts.get(cid) if cid else None

    def subscribers(self, list_id: str, status: str = "normal") -> set[str]:
        """Contact ids with a subscription of ``status`` to ``list_id``."""
        with self.lock:
            return {
                s["contactId"]
                for s in self.subscriptions.values()
                if s["listId"] == str(list_id) and s["status"] == status
            }

    # -- synthetic account ----------------------------------------------------------------------
    @classmethod
    def synthetic(cls, contacts: int = 60, messages: int = 4, aid: int = 4242, seed: int = 3) -> IContactData:
        """A reproducible folder: contacts, one list, ``messages`` tagged messages plus two that are
        not (one untagged, one tagged for another AID), and activity on every message."""
        rng = random.Random(seed)
        data = cls()
        firsts = ("Ada", "Ben", "Cleo", "Dev", "Eva", "Farid", "Gus", "Hana")
        lasts = ("Nguyen", "Okoro", "Perez", "Quinn", "Rahm", "Sato")
        states = ("NC", "NY", "CA", "TX", "ON")
        ids = []
        for i in range(contacts):
            first, last = firsts[i % len(firsts)], lasts[i % len(lasts)]
            email = f"{first}.{last}{i}@Mail{i % 3}.Example.com" if i % 17 != 5 else f"broken-{i}"
            contact = data.add_contact(
                email=f"  {email} " if i % 7 == 0 else email,
                prefix="Dr." if i % 5 == 0 else "",
                firstName=first,
                lastName=last,
                suffix="Jr." if i % 11 == 0 else "",
                street=f"{100 + i} Main St",
                street2=f"Suite {i}" if i % 2 else "",
                city="Raleigh" if i % 2 else "Toronto",
                state=states[i % len(states)],
                postalCode=f"{27600 + i}",
                phone=f"919-555-{i:04d}",
                fax=f"919-555-{9000 + i}" if i % 4 == 0 else "",
                business=f"Biz {i}" if i % 3 == 0 else "",
                status="normal" if i % 13 else "bounced",
                bounceCount=str(i % 3),
                createDate=f"2025-{1 + i % 12:02d}-{1 + i % 27:02d} {i % 24:02d}:15:00",
            )
            ids.append(contact["contactId"])
        newsletter = data.add_list("Newsletter")
        for cid in ids[: contacts // 2]:
            data.subscribe(newsletter["listId"], cid)
        start = datetime(2026, 5, 1, 14, 0, tzinfo=UTC)
        tags = [AID_TAG.format(aid=aid)] * messages + ["", AID_TAG.format(aid=aid + 1)]
        for m, tag in enumerate(tags):
            msg = data.add_message(
                f"Campaign {m + 1}", f"<html><body>{tag}<p>Hello {m + 1}</p></body></html>"
            )
            sent = start + timedelta(days=7 * m)
            for cid in rng.sample(ids, k=max(1, contacts // 10)):
                data.add_activity(
                    msg["messageId"], "bounces", cid, sent + timedelta(minutes=rng.randint(1, 30))
                )
            for cid in rng.sample(ids, k=max(1, contacts // 2)):
                for _ in range(rng.randint(1, 2)):
                    data.add_activity(
                        msg["messageId"], "opens", cid, sent + timedelta(minutes=rng.randint(5, 3000))
                    )
            for cid in rng.sample(ids, k=max(1, contacts // 4)):
                when = sent + timedelta(minutes=rng.randint(10, 3000))
                data.add_activity(msg["messageId"], "clicks", cid, when, rng.choice(LINKS))
            for cid in rng.sample(ids, k=max(1, contacts // 20)):
                when = sent + timedelta(minutes=rng.randint(60, 4000))
                data.add_activity(msg["messageId"], "unsubscribes", cid, when)
        for key in data.activity:
            data.activity[key].sort(key=lambda row: row[COLLECTIONS[key[1]]])
        return data

    def tagged_messages(self, aid: int) -> list[str]:
        """Ids of the messages whose HTML body carries the tag of ``aid``."""
        tag = AID_TAG.format(aid=aid)
        return [mid for mid, msg in self.messages.items() if tag in msg["htmlBody"]]


class IContactSandbox(SandboxHTTPServer):
    """The iContact API 2.x emulator; the API root is :attr:`api_url` (``<base>/icp``)."""

    def __init__(
        self,
        data: IContactData | None = None,
        app_id: str = "sandbox-app-id",
        username: str = "owner@example.com",
        password: str = "sandbox-api-password",
        host: str = "127.0.0.1",
        port: int = 0,
        max_limit: int | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.data = data or IContactData.synthetic()
        self.max_limit = max_limit
        self.credentials = (app_id, username, password)
        folder = r"/icp/a/(?P<account>[^/]+)/c/(?P<folder>[^/]+)"
        for method, pattern, handler, name in (
            ("GET", r"/icp/time", self._time, "time"),
            ("GET", r"/icp/a/?", self._accounts, "accounts"),
            ("GET", r"/icp/a/(?P<account>[^/]+)/?", self._account, "account"),
            ("GET", r"/icp/a/(?P<account>[^/]+)/c/?", self._folders, "clientfolders"),
            ("GET", rf"{folder}/?", self._folder, "clientfolder"),
            ("GET", rf"{folder}/contacts/?", self._contacts, "contacts_list"),
            ("POST", rf"{folder}/contacts/?", self._contacts_post, "contacts_post"),
            ("GET", rf"{folder}/contacts/(?P<id>[^/]+)", self._contact, "contact_get"),
            ("GET", rf"{folder}/lists/?", self._lists, "lists_list"),
            ("POST", rf"{folder}/lists/?", self._lists_post, "lists_post"),
            ("GET", rf"{folder}/subscriptions/?", self._subscriptions, "subscriptions_list"),
            ("POST", rf"{folder}/subscriptions/?", self._subscriptions_post, "subscriptions_post"),
            ("GET", rf"{folder}/messages/?", self._messages, "messages_list"),
            ("GET", rf"{folder}/messages/(?P<id>[^/]+)", self._message, "message_get"),
            (
                "GET",
                rf"{folder}/messages/(?P<id>[^/]+)/(?P<kind>bounces|opens|clicks|unsubscribes)",
                self._activity,
                "message_activity",
            ),
        ):
            self.add_route(method, pattern, handler, name)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/icp"

    def connection(self, **extra: Any) -> dict[str, Any]:
        """The fields of an ``icontact`` Airflow connection for this sandbox."""
        app_id, username, password = self.credentials
        return {
            "conn_type": "icontact",
            "host": self.api_url,
            "login": username,
            "password": password,
            "extra": {"app_id": app_id, **extra},
        }

    # -- envelope, auth ----------------------------------------------------------------------
    def error_response(self, status: int, message: str, request: Request) -> Response:
        return json_response({"errors": [message]}, status)

    def authenticate(self, request: Request) -> Response | None:
        if request.route == "time":
            return None
        app_id, username, password = self.credentials
        if (
            request.header("API-AppId") != app_id
            or request.header("API-Username") != username
            or request.header("API-Password") != password
        ):
            return self.error_response(401, "Api username invalid", request)
        version = request.header("API-Version") or ""
        if version not in API_VERSIONS:
            return self.error_response(501, f"Unsupported API version: {version!r}", request)
        account = request.params.get("account")
        if account is not None and account != self.data.account_id:
            return self.error_response(404, f"Account {account} not found", request)
        folder = request.params.get("folder")
        if folder is not None and folder not in self.data.client_folder_ids:
            return self.error_response(404, f"Client folder {folder} not found", request)
        return None

    def _page(self, request: Request, key: str, items: list[dict[str, Any]]) -> Response:
        try:
            limit = int(request.query.get("limit") or DEFAULT_LIMIT)
            offset = int(request.query.get("offset") or 0)
        except ValueError:
            return self.error_response(400, "limit and offset must be integers", request)
        if limit < 1 or offset < 0:
            return self.error_response(400, "limit must be >= 1 and offset >= 0", request)
        if self.max_limit:
            limit = min(limit, self.max_limit)
        page = items[offset : offset + limit]
        return json_response({key: page, "limit": limit, "offset": offset, "total": len(items)})

    @staticmethod
    def _items(request: Request, wrapper: str) -> list[Any] | None:
        try:
            body = request.json()
        except ValueError:
            return None
        if isinstance(body, dict):
            body = body.get(wrapper) or body.get(wrapper + "s")
            body = [body] if isinstance(body, dict) else body
        return body if isinstance(body, list) else None

    # -- handlers ----------------------------------------------------------------------------
    def _time(self, request: Request) -> Response:
        now = datetime.now(EASTERN)
        return json_response({"time": now.isoformat(timespec="seconds"), "timestamp": int(now.timestamp())})

    def _accounts(self, request: Request) -> Response:
        return json_response({"accounts": [self._account_doc()], "total": 1})

    def _account_doc(self) -> dict[str, Any]:
        return {"accountId": self.data.account_id, "enabled": 1, "accountType": "1", "companyName": "Sandbox"}

    def _account(self, request: Request) -> Response:
        return json_response({"account": self._account_doc()})

    def _folders(self, request: Request) -> Response:
        docs = [
            {"clientFolderId": f, "logoId": "", "emailRecipient": ""} for f in self.data.client_folder_ids
        ]
        return json_response({"clientfolders": docs, "total": len(docs)})

    def _folder(self, request: Request) -> Response:
        return json_response({"clientfolder": {"clientFolderId": request.params["folder"], "logoId": ""}})

    def _contacts(self, request: Request) -> Response:
        status = request.query.get("status")
        pattern = request.query.get("email")
        with self.data.lock:
            listed = {s["contactId"] for s in self.data.subscriptions.values()}
            items = []
            for cid, contact in self.data.contacts.items():
                if status != "total" and (cid in listed) != (status != "unlisted"):
                    continue
                if pattern is not None and not fnmatch.fnmatchcase(contact["email"].lower(), pattern.lower()):
                    continue
                items.append(dict(contact))
        return self._page(request, "contacts", items)

    def _contact(self, request: Request) -> Response:
        contact = self.data.contacts.get(request.params["id"])
        if contact is None:
            return self.error_response(404, f"Contact {request.params['id']} not found", request)
        return json_response({"contact": dict(contact)})

    def _contacts_post(self, request: Request) -> Response:
        items = self._items(request, "contact")
        if items is None:
            return self.error_response(400, "Body must be an array of contacts", request)
        out, warnings = [], []
        with self.data.lock:
            for item in items:
                email = str(item.get("email") or "").strip() if isinstance(item, dict) else ""
                if "@" not in email:
                    warnings.append(f"Invalid email address: {email[:60]!r}")
                    continue
                cid = str(item.get("contactId") or "") or None
                if cid not in self.data.contacts:
                    existing = self.data.contact_by_email(email)
                    cid = existing["contactId"] if existing else None
                fields = {name: item.get(name, "") for name in CONTACT_FIELDS}
                fields["email"] = email
                if cid is not None:
                    old = self.data.contacts[cid]
                    if old["email"].lower() != email.lower():
                        self.data._by_email.pop(old["email"].lower(), None)
                    fields["createDate"] = old["createDate"]
                    out.append(dict(self.data.add_contact(contactId=cid, **fields)))
                else:
                    fields["createDate"] = datetime.now(EASTERN).strftime("%Y-%m-%d %H:%M:%S")
                    out.append(dict(self.data.add_contact(**fields)))
        body: dict[str, Any] = {"contacts": out}
        if warnings:
            body["warnings"] = warnings
        return json_response(body)

    def _lists(self, request: Request) -> Response:
        with self.data.lock:
            items = [dict(item) for item in self.data.lists.values()]
        return self._page(request, "lists", items)

    def _lists_post(self, request: Request) -> Response:
        items = self._items(request, "list")
        if items is None or not all(isinstance(i, dict) and i.get("name") for i in items):
            return self.error_response(400, "Every list needs a name", request)
        return json_response({"lists": [self.data.add_list(str(i["name"])) for i in items]})

    def _subscriptions(self, request: Request) -> Response:
        wanted = {k: request.query[k] for k in ("listId", "contactId", "status") if request.query.get(k)}
        with self.data.lock:
            items = [
                dict(s)
                for s in self.data.subscriptions.values()
                if all(str(s[k]) == v for k, v in wanted.items())
            ]
        return self._page(request, "subscriptions", items)

    def _subscriptions_post(self, request: Request) -> Response:
        items = self._items(request, "subscription")
        if items is None:
            return self.error_response(400, "Body must be an array of subscriptions", request)
        out, warnings = [], []
        with self.data.lock:
            for item in items:
                item = item if isinstance(item, dict) else {}
                cid, lid = str(item.get("contactId") or ""), str(item.get("listId") or "")
                status = str(item.get("status") or "normal")
                if cid not in self.data.contacts:
                    warnings.append(f"Contact {cid} does not exist")
                elif lid not in self.data.lists:
                    warnings.append(f"List {lid} does not exist")
                elif status not in SUB_STATUSES:
                    warnings.append(f"Invalid status {status!r} for contact {cid}")
                else:
                    out.append(self.data.subscribe(lid, cid, status))
        body: dict[str, Any] = {"subscriptions": out}
        if warnings:
            body["warnings"] = warnings
        return json_response(body)

    def _messages(self, request: Request) -> Response:
        kind = request.query.get("messageType")
        with self.data.lock:
            items = [dict(m) for m in self.data.messages.values() if kind in (None, m["messageType"])]
        return self._page(request, "messages", items)

    def _message(self, request: Request) -> Response:
        msg = self.data.messages.get(request.params["id"])
        if msg is None:
            return self.error_response(404, f"Message {request.params['id']} not found", request)
        return json_response({"message": dict(msg)})

    def _activity(self, request: Request) -> Response:
        mid, kind = request.params["id"], request.params["kind"]
        if mid not in self.data.messages:
            return self.error_response(404, f"Message {mid} not found", request)
        with self.data.lock:
            items = [dict(row) for row in self.data.activity.get((mid, kind), [])]
        return self._page(request, kind, items)


def seed_contacts(data: IContactData, emails: Iterable[tuple[str, str, str]]) -> list[str]:
    """Add contacts from ``(email, first, last)`` tuples; return their ids."""
    return [data.add_contact(email=e, firstName=f, lastName=last)["contactId"] for e, f, last in emails]
