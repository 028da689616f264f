"""A loopback HTTPS stand-in for Salesforce's OAuth token endpoint, sObject describe and Bulk API 2.0.

Contract followed (Salesforce's published developer guides):

* Bulk API 2.0 and Bulk API Developer Guide, https://developer.salesforce.com/docs/platform/api-asynch/guide/
  ("Bulk API 2.0 Ingest": Create a Job, Upload Job Data, Upload Complete, Get Job Info, Get Job
  Successful / Failed Record Results; "Bulk API 2.0 Query": Create a Query Job, Get Results for a
  Query Job with ``maxRecords`` / ``locator``);
* Limits: https://developer.salesforce.com/docs/atlas.en-us.api_bulk_v2.meta/api_bulk_v2/bulk_api_2_limits.htm
  and "Bulk API and Bulk API 2.0 Limits and Allocations" (150 MB per upload, base64 included);
* REST API Developer Guide: OAuth 2.0 username-password and client-credentials flows
  (``POST /services/oauth2/token``), status codes and error bodies
  (``[{"message": ..., "errorCode": ...}]``), the ``Sforce-Limit-Info: api-usage=n/limit`` header and
  ``403 REQUEST_LIMIT_EXCEEDED`` once the org's daily API requests are spent.

What it serves, under ``/services/data/vXX.X``: ``sobjects/{object}/describe``; ``jobs/ingest``
(create; ``PUT {id}/batches`` CSV; ``PATCH {id}`` ``UploadComplete`` / ``Aborted``; ``GET {id}``;
``GET {id}/successfulResults`` with ``sf__Id``, ``sf__Created``; ``GET {id}/failedResults`` with
``sf__Id``, ``sf__Error``); ``jobs/query`` (create from ``SELECT f, ... FROM Obj [WHERE SystemModstamp
>= ts] [ORDER BY SystemModstamp]``; ``GET {id}``; ``GET {id}/results`` with ``Sforce-Locator`` and
``Sforce-NumberOfRecords``). Jobs move ``Open`` → ``UploadComplete`` → (``InProgress`` for
``in_progress_polls`` reads) → ``JobComplete``; a header naming an unknown field fails the job
(``InvalidBatch : Field name not found``). Rows are checked as Salesforce does: an ``email`` field
with no valid address is ``INVALID_EMAIL_ADDRESS``, a missing external id ``MISSING_ARGUMENT``, a
missing required field ``REQUIRED_FIELD_MISSING``. simple-salesforce builds ``https://`` URLs, so the
stand-in serves TLS (:mod:`lytics_sandbox.tls`).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response
from lytics_sandbox.tls import local_tls

MAX_UPLOAD_BYTES = 150 * 1024 * 1024
API = r"/services/data/v(?P<version>\d+\.\d)"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SOQL = re.compile(
    r"^SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+SystemModstamp\s*(?P<op>>=|>)\s*(?P<since>\S+))?"
    r"(?:\s+ORDER\s+BY\s+SystemModstamp)?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def sf_time(when: datetime) -> str:
    """Salesforce's datetime text (``2026-11-28T10:00:00.000+0000``)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def parse_sf_time(text: str) -> datetime:
    text = text.strip().replace("Z", "+0000")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z" if "." in text else "%Y-%m-%dT%H:%M:%S%z")


def errors(code: str, message: str, status: int) -> Response:
    """A Salesforce error body: a list of ``{"message", "errorCode"}``."""
    return json_response([{"message": message, "errorCode": code}], status)


@dataclass
class SObject:
    """One object type: field name -> type (``id``, ``string``, ``email``, ``boolean``, ``datetime``,
    ``double``), its external id fields, required fields and records by Id."""

    name: str
    fields: dict[str, str]
    external_ids: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    prefix: str = "a00"
    _indexes: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def index(self, field_name: str) -> dict[str, str]:
        """External id value -> record Id (kept up to date as records are written)."""
        found = self._indexes.get(field_name)
        if found is None or len(found) != len(self.records):
            found = {str(r.get(field_name)): rid for rid, r in self.records.items() if r.get(field_name)}
            self._indexes[field_name] = found
        return found

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "custom": self.name.endswith("__c"),
            "fields": [
                {
                    "name": name,
                    "type": kind,
                    "createable": name not in ("Id", "SystemModstamp", "CreatedDate"),
                    "updateable": name not in ("Id", "SystemModstamp", "CreatedDate"),
                    "externalId": name in self.external_ids,
                    "idLookup": name == "Id" or name in self.external_ids,
                    "custom": name.endswith("__c"),
                }
                for name, kind in self.fields.items()
            ],
        }


