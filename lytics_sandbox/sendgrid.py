"""A loopback stand-in for the SendGrid v3 Marketing Campaigns API (contacts, custom fields, segments, lists).

Contract followed: SendGrid's own OpenAPI documents, https://github.com/twilio/sendgrid-oai
(``spec/json/tsg_mc_contacts_v3.json``, ``tsg_mc_custom_fields_v3.json``,
``tsg_mc_segments_2.0_v3.json``, ``tsg_mc_lists_v3.json``) and the reference pages under
https://www.twilio.com/docs/sendgrid/api-reference/contacts:

* Authentication: ``Authorization: Bearer <API key>``; a wrong key: ``401``. Error bodies are
  ``{"errors": [{"field", "message"}]}``.
* ``PUT /v3/marketing/contacts`` upserts up to **30,000 contacts or 6 MB**, whichever is lower
  (more: ``413``), keyed by ``email``; ``custom_fields`` are keyed by field **id** (an unknown id
  or a bad email refuses the whole request with ``400``, the ``field`` naming ``contacts[i]``).
  It answers ``202 {"job_id"}``; the upsert is asynchronous.
* ``GET /v3/marketing/contacts/imports/{id}``: ``status`` ``pending`` for
  :attr:`polls_before_completed` polls, then ``completed`` with ``results`` (``requested_count``,
  ``created_count``, ``updated_count``, ``errored_count``).
* ``GET`` / ``POST /v3/marketing/field_definitions`` (custom fields ``{id, name, field_type}``).
* ``GET`` / ``POST /v3/marketing/segments/2.0``, ``PATCH /v3/marketing/segments/2.0/{id}``
  (``name``, ``query_dsl``, ``parent_list_ids``); :meth:`SendGridSandbox.segment_members`
  evaluates the ``<field> LIKE '%value%'`` terms of a segment's query.
* ``GET /v3/marketing/lists``; ``GET /v3/scopes`` (the key's scopes).
* ``POST /v3/marketing/contacts/exports`` (``list_ids``, ``file_type: json``) → ``202 {"id"}``;
  ``GET /v3/marketing/contacts/exports/{id}`` → ``status: ready`` with ``urls`` of gzip JSON-lines
  files (served without the key, like SendGrid's signed URLs).
* Rate limits: per endpoint; with :attr:`rate_limit` set, more than that many requests in a
  minute get ``429`` with ``X-RateLimit-Limit``, ``X-RateLimit-Remaining: 0`` and
  ``X-RateLimit-Reset`` (epoch seconds of the window's end).
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from lytics_sandbox.httpserver import Request, Response, Route, SandboxHTTPServer, json_response

MAX_CONTACTS = 30_000
MAX_BYTES = 6 * 1024 * 1024
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LIKE = re.compile(r"(\w+)\s+LIKE\s+'%([^%']+)%'", re.IGNORECASE)


def errors(
    status: int, message: str, field_name: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """A SendGrid error body."""
    return json_response({"errors": [{"field": field_name, "message": message}]}, status, headers)


@dataclass
class Contact:
    id: str
    email: str
    fields: dict[str, Any] = field(default_factory=dict)
    custom_fields: dict[str, Any] = field(default_factory=dict)
    list_ids: set[str] = field(default_factory=set)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            **self.fields,
            "custom_fields": dict(self.custom_fields),
            "list_ids": sorted(self.list_ids),
        }


class SendGridSandbox(SandboxHTTPServer):
    """Serves the Marketing Campaigns subset above for one account (one API key).

    :param api_key: the account's API key.
    :param polls_before_completed: status polls answered ``pending`` before an upsert job completes.
    :param rate_limit: requests per minute per endpoint before a 429 (None: no limit).
    """

    def __init__(
        self,
        api_key: str = "SG.sandbox-key",
        polls_before_completed: int = 0,
        rate_limit: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self.polls_before_completed = polls_before_completed
        self.rate_limit = rate_limit
        self.contacts: dict[str, Contact] = {}
        self.custom_fields: dict[str, dict[str, str]] = {}
        self.segments: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.exports: dict[str, list[bytes]] = {}
        self.upserted: list[int] = []
        """Contacts accepted by each ``PUT /v3/marketing/contacts``."""
        self.throttled = 0
        self._windows: dict[str, list[float]] = defaultdict(list)
        self._data = threading.RLock()
        for method, pattern, handler, name in (
            ("GET", r"/v3/scopes", self._scopes, "scopes"),
            ("PUT", r"/v3/marketing/contacts", self._upsert, "contacts_put"),
            ("GET", r"/v3/marketing/contacts/imports/(?P<id>[^/]+)", self._job, "import_get"),
            ("POST", r"/v3/marketing/contacts/exports", self._start_export, "export_post"),
            ("GET", r"/v3/marketing/contacts/exports/(?P<id>[^/]+)", self._export, "export_get"),
            ("GET", r"/export-files/(?P<id>[^/]+)/(?P<n>\d+)\.json\.gz", self._export_file, "export_file"),
            ("GET", r"/v3/marketing/field_definitions", self._fields, "fields_get"),
            ("POST", r"/v3/marketing/field_definitions", self._add_field, "fields_post"),
            ("GET", r"/v3/marketing/segments/2\.0", self._segments, "segments_get"),
            ("POST", r"/v3/marketing/segments/2\.0", self._add_segment, "segments_post"),
            ("PATCH", r"/v3/marketing/segments/2\.0/(?P<id>[^/]+)", self._patch_segment, "segment_patch"),
            ("GET", r"/v3/marketing/lists", self._lists, "lists_get"),
        ):
            self.add_route(method, pattern, handler, name)

    # -- helpers for tests ---------------------------------------------------------------------
    def connection(self, api_key: str | None = None) -> dict[str, Any]:
        return {"conn_type": "sendgrid", "host": self.base_url, "password": api_key or self.api_key}

    def reset(self) -> None:
        with self._data:
            for store in (
                self.contacts,
                self.custom_fields,
                self.segments,
                self.lists,
                self.jobs,
                self.exports,
            ):
                store.clear()
            self.upserted.clear()
            self._windows.clear()
            self.throttled = 0
        self.faults.clear()
        self.reset_counters()

    def add_list(self, name: str) -> str:
        list_id = str(uuid.uuid4())
        self.lists[list_id] = {"id": list_id, "name": name, "contact_count": 0}
        return list_id

    def field_value(self, contact: Contact, name: str) -> Any:
        ids = {f["name"]: fid for fid, f in self.custom_fields.items()}
        return contact.custom_fields.get(ids.get(name, ""), "")

    def segment_members(self, segment_id: str) -> set[str]:
        """Emails of the contacts the segment's query matches (its ``LIKE '%value%'`` terms, ORed)."""
        with self._data:
            terms = _LIKE.findall(self.segments[segment_id]["query_dsl"])
            return {
                c.email
                for c in self.contacts.values()
                if any(value in str(self.field_value(c, name) or "").split(",") for name, value in terms)
            }

    # -- server hooks --------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        if request.route == "export_file":
            return None
        if request.header("Authorization") != f"Bearer {self.api_key}":
            return errors(401, "authorization required")
        return None

    def error_response(self, status: int, message: str, request: Request) -> Response:
        return errors(status, message)

    def _dispatch(self, route: Route | None, req: Request, path_known: bool) -> Response:
        if self.rate_limit and route is not None and req.route != "export_file":
            now = time.time()
            with self._lock:
                window = [t for t in self._windows[req.route] if t > now - 60]
                self._windows[req.route] = window
                if len(window) >= self.rate_limit:
                    self.throttled += 1
                    reset = int(window[0] + 60) + 1
                    headers = {
                        "X-RateLimit-Limit": str(self.rate_limit),
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": str(reset),
                    }
                    return errors(429, "too many requests", headers=headers)
                window.append(now)
        return super()._dispatch(route, req, path_known)

    # -- handlers ------------------------------------------------------------------------------
    def _scopes(self, request: Request) -> Response:
        return json_response({"scopes": ["marketing.read", "marketing.write"]})

    def _upsert(self, request: Request) -> Response:
        if len(request.body) > MAX_BYTES:
            return errors(413, "request body is larger than 6 MB")
        body = request.json() or {}
        contacts = body.get("contacts")
        if not isinstance(contacts, list) or not contacts:
            return errors(400, "contacts is required", "contacts")
        if len(contacts) > MAX_CONTACTS:
            return errors(413, f"at most {MAX_CONTACTS} contacts per request", "contacts")
        list_ids = [str(i) for i in body.get("list_ids") or []]
        for list_id in list_ids:
            if list_id not in self.lists:
                return errors(400, f"list {list_id} does not exist", "list_ids")
        for index, contact in enumerate(contacts):
            if not _EMAIL.match(str(contact.get("email") or "")):
                return errors(400, "email is invalid", f"contacts[{index}].email")
            for fid in contact.get("custom_fields") or {}:
                if fid not in self.custom_fields:
                    return errors(
                        400, f"custom field {fid} does not exist", f"contacts[{index}].custom_fields"
                    )
        created = 0
        with self._data:
            for contact in contacts:
                email = str(contact["email"]).lower()
                found = self.contacts.get(email)
                if found is None:
                    found = self.contacts[email] = Contact(str(uuid.uuid4()), email)
                    created += 1
                found.fields.update({k: v for k, v in contact.items() if k not in ("email", "custom_fields")})
                found.custom_fields.update(contact.get("custom_fields") or {})
                found.list_ids.update(list_ids)
            job_id = str(uuid.uuid4())
            self.jobs[job_id] = {
                "polls": self.polls_before_completed,
                "results": {
                    "requested_count": len(contacts),
                    "created_count": created,
                    "updated_count": len(contacts) - created,
                    "deleted_count": 0,
                    "errored_count": 0,
                },
            }
            self.upserted.append(len(contacts))
        return json_response({"job_id": job_id}, 202)

    def _job(self, request: Request) -> Response:
        with self._data:
            job = self.jobs.get(request.params["id"])
            if job is None:
                return errors(404, "job not found")
            status = "pending" if job["polls"] > 0 else "completed"
            job["polls"] -= 1
        answer = {"id": request.params["id"], "status": status, "job_type": "upsert"}
        if status == "completed":
            answer["results"] = job["results"]
        return json_response(answer)

    def _fields(self, request: Request) -> Response:
        with self._data:
            custom = [{"id": fid, **f} for fid, f in self.custom_fields.items()]
        reserved = [
            {"id": f"_rf{i}", "name": n, "field_type": "Text"}
            for i, n in enumerate(("first_name", "last_name", "email"))
        ]
        return json_response({"custom_fields": custom, "reserved_fields": reserved})

    def _add_field(self, request: Request) -> Response:
        body = request.json() or {}
        name, kind = str(body.get("name") or ""), str(body.get("field_type") or "")
        if kind not in ("Text", "Number", "Date") or not re.fullmatch(r"[A-Za-z_]\w*", name):
            return errors(400, "name and field_type (Text, Number or Date) are required", "name")
        with self._data:
            if any(f["name"] == name for f in self.custom_fields.values()):
                return errors(400, f"a custom field named {name} already exists", "name")
            fid = f"e{len(self.custom_fields) + 1}_{kind[0]}"
            self.custom_fields[fid] = {"name": name, "field_type": kind}
        return json_response({"id": fid, "name": name, "field_type": kind})

    def _segments(self, request: Request) -> Response:
        with self._data:
            return json_response({"results": list(self.segments.values())})

    def _add_segment(self, request: Request) -> Response:
        body = request.json() or {}
        if not body.get("name") or not body.get("query_dsl"):
            return errors(400, "name and query_dsl are required", "name")
        with self._data:
            segment = {
                "id": str(uuid.uuid4()),
                "name": body["name"],
                "query_dsl": body["query_dsl"],
                "parent_list_ids": list(body.get("parent_list_ids") or []),
            }
            self.segments[segment["id"]] = segment
        return json_response(segment, 201)

    def _patch_segment(self, request: Request) -> Response:
        with self._data:
            segment = self.segments.get(request.params["id"])
            if segment is None:
                return errors(404, "segment not found")
            segment.update({k: v for k, v in (request.json() or {}).items() if k in ("name", "query_dsl")})
            return json_response(segment)

    def _lists(self, request: Request) -> Response:
        with self._data:
            return json_response(
                {"result": list(self.lists.values()), "_metadata": {"count": len(self.lists)}}
            )

    def _start_export(self, request: Request) -> Response:
        body = request.json() or {}
        wanted = {str(i) for i in body.get("list_ids") or []}
        with self._data:
            rows = [c.as_json() for c in self.contacts.values() if not wanted or wanted & c.list_ids]
        files = []
        for start in range(0, len(rows), 50):
            text = "".join(json.dumps(r) + "\n" for r in rows[start : start + 50])
            files.append(gzip.compress(text.encode()))
        export_id = str(uuid.uuid4())
        self.exports[export_id] = files
        return json_response({"id": export_id}, 202)

    def _export(self, request: Request) -> Response:
        files = self.exports.get(request.params["id"])
        if files is None:
            return errors(404, "export not found")
        urls = [f"{self.base_url}/export-files/{request.params['id']}/{n}.json.gz" for n in range(len(files))]
        return json_response({"id": request.params["id"], "status": "ready", "urls": urls})

    def _export_file(self, request: Request) -> Response:
        files = self.exports.get(request.params["id"]) or []
        n = int(request.params["n"])
        if n >= len(files):
            return Response(404, b"not found", "text/plain")
        return Response(200, files[n], "application/gzip")
