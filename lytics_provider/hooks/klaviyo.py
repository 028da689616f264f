"""Hook for the Klaviyo API (``https://a.klaviyo.com/api``) and the audience-list adapter.

Auth: ``Authorization: Klaviyo-API-Key <private key>`` (connection Password); every call carries
the ``revision`` header (connection extra ``revision``, default :data:`DEFAULT_REVISION`) and
JSON:API media types. Error bodies are JSON:API ``{"errors": [{"status", "code", "title",
"detail", "source"}]}``; their ``detail`` ends up in the task's error. Collections are read by
following ``links.next``.

Rate limits: Klaviyo limits each endpoint to a burst per second and a steady rate per minute
(the bulk import, list and relationship endpoints: 10/s and 150/m). Every task of one connection
draws on one client-side budget of ``calls_per_minute`` (default 150) calls per minute and
``calls_per_second`` (default 10) calls a second; a 429
``throttled`` answer's ``Retry-After`` pauses every task of the connection, and the call is sent
again after it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from lytics_provider.hooks.batched_lookup import chunks, lookup_in_batches
from lytics_provider.hooks.bulk_jobs import PlannedJobs, wait_for_answer
from lytics_provider.hooks.email_lists import NamedListDestination
from lytics_provider.hooks.rest import RestHook
from lytics_provider.hooks.rest_auth import HeaderToken
from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.sync.identifiers import lookup_field, normalize_email
from lytics_provider.sync.plan import Outcome, Work

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://a.klaviyo.com"
DEFAULT_REVISION = "2024-10-15"
JOB_LIMIT = 10_000
"""Profiles per bulk import job (Klaviyo's limit)."""
JOB_BYTES = 5 * 1024 * 1024
"""Payload bytes per bulk import job (Klaviyo's limit)."""
RELATIONSHIP_LIMIT = 1000
"""Profiles per list relationship call."""
ANY_LIMIT = 100
"""Values of one ``any(email, [...])`` filter."""
CALLS_PER_MINUTE = 150
CALLS_PER_SECOND = 10
PENDING = ("queued", "processing")
MEDIA_TYPE = "application/vnd.api+json"
ADDED, REMOVED, NOT_FOUND, REJECTED = "added", "removed", "not_found", "Rejected"


class BulkJobEnded(ServiceError):
    """A bulk import job ended without completing (cancelled); the retry starts it again."""


@error_reader
def klaviyo_error(body: dict[str, Any]) -> str | None:
    """The text of a JSON:API error body: each error's code and detail."""
    errors = body.get("errors")
    if not isinstance(errors, list):
        return None
    parts = []
    for error in errors[:3]:
        if isinstance(error, dict):
            parts.append(
                f"{error.get('code') or error.get('title')}: {error.get('detail') or error.get('title')}"
            )
    return "; ".join(parts)[:600]


def _quoted(values: Iterable[str]) -> str:
    return ",".join(json.dumps(v) for v in values)


class KlaviyoHook(RestHook):
    """Talk to Klaviyo with the private API key of a ``klaviyo`` connection.

    Connection: Password = the private API key, Host = API URL (optional), extras ``revision``
    (the API revision, default :data:`DEFAULT_REVISION`) and ``calls_per_minute`` (default 150).

    :param klaviyo_conn_id: the ``klaviyo`` connection (default ``klaviyo_default``).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    """

    conn_type = "klaviyo"
    hook_name = "Klaviyo"
    default_host = DEFAULT_API_URL
    auth = HeaderToken("Authorization", "Klaviyo-API-Key ")
    credentials_hint = "needs the private API key in Password."
    credentials_fix = (
        "the private API key in Password, with the profiles, lists and events read/write scopes the "
        "jobs need."
    )
    default_headers = {"Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE}
    error_text = staticmethod(klaviyo_error)
    check_path = "/api/lists"

    calls_per_hour = CALLS_PER_MINUTE
    """Calls per minute: the steady limit of the endpoints written to."""
    budget_window = 60.0
    budget_extra = "calls_per_minute"
    window_extra = ""

    def _before_call(self) -> None:
        """The per-minute budget (the base's), then the burst budget of 10 calls a second."""
        super()._before_call()
        burst = int(self.extra.get("calls_per_second") or CALLS_PER_SECOND)
        self.side_budget("burst", "key", burst, 1.05)

    def connection_headers(self) -> dict[str, str]:
        """The ``revision`` header."""
        return {"revision": str(self.extra.get("revision") or DEFAULT_REVISION)}

    def check_found(self, body: Any) -> str:
        """The first page of lists."""
        return f"{len(body.get('data') or [])} list(s) on the first page"

    # -- paging ---------------------------------------------------------------------------------
    def iter_pages(
        self, path: str, params: dict[str, Any] | None = None, resume: str | None = None
    ) -> Iterator[tuple[dict[str, Any], str | None]]:
        """Each page's body with its ``links.next`` URL (None on the last page); ``resume`` is a
        ``links.next`` URL saved from an earlier read."""
        target, query = (resume, None) if resume else (path, dict(params or {}))
        while True:
            body = self.call("GET", target, params=query)
            following = (body.get("links") or {}).get("next") or None
            if following is not None and following == target:
                raise ValueError(f"Klaviyo {path}: links.next repeats the current page")
            if following is not None and not following.startswith(self.get_conn().base_url + "/"):
                raise ValueError(
                    f"Klaviyo {path}: links.next points to another host; not sending the key there"
                )
            yield body, following
            if following is None:
                return
            target, query = following, None

    # -- lists ----------------------------------------------------------------------------------
    def find_list(self, name: str) -> str | None:
        """The id of the list named ``name``, or None."""
        body = self.call("GET", "/api/lists", params={"filter": f"equals(name,{json.dumps(name)})"})
        for item in body.get("data") or []:
            if (item.get("attributes") or {}).get("name") == name:
                return str(item["id"])
        return None

    def create_list(self, name: str) -> str:
        body = self.call("POST", "/api/lists", json={"data": {"type": "list", "attributes": {"name": name}}})
        return str(body["data"]["id"])

    def change_list(self, list_id: str, profile_ids: Sequence[str], remove: bool) -> None:
        """Add or remove profiles (1,000 a call); neither changes consent."""
        for chunk in chunks(profile_ids, RELATIONSHIP_LIMIT):
            self.request(
                "DELETE" if remove else "POST",
                f"/api/lists/{list_id}/relationships/profiles",
                json={"data": [{"type": "profile", "id": pid} for pid in chunk]},
            )

    # -- profiles -------------------------------------------------------------------------------
    def ids_by_email(self, emails: Sequence[str]) -> dict[str, str]:
        """Profile ids by email (``any(email, [...])``, 100 a call); unknown emails are absent."""
        return lookup_in_batches(emails, ANY_LIMIT, self._read_ids)

    def _read_ids(self, emails: list[str]) -> Iterator[tuple[str, str]]:
        params = {
            "filter": f"any(email,[{_quoted(emails)}])",
            "page[size]": ANY_LIMIT,
            "fields[profile]": "email",
        }
        for body, _ in self.iter_pages("/api/profiles", params):
            for item in body.get("data") or []:
                yield normalize_email((item.get("attributes") or {}).get("email")), str(item["id"])

    # -- bulk import jobs -----------------------------------------------------------------------
    def start_import(self, profiles: Sequence[dict[str, Any]], list_id: str | None) -> str:
        """Start a Bulk Import Profiles job (at most 10,000 profiles and 5 MB); its id."""
        if len(profiles) > JOB_LIMIT:
            raise ValueError(f"at most {JOB_LIMIT} profiles per bulk import job")
        data: dict[str, Any] = {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": [{"type": "profile", "attributes": p} for p in profiles]}},
        }
        if list_id:
            data["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
        body = self.call("POST", "/api/profile-bulk-import-jobs", json={"data": data})
        return str(body["data"]["id"])

    def import_job(self, job_id: str) -> dict[str, Any]:
        """The job's attributes (``status``, ``total_count``, ``completed_count``, ``failed_count``)."""
        return dict(self.call("GET", f"/api/profile-bulk-import-jobs/{job_id}")["data"]["attributes"])

    def import_errors(self, job_id: str) -> Iterator[dict[str, Any]]:
        """The job's import errors (``code``, ``title``, ``detail``, ``original_payload``)."""
        for body, _ in self.iter_pages(
            f"/api/profile-bulk-import-jobs/{job_id}/import-errors", {"page[size]": 100}
        ):
            for item in body.get("data") or []:
                yield dict(item.get("attributes") or {})


def job_payload_size(profile: dict[str, Any]) -> int:
    """Bytes a profile adds to a bulk import job's JSON body."""
    return len(json.dumps({"type": "profile", "attributes": profile}, separators=(",", ":"))) + 1


class KlaviyoListDestination(PlannedJobs, NamedListDestination):
    """Members imported as profiles (bulk import jobs that also add them to one list); exits removed
    from the list when ``on_exit`` is ``remove`` (only members the job added).

    :param args: :class:`~lytics_provider.hooks.email_lists.NamedListDestination`'s arguments
        (``batch_size`` defaults to the 10,000 profiles of one job) and
        :class:`~lytics_provider.hooks.bulk_jobs.PlannedJobs`' ``poll_interval`` (default 10 s) and
        ``timeout`` (default 6 hours).
    """

    hook: KlaviyoHook
    default_batch_size = JOB_LIMIT
    default_poll_interval = 10.0
    default_timeout = 6 * 3600.0

    # -- planning ------------------------------------------------------------------------------
    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        """Profile attributes: standard ones (``first_name``, ``phone_number``, ...) by name,
        ``properties.<name>`` targets as custom properties."""
        attributes: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for source, target in self.field_map.items():
            value = lookup_field(record, source)
            if value is None or value == "":
                continue
            if target.startswith("properties."):
                custom[target.removeprefix("properties.")] = value
            else:
                attributes[target] = value
        if custom:
            attributes["properties"] = custom
        return attributes

    def describe_after(self) -> dict[str, Any]:
        return {"klaviyo_calls": self.hook.calls, "bulk_import_jobs": self.jobs}

    # -- acting --------------------------------------------------------------------------------
    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        """Import the rows in bulk jobs (10,000 profiles / 5 MB each) that add them to the list.

        Each job's id is saved in the run's plan before the wait, so a retried task waits for the
        job it started instead of importing the rows again.
        """
        failed: dict[str, str] = {}
        for index, chunk in enumerate(self._chunks(rows)):
            key = f"klaviyo_job:{target}:{rows[0].seq}:{index}"
            job_id = self.planned_job(key, lambda c=chunk: self._start(c, target))
            try:
                failed.update(self._finish(job_id))
            except BulkJobEnded:
                self.forget_job(key)
                raise
        return [
            (w.ident, target, "add", w.uid, REJECTED, None, failed[w.ident])
            if w.ident in failed
            else (w.ident, target, "add", w.uid, ADDED, None, None)
            for w in rows
        ]

    def _start(self, chunk: list[Work], target: str) -> str:
        """Start the bulk import job of ``chunk`` into list ``target``; its id."""
        job_id = self.hook.start_import([{"email": w.ident, **w.fields()} for w in chunk], target)
        log.info("Klaviyo bulk import job %s started (%d profiles)", job_id, len(chunk))
        return job_id

    def _chunks(self, rows: list[Work]) -> Iterator[list[Work]]:
        chunk: list[Work] = []
        size = 200
        for work in rows:
            grows = job_payload_size({"email": work.ident, **work.fields()})
            if chunk and (len(chunk) >= JOB_LIMIT or size + grows > JOB_BYTES - 4096):
                yield chunk
                chunk, size = [], 200
            chunk.append(work)
            size += grows
        if chunk:
            yield chunk

    def _finish(self, job_id: str) -> dict[str, str]:
        """Wait for the job; return its refused profiles' emails with Klaviyo's reasons."""
        seen = wait_for_answer(
            lambda: self.hook.import_job(job_id),
            PENDING,
            self.poll_interval,
            self.timeout,
            f"Klaviyo bulk import job {job_id}",
            self.sleep,
        )
        status = str(seen.get("status"))
        if status != "complete":
            raise BulkJobEnded(
                f"Klaviyo bulk import job {job_id} ended {status!r}; the retry starts it again"
            )
        if not seen.get("failed_count"):
            return {}
        failed: dict[str, str] = {}
        for error in self.hook.import_errors(job_id):
            email = normalize_email((error.get("original_payload") or {}).get("email"))
            failed[email] = f"Klaviyo refused the profile: {error.get('detail') or error.get('title')}"
        return failed

    def remove(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        """Remove the rows' profiles from the list (ids from ``id_field`` or looked up by email)."""
        known = {w.ident: w.ref for w in rows if w.ref}
        lookup = [w.ident for w in rows if not w.ref]
        if lookup:
            known.update(self.hook.ids_by_email(lookup))
        self.hook.change_list(target, sorted(set(known.values())), remove=True)
        return [
            (
                w.ident,
                target,
                "remove",
                w.uid,
                REMOVED if w.ident in known else NOT_FOUND,
                known.get(w.ident),
                None,
            )
            for w in rows
        ]