def standard_objects() -> dict[str, SObject]:
    """Account, Contact, Lead and Opportunity (a few standard fields each), and a custom object."""
    base = {"Id": "id", "CreatedDate": "datetime", "SystemModstamp": "datetime"}
    return {
        "Account": SObject(
            "Account",
            {**base, "Name": "string", "Website": "string", "Industry": "string"},
            required=("Name",),
            prefix="001",
        ),
        "Contact": SObject(
            "Contact",
            {
                **base,
                "AccountId": "string",
                "Email": "email",
                "FirstName": "string",
                "LastName": "string",
                "Title": "string",
            },
            required=("LastName",),
            prefix="003",
        ),
        "Lead": SObject(
            "Lead",
            {
                **base,
                "Email": "email",
                "FirstName": "string",
                "LastName": "string",
                "Company": "string",
                "Status": "string",
                "Lytics_UID__c": "string",
                "Lytics_Score__c": "double",
            },
            external_ids=("Lytics_UID__c",),
            required=("LastName", "Company"),
            prefix="00Q",
        ),
        "Opportunity": SObject(
            "Opportunity",
            {**base, "AccountId": "string", "Name": "string", "StageName": "string", "Amount": "double"},
            required=("Name", "StageName"),
            prefix="006",
        ),
        "Lytics_Member__c": SObject(
            "Lytics_Member__c",
            {
                **base,
                "Lytics_UID__c": "string",
                "Email__c": "email",
                "First_Name__c": "string",
                "In_Audience__c": "boolean",
            },
            external_ids=("Lytics_UID__c",),
        ),
    }


@dataclass
class BulkJob:
    id: str
    kind: str  # ingest / query
    info: dict[str, Any]
    data: bytes = b""
    successes: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, str]] = field(default_factory=list)
    polls_left: int = 0


