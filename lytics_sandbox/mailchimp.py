"""A loopback stand-in for the Mailchimp Marketing API 3.0 (audiences, members, tags, batches, reports).

Contract followed: the Mailchimp Marketing API reference, https://mailchimp.com/developer/marketing/api/
(OpenAPI copy: ``api-evangelist/mailchimp``, ``openapi/_original/mailchimp-marketing-api-openapi.yml``),
the batch guide https://mailchimp.com/developer/marketing/guides/run-async-requests-batch-endpoint/
and the error guide https://mailchimp.com/developer/marketing/docs/errors/:

* Base path ``/3.0`` on ``https://<dc>.api.mailchimp.com`` (the data center is the API key's
  suffix after ``-``). Authentication: HTTP Basic, any user name, the API key as the password.
  A wrong key: ``401`` "API Key Invalid".
* Errors are ``application/problem+json``: ``{"type", "title", "status", "detail", "instance"}``.
* At most **10 simultaneous connections** per API key; the 11th request in flight gets ``429``
  "Too Many Requests" (Mailchimp sends no ``Retry-After`` and no rate-limit headers). The peak
  number of requests in flight is kept in :attr:`MailchimpSandbox.peak_in_flight`.
* ``GET /3.0/ping``; ``GET /3.0/lists`` and ``GET /3.0/lists/{list_id}`` (404 for an unknown list).
* ``PUT /3.0/lists/{list_id}/members/{subscriber_hash}`` adds or updates a member: the hash is the
  MD5 of the lower-cased email; ``status_if_new`` applies only to a new member, ``status`` changes
  an existing one (a ``cleaned`` member cannot be changed that way). An email that is not an
  address: ``400`` "Invalid Resource".
* ``POST /3.0/lists/{list_id}/members/{subscriber_hash}/tags`` with ``{"tags": [{"name",
  "status": "active"|"inactive"}]}``: ``204``; a tag that does not exist is created; an unknown
  member: ``404``.
* ``GET /3.0/lists/{list_id}/members``: ``offset`` / ``count`` (at most 1000) paging,
  ``since_last_changed``, ``sort_field=last_changed`` with ``sort_dir``; ``total_items``.
* ``POST /3.0/batches`` ``{"operations": [{method, path, params, body, operation_id}]}`` answers
  the batch (``pending``); ``GET /3.0/batches/{batch_id}`` reports ``started`` for
  :attr:`polls_before_finished` polls, then ``finished`` with ``finished_operations``,
  ``errored_operations`` and ``response_body_url``: a ``.tar.gz`` of JSON files, each a list of
  ``{"status_code", "operation_id", "response"}`` (``response`` is the operation's JSON body as a
  string). The archive URL is served without the API key, like the signed URL Mailchimp gives.
* ``GET /3.0/campaigns?list_id=``, ``GET /3.0/reports/{campaign_id}/email-activity`` (``offset`` /
  ``count``, ``since``): ``emails`` with each recipient's ``activity`` (``open``, ``click``,
  ``bounce``) and ``total_items``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from lytics_sandbox.httpserver import Request, Response, Route, SandboxHTTPServer, json_response

MAX_CONNECTIONS = 10
MAX_PAGE = 1000
ERROR_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 hex digest of the lower-cased email."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def problem(status: int, title: str, detail: str) -> Response:
    """A Mailchimp error body (``application/problem+json``)."""
    body = {
        "type": ERROR_DOC,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    resp = json_response(body, status)
    resp.content_type = "application/problem+json"
    return resp


@dataclass
class Member:
    email_address: str
    status: str
    merge_fields: dict[str, Any] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    last_changed: str = ""

    def as_json(self, list_id: str) -> dict[str, Any]:
        return {
            "id": subscriber_hash(self.email_address),
            "email_address": self.email_address,
            "unique_email_id": subscriber_hash(self.email_address)[:10],
            "status": self.status,
            "merge_fields": dict(self.merge_fields),
            "tags": [{"id": abs(hash(t)) % 100000, "name": t} for t in sorted(self.tags)],
            "tags_count": len(self.tags),
            "last_changed": self.last_changed,
            "list_id": list_id,
        }


@dataclass
class Audience:
    id: str
    name: str
    members: dict[str, Member] = field(default_factory=dict)


@dataclass
class Batch:
    id: str
    total: int
    results: list[dict[str, Any]]
    polls_left: int
    submitted_at: str

    @property
    def errored(self) -> int:
        return sum(1 for r in self.results if r["status_code"] >= 400)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


class MailchimpSandbox(SandboxHTTPServer):
    """Serves the Marketing API subset above for one account (one API key).

    :param api_key: the account's API key (``<key>-<dc>``).
    :param polls_before_finished: status polls answered ``started`` before a batch is ``finished``.
    :param latency: seconds every API request takes (to show the connection limit at work).
    """

    def __init__(
        self,
        api_key: str = "sandboxkey0123456789-us21",
        polls_before_finished: int = 0,
        latency: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.polls_before_finished = polls_before_finished
        self.latency = latency
        self.audiences: dict[str, Audience] = {}
        self.batches: dict[str, Batch] = {}
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.activity: dict[str, list[dict[str, Any]]] = {}
        self.operations: list[tuple[str, int]] = []
        """``(route, status)`` of every batch operation run, in order."""
        self.in_flight = 0
        self.peak_in_flight = 0
        self.throttled = 0
        self._data_lock = threading.RLock()
        routes = [
            ("GET", r"/3\.0/ping", self._ping, "ping"),
            ("GET", r"/3\.0/lists", self._lists, "lists"),
            ("GET", r"/3\.0/lists/(?P<list_id>[^/]+)", self._list, "list"),
            ("GET", r"/3\.0/lists/(?P<list_id>[^/]+)/members", self._members, "members"),
            (
                "PUT",
                r"/3\.0/lists/(?P<list_id>[^/]+)/members/(?P<hash>[0-9a-f]+)",
                self._put_member,
                "member_put",
            ),
            (
                "POST",
                r"/3\.0/lists/(?P<list_id>[^/]+)/members/(?P<hash>[0-9a-f]+)/tags",
                self._tags,
                "member_tags",
            ),
            ("POST", r"/3\.0/batches", self._start_batch, "batch_post"),
            ("GET", r"/3\.0/batches/(?P<batch_id>[^/]+)", self._batch_status, "batch_get"),
            ("GET", r"/batch-results/(?P<batch_id>[^/]+)\.tar\.gz", self._batch_results, "batch_results"),
            ("GET", r"/3\.0/campaigns", self._campaigns, "campaigns"),
            ("GET", r"/3\.0/reports/(?P<campaign_id>[^/]+)/email-activity", self._email_activity, "activity"),
        ]
        for method, pattern, handler, name in routes:
            self.add_route(method, pattern, handler, name)

    # -- set-up helpers for tests ----------------------------------------------------------------
    @property
    def url(self) -> str:
        """The API root (what a connection's Host holds)."""
        return f"{self.base_url}/3.0"

    def connection(self, api_key: str | None = None) -> dict[str, Any]:
        """An Airflow connection (JSON form) for this account."""
        return {"conn_type": "mailchimp", "host": self.url, "password": api_key or self.api_key}

    def add_audience(self, name: str) -> Audience:
        with self._data_lock:
            audience = Audience(uuid.uuid4().hex[:10], name)
            self.audiences[audience.id] = audience
            return audience

    def add_member(self, list_id: str, email: str, status: str = "subscribed", **merge: Any) -> Member:
        with self._data_lock:
            member = Member(email, status, dict(merge), last_changed=_now())
            self.audiences[list_id].members[subscriber_hash(email)] = member
            return member

    def accepted(self, kind: str) -> int:
        """Batch operations of ``kind`` (``member_put``, ``member_tags``, ``member_untag``) answered 2xx."""
        with self._lock:
            return sum(1 for name, status in self.operations if name == kind and status < 300)

    def tagged(self, list_id: str, tag: str) -> set[str]:
        """Emails of the members that carry ``tag``."""
        with self._data_lock:
            return {m.email_address for m in self.audiences[list_id].members.values() if tag in m.tags}

    def add_campaign(self, list_id: str, title: str, activity: list[dict[str, Any]]) -> str:
        """A sent campaign to ``list_id`` with its recipients' activity (``email_address``, ``activity``)."""
        with self._data_lock:
            cid = uuid.uuid4().hex[:10]
            self.campaigns[cid] = {
                "id": cid,
                "settings": {"title": title},
                "recipients": {"list_id": list_id},
            }
            self.activity[cid] = activity
            return cid

    # -- server hooks --------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        if request.route == "batch_results":
            return None
        header = request.header("Authorization") or ""
        key = ""
        if header.startswith("Basic "):
            try:
                key = base64.b64decode(header[6:]).decode().partition(":")[2]
            except ValueError:
                key = ""
        if key != self.api_key:
            return problem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        return None

    def error_response(self, status: int, message: str, request: Request) -> Response:
        titles = {404: "Resource Not Found", 405: "Method Not Allowed", 429: "Too Many Requests"}
        return problem(status, titles.get(status, "Internal Server Error"), message)

    def _dispatch(self, route: Route | None, req: Request, path_known: bool) -> Response:
        with self._lock:
            self.in_flight += 1
            busy = self.in_flight
            self.peak_in_flight = max(self.peak_in_flight, busy)
        try:
            if busy > MAX_CONNECTIONS and req.route != "batch_results":
                with self._lock:
                    self.throttled += 1
                return problem(
                    429,
                    "Too Many Requests",
                    f"You have exceeded the limit of {MAX_CONNECTIONS} simultaneous connections.",
                )
            if self.latency:
                time.sleep(self.latency)
            return super()._dispatch(route, req, path_known)
        finally:
            with self._lock:
                self.in_flight -= 1

    # -- handlers ------------------------------------------------------------------------------
    def _audience(self, list_id: str) -> Audience | Response:
        found = self.audiences.get(list_id)
        if found is None:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        return found

    def _ping(self, request: Request) -> Response:
        return json_response({"health_status": "Everything's Chimpy!"})

    def _page(self, request: Request) -> tuple[int, int]:
        offset = max(0, int(request.query.get("offset") or 0))
        count = min(MAX_PAGE, max(0, int(request.query.get("count") or 10)))
        return offset, count

    def _lists(self, request: Request) -> Response:
        offset, count = self._page(request)
        with self._data_lock:
            rows = [
                {"id": a.id, "name": a.name, "stats": {"member_count": len(a.members)}}
                for a in self.audiences.values()
            ]
        return json_response({"lists": rows[offset : offset + count], "total_items": len(rows)})

    def _list(self, request: Request) -> Response:
        found = self._audience(request.params["list_id"])
        if isinstance(found, Response):
            return found
        return json_response(
            {"id": found.id, "name": found.name, "stats": {"member_count": len(found.members)}}
        )

    def _members(self, request: Request) -> Response:
        found = self._audience(request.params["list_id"])
        if isinstance(found, Response):
            return found
        offset, count = self._page(request)
        since = request.query.get("since_last_changed") or ""
        with self._data_lock:
            rows = [m for m in found.members.values() if not since or m.last_changed > since]
            if request.query.get("sort_field") == "last_changed":
                rows.sort(key=lambda m: m.last_changed, reverse=request.query.get("sort_dir") == "DESC")
            page = [m.as_json(found.id) for m in rows[offset : offset + count]]
        return json_response({"members": page, "list_id": found.id, "total_items": len(rows)})

    def _put_member(self, request: Request) -> Response:
        found = self._audience(request.params["list_id"])
        if isinstance(found, Response):
            return found
        try:
            body = request.json() or {}
        except ValueError:
            return problem(400, "Invalid Resource", "The resource submitted could not be validated.")
        email = str(body.get("email_address") or "")
        if not _EMAIL.match(email):
            return problem(
                400,
                "Invalid Resource",
                f"{email or 'An empty address'} looks fake or invalid, please enter a real email address.",
            )
        if subscriber_hash(email) != request.params["hash"]:
            return problem(400, "Invalid Resource", "The subscriber hash does not match the email address.")
        with self._data_lock:
            member = found.members.get(request.params["hash"])
            if member is None:
                status = body.get("status_if_new") or body.get("status")
                if status not in ("subscribed", "unsubscribed", "cleaned", "pending", "transactional"):
                    return problem(400, "Invalid Resource", "The status of a new member is required.")
                member = Member(email, status)
                found.members[request.params["hash"]] = member
            elif body.get("status") and body["status"] != member.status:
                if member.status == "cleaned":
                    return problem(
                        400, "Member In Compliance State", f"{email} was cleaned and cannot be changed."
                    )
                member.status = body["status"]
            member.merge_fields.update(body.get("merge_fields") or {})
            member.last_changed = _now()
            return json_response(member.as_json(found.id))

    def _tags(self, request: Request) -> Response:
        found = self._audience(request.params["list_id"])
        if isinstance(found, Response):
            return found
        with self._data_lock:
            member = found.members.get(request.params["hash"])
            if member is None:
                return problem(404, "Resource Not Found", "The requested resource could not be found.")
            for tag in (request.json() or {}).get("tags") or []:
                if tag.get("status") == "inactive":
                    member.tags.discard(str(tag["name"]))
                else:
                    member.tags.add(str(tag["name"]))
            member.last_changed = _now()
        return Response(204, b"", "application/json")

    def _start_batch(self, request: Request) -> Response:
        operations = (request.json() or {}).get("operations")
        if not isinstance(operations, list):
            return problem(400, "Invalid Resource", "Schema describes array, object found instead")
        results = [self._run_operation(op, request) for op in operations]
        batch = Batch(uuid.uuid4().hex[:10], len(operations), results, self.polls_before_finished, _now())
        with self._lock:
            self.batches[batch.id] = batch
        return json_response(self._batch_json(batch, "pending"))

    def _run_operation(self, op: dict[str, Any], outer: Request) -> dict[str, Any]:
        method = str(op.get("method") or "GET").upper()
        path = "/3.0/" + str(op.get("path") or "").lstrip("/")
        route, params, _ = self.match(method, path)
        inner = Request(
            method,
            path,
            {k: str(v) for k, v in (op.get("params") or {}).items()},
            outer.headers,
            str(op.get("body") or "").encode(),
            params,
            route.name if route else "<unmatched>",
        )
        resp = (
            route.handler(inner) if route else problem(404, "Resource Not Found", f"no such endpoint: {path}")
        )
        with self._lock:
            self.calls[f"batched {inner.route}"] += 1
            kind = inner.route
            if kind == "member_tags" and b'"inactive"' in inner.body:
                kind = "member_untag"
            self.operations.append((kind, resp.status))
        return {
            "status_code": resp.status,
            "operation_id": op.get("operation_id"),
            "response": resp.body.decode() if resp.body else "",
        }

    def _batch_json(self, batch: Batch, status: str) -> dict[str, Any]:
        done = status == "finished"
        return {
            "id": batch.id,
            "status": status,
            "total_operations": batch.total,
            "finished_operations": batch.total if done else 0,
            "errored_operations": batch.errored if done else 0,
            "submitted_at": batch.submitted_at,
            "completed_at": _now() if done else "",
            "response_body_url": f"{self.base_url}/batch-results/{batch.id}.tar.gz" if done else "",
        }

    def _batch_status(self, request: Request) -> Response:
        with self._lock:
            batch = self.batches.get(request.params["batch_id"])
            if batch is None:
                return problem(404, "Resource Not Found", "The requested resource could not be found.")
            status = "started" if batch.polls_left > 0 else "finished"
            batch.polls_left -= 1
        return json_response(self._batch_json(batch, status))

    def _batch_results(self, request: Request) -> Response:
        batch = self.batches.get(request.params["batch_id"])
        if batch is None:
            return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w:gz") as archive:
            data = json.dumps(batch.results).encode()
            info = tarfile.TarInfo(f"{batch.id}/{uuid.uuid4().hex}.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        return Response(200, out.getvalue(), "application/x-tar")

    def _campaigns(self, request: Request) -> Response:
        offset, count = self._page(request)
        list_id = request.query.get("list_id")
        rows = [c for c in self.campaigns.values() if not list_id or c["recipients"]["list_id"] == list_id]
        return json_response({"campaigns": rows[offset : offset + count], "total_items": len(rows)})

    def _email_activity(self, request: Request) -> Response:
        cid = request.params["campaign_id"]
        if cid not in self.activity:
            return problem(404, "Resource Not Found", "The requested resource could not be found.")
        offset, count = self._page(request)
        since = request.query.get("since") or ""
        rows = []
        for row in self.activity[cid]:
            kept = [a for a in row["activity"] if not since or a["timestamp"] > since]
            if kept:
                rows.append({**row, "campaign_id": cid, "activity": kept})
        return json_response(
            {"emails": rows[offset : offset + count], "campaign_id": cid, "total_items": len(rows)}
        )