class SalesforceSandbox(SandboxHTTPServer):
    """Salesforce on 127.0.0.1 over HTTPS; ``url`` is the instance (and login) URL once started.

    :param username: / :param password: / :param consumer_key: / :param consumer_secret: what the
        token endpoint accepts (the password may carry the security token appended).
    :param daily_limit: the org's daily API requests (``Sforce-Limit-Info``; 403 past it).
    :param tls_folder: where the local CA file is written (``ca_file``; trusted through
        ``REQUESTS_CA_BUNDLE``).
    """

    def __init__(
        self,
        tls_folder: Path,
        username: str = "lytics@example.com",
        password: str = "sandbox-password",
        consumer_key: str = "sandbox-consumer-key",
        consumer_secret: str = "sandbox-consumer-secret",
        daily_limit: int = 1_000_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        tls = local_tls(tls_folder)
        self.ssl_context = tls.server_context
        self.ca_file = tls.ca_file
        self.username, self.password = username, password
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.daily_limit = daily_limit
        self.api_requests = 0
        self.in_progress_polls = 0
        self.objects = standard_objects()
        self.jobs: dict[str, BulkJob] = {}
        self.tokens: set[str] = set()
        self.clock = lambda: datetime.now(UTC)
        self._ids = itertools.count(1)
        self._state_lock = threading.RLock()
        self.add_route("POST", r"/services/oauth2/token", self._token, "token")
        self.add_route("GET", API + r"/sobjects/(?P<object>\w+)/describe", self._describe, "describe")
        self.add_route("POST", API + r"/jobs/ingest", self._create_ingest, "ingest_create")
        self.add_route("PUT", API + r"/jobs/ingest/(?P<job>\w+)/batches", self._upload, "ingest_upload")
        self.add_route("PATCH", API + r"/jobs/(?P<kind>ingest|query)/(?P<job>\w+)", self._patch, "job_state")
        self.add_route("GET", API + r"/jobs/(?P<kind>ingest|query)/(?P<job>\w+)", self._job_info, "job_info")
        self.add_route(
            "GET",
            API + r"/jobs/ingest/(?P<job>\w+)/(?P<which>successfulResults|failedResults)",
            self._results,
            "ingest_results",
        )
        self.add_route("POST", API + r"/jobs/query", self._create_query, "query_create")
        self.add_route("GET", API + r"/jobs/query/(?P<job>\w+)/results", self._query_results, "query_results")

    # -- helpers -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.base_url

    def connection(self, **extra: Any) -> dict[str, Any]:
        """An Airflow ``salesforce`` connection (JSON form) that logs in here."""
        return {
            "conn_type": "salesforce",
            "login": self.username,
            "password": self.password,
            "extra": {
                "consumer_key": self.consumer_key,
                "consumer_secret": self.consumer_secret,
                "login_url": self.base_url,
                **extra,
            },
        }

    def error_response(self, status: int, message: str, request: Request) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 503: "SERVER_UNAVAILABLE"}.get(
            status, "UNKNOWN_EXCEPTION"
        )
        return errors(code, message, status)

    def authenticate(self, request: Request) -> Response | None:
        if request.route == "token":
            return None
        token = (request.header("Authorization") or "").removeprefix("Bearer ").strip()
        if token not in self.tokens:
            return errors("INVALID_SESSION_ID", "Session expired or invalid", 401)
        with self._state_lock:
            self.api_requests += 1
            if self.api_requests > self.daily_limit:
                return errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", 403)
        return None

    def _dispatch(self, route: Any, req: Request, path_known: bool) -> Response:
        resp = super()._dispatch(route, req, path_known)
        if req.route != "token":
            resp.headers["Sforce-Limit-Info"] = (
                f"api-usage={min(self.api_requests, self.daily_limit)}/{self.daily_limit}"
            )
        return resp

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):015d}"[:18]

    # -- OAuth ---------------------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode()))
        client_ok = (
            form.get("client_id") == self.consumer_key and form.get("client_secret") == self.consumer_secret
        )
        grant = form.get("grant_type")
        if grant == "password":
            ok = client_ok and form.get("username") == self.username and form.get("password") == self.password
        else:
            ok = grant == "client_credentials" and client_ok
        if not ok:
            return json_response(
                {"error": "invalid_grant", "error_description": "authentication failure"}, 400
            )
        token = "00D" + secrets.token_hex(20)
        self.tokens.add(token)
        return json_response(
            {
                "access_token": token,
                "instance_url": self.base_url,
                "token_type": "Bearer",
                "id": f"{self.base_url}/id/00D000000000001/005000000000001",
                "issued_at": str(int(self.clock().timestamp() * 1000)),
                "signature": "sandbox",
            }
        )

    def expire_sessions(self) -> None:
        """Every issued access token stops working (the client has to log in again)."""
        self.tokens.clear()

    # -- describe ------------------------------------------------------------------------------
    def _describe(self, request: Request) -> Response:
        sobject = self.objects.get(request.params["object"])
        if sobject is None:
            return errors(
                "NOT_FOUND", f"The requested resource does not exist: {request.params['object']}", 404
            )
        return json_response(sobject.describe())

    # -- ingest --------------------------------------------------------------------------------
    def _create_ingest(self, request: Request) -> Response:
        body = request.json() or {}
        name = str(body.get("object") or "")
        operation = body.get("operation")
        if name not in self.objects:
            return errors("INVALIDJOB", f"InvalidJob : Invalid object type: {name}", 400)
        if operation not in ("insert", "upsert", "update", "delete"):
            return errors("INVALIDJOB", f"InvalidJob : Invalid operation: {operation}", 400)
        ext = body.get("externalIdFieldName")
        if operation == "upsert" and ext not in (*self.objects[name].external_ids, "Id"):
            return errors("INVALIDJOB", f"InvalidJob : External ID field not found: {ext}", 400)
        job_id = self._new_id("750")
        now = sf_time(self.clock())
        info = {
            "id": job_id,
            "operation": operation,
            "object": name,
            "createdById": "005000000000001",
            "createdDate": now,
            "systemModstamp": now,
            "state": "Open",
            "externalIdFieldName": ext,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": 59.0,
            "contentUrl": f"services/data/v59.0/jobs/ingest/{job_id}/batches",
            "lineEnding": body.get("lineEnding") or "LF",
            "columnDelimiter": body.get("columnDelimiter") or "COMMA",
        }
        with self._state_lock:
            self.jobs[job_id] = BulkJob(job_id, "ingest", info)
        return json_response(info)

    def _job(self, request: Request, kind: str) -> BulkJob | None:
        job = self.jobs.get(request.params["job"])
        return job if job is not None and job.kind == kind else None

    def _upload(self, request: Request) -> Response:
        job = self._job(request, "ingest")
        if job is None:
            return errors("NOT_FOUND", "The requested resource does not exist", 404)
        if job.info["state"] != "Open":
            return errors("INVALIDJOBSTATE", f"Job {job.id} is not Open: {job.info['state']}", 409)
        if len(request.body) * 4 // 3 > MAX_UPLOAD_BYTES:
            return errors("INVALIDBATCH", "InvalidBatch : Request exceeds the 150 MB limit (base64)", 400)
        job.data += request.body
        return Response(201, b"", "text/plain")

    def _patch(self, request: Request) -> Response:
        kind = request.params["kind"]
        job = self._job(request, kind)
        if job is None:
            return errors("NOT_FOUND", "The requested resource does not exist", 404)
        state = (request.json() or {}).get("state")
        current = job.info["state"]
        if state == "Aborted" and current in ("Open", "UploadComplete", "InProgress"):
            job.info["state"] = "Aborted"
        elif state == "UploadComplete" and current == "Open" and kind == "ingest":
            self._process(job)
        else:
            return errors("INVALIDJOBSTATE", f"Cannot change job state from {current} to {state}", 400)
        return json_response(job.info)

    def _job_info(self, request: Request) -> Response:
        job = self._job(request, request.params["kind"])
        if job is None:
            return errors("NOT_FOUND", "The requested resource does not exist", 404)
        if job.info["state"] == "InProgress":
            job.polls_left -= 1
            if job.polls_left <= 0:
                job.info["state"] = "JobComplete"
        return json_response(job.info)

    def _process(self, job: BulkJob) -> None:
        """Run an ingest job's rows (at UploadComplete; reads see ``InProgress`` for a few polls)."""
        sobject = self.objects[job.info["object"]]
        rows = list(csv.DictReader(io.StringIO(job.data.decode("utf-8"), newline="")))
        header = list(rows[0].keys()) if rows else []
        unknown = [c for c in header if c not in sobject.fields]
        if not job.data or unknown:
            job.info.update(
                state="Failed",
                errorMessage=(
                    f"InvalidBatch : Field name not found : {unknown[0]}"
                    if unknown
                    else "InvalidBatch : no data"
                ),
            )
            return
        with self._state_lock:
            for row in rows:
                error = self._apply(sobject, job.info, row)
                if isinstance(error, str):
                    job.failures.append({"sf__Id": "", "sf__Error": error, **row})
                else:
                    record_id, created = error
                    job.successes.append({"sf__Id": record_id, "sf__Created": str(created).lower(), **row})
        job.columns = header
        job.info.update(
            numberRecordsProcessed=len(rows),
            numberRecordsFailed=len(job.failures),
            state="InProgress" if self.in_progress_polls else "JobComplete",
        )
        job.polls_left = self.in_progress_polls

    def _apply(self, sobject: SObject, info: dict[str, Any], row: dict[str, str]) -> str | tuple[str, bool]:
        for name, value in row.items():
            if value and sobject.fields[name] == "email" and not _EMAIL.match(value):
                return f"INVALID_EMAIL_ADDRESS:{name}: invalid email address: {value}:{name} --"
        ext = info.get("externalIdFieldName")
        existing: dict[str, Any] | None = None
        if info["operation"] == "upsert":
            key = row.get(ext or "")
            if not key:
                return f"MISSING_ARGUMENT:{ext} not specified:--"
            existing = sobject.records.get(sobject.index(ext).get(key, ""))
        elif info["operation"] == "update":
            existing = sobject.records.get(row.get("Id", ""))
            if existing is None:
                return f"ENTITY_IS_DELETED:entity is deleted or does not exist:{row.get('Id')}:--"
        if existing is None:
            missing = [f for f in sobject.required if not row.get(f)]
            if missing:
                names = ", ".join(missing)
                return f"REQUIRED_FIELD_MISSING:Required fields are missing: [{names}]:{missing[0]} --"
        now = sf_time(self.clock())
        values = {k: v for k, v in row.items() if k != "Id"}
        if existing is not None:
            existing.update(values, SystemModstamp=now)
            return existing["Id"], False
        record_id = self._new_id(sobject.prefix)
        sobject.records[record_id] = {**values, "Id": record_id, "CreatedDate": now, "SystemModstamp": now}
        if ext and ext in sobject._indexes and values.get(ext):
            sobject._indexes[ext][values[ext]] = record_id
        return record_id, True

    def _results(self, request: Request) -> Response:
        job = self._job(request, "ingest")
        if job is None:
            return errors("NOT_FOUND", "The requested resource does not exist", 404)
        if job.info["state"] != "JobComplete":
            return errors("INVALIDJOBSTATE", f"Job {job.id} is not complete", 400)
        if request.params["which"] == "successfulResults":
            head, rows = ["sf__Id", "sf__Created"], job.successes
        else:
            head, rows = ["sf__Id", "sf__Error"], job.failures
        return _csv(head + job.columns, rows, {})

    # -- query ---------------------------------------------------------------------------------
    def _create_query(self, request: Request) -> Response:
        body = request.json() or {}
        match = _SOQL.match(str(body.get("query") or "").strip())
        if body.get("operation") not in ("query", "queryAll") or match is None:
            return errors("INVALIDJOB", "InvalidJob : unsupported query", 400)
        sobject = self.objects.get(match["object"])
        if sobject is None:
            return errors("INVALID_TYPE", f"sObject type '{match['object']}' is not supported.", 400)
        columns = [c.strip() for c in match["fields"].split(",")]
        unknown = [c for c in columns if c not in sobject.fields]
        if unknown:
            return errors("INVALID_FIELD", f"No such column '{unknown[0]}' on entity '{sobject.name}'.", 400)
        records = sorted(sobject.records.values(), key=lambda r: r["SystemModstamp"])
        if match["since"]:
            since = parse_sf_time(match["since"])
            inclusive = match["op"] == ">="
            records = [
                r
                for r in records
                if (
                    parse_sf_time(r["SystemModstamp"]) >= since
                    if inclusive
                    else parse_sf_time(r["SystemModstamp"]) > since
                )
            ]
        job_id = self._new_id("750")
        info = {
            "id": job_id,
            "operation": body["operation"],
            "object": sobject.name,
            "state": "JobComplete",
            "createdDate": sf_time(self.clock()),
            "numberRecordsProcessed": len(records),
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        rows = [{c: "" if r.get(c) is None else str(r.get(c)) for c in columns} for r in records]
        with self._state_lock:
            self.jobs[job_id] = BulkJob(job_id, "query", info, columns=columns, rows=rows)
        return json_response({**info, "state": "UploadComplete"})

    def _query_results(self, request: Request) -> Response:
        job = self._job(request, "query")
        if job is None:
            return errors("NOT_FOUND", "The requested resource does not exist", 404)
        size = int(request.query.get("maxRecords") or 50000)
        start = int(request.query.get("locator") or 0)
        page = job.rows[start : start + size]
        following = str(start + size) if start + size < len(job.rows) else "null"
        return _csv(
            job.columns, page, {"Sforce-Locator": following, "Sforce-NumberOfRecords": str(len(page))}
        )

    # -- seeding -------------------------------------------------------------------------------
    def add_records(self, object_name: str, rows: list[dict[str, Any]], age_minutes: int = 60) -> list[str]:
        """Store records (``Id``, ``CreatedDate``, ``SystemModstamp`` filled in); return their ids."""
        sobject = self.objects[object_name]
        ids = []
        with self._state_lock:
            for number, row in enumerate(rows):
                stamp = sf_time(
                    self.clock() - timedelta(minutes=age_minutes) + timedelta(milliseconds=number)
                )
                record_id = self._new_id(sobject.prefix)
                sobject.records[record_id] = {
                    **row,
                    "Id": record_id,
                    "CreatedDate": stamp,
                    "SystemModstamp": stamp,
                }
                ids.append(record_id)
        return ids

    def touch(self, object_name: str, record_id: str, **values: Any) -> None:
        """Change a record now (its ``SystemModstamp`` moves)."""
        self.objects[object_name].records[record_id].update(values, SystemModstamp=sf_time(self.clock()))


def _csv(columns: list[str], rows: list[dict[str, str]], headers: dict[str, str]) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(200, out.getvalue().encode("utf-8"), "text/csv", headers)
