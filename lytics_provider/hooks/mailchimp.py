"""Hook for the Mailchimp Marketing API 3.0 (``https://<dc>.api.mailchimp.com/3.0``).

Auth: HTTP Basic with the API key as the password (any user name); the data center ``<dc>`` is
the key's suffix after ``-`` and picks the host when the connection has none. Errors are
``{"type", "title", "status", "detail", "instance"}``; their title and detail end up in the error.
Collections page with ``offset`` / ``count`` (at most 1000) until ``total_items``.

Mailchimp limits each API key to **10 simultaneous connections** and sends no rate-limit headers:
every request holds one of the key's connection slots
(:class:`~lytics_provider.pipeline.connection_slots.ConnectionSlots`, shared by every task and
worker on the data volume) and a 429 is retried with backoff. Bulk writes go through the Batch
endpoint (``POST /batches``, poll ``GET /batches/{id}``, per-operation results in the
``response_body_url`` archive), which runs any number of operations on one connection.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from lytics_provider.hooks.bulk_jobs import PlannedJobs, wait_for_answer
from lytics_provider.hooks.list_lookup import by_id_or_name, list_choices
from lytics_provider.hooks.rest import JSON_HEADERS, RestHook
from lytics_provider.hooks.rest_auth import BasicApiKey, Credentials
from lytics_provider.hooks.rest_errors import code_and_message
from lytics_provider.hooks.rest_paging import OffsetPaging
from lytics_provider.pipeline.connection_slots import ConnectionSlots, slots_dir
from lytics_provider.pipeline.http import HttpClient, ServiceError
from lytics_provider.pipeline.ratelimit import ledger_key
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.email_list import EmailListMembers
from lytics_provider.sync.identifiers import lookup_field, scalar_text
from lytics_provider.sync.plan import Outcome, Work

MAX_CONNECTIONS = 10
MAX_PAGE = 1000
BATCH_PENDING = ("pending", "preprocessing", "started", "finalizing")


mailchimp_error = code_and_message("title", "detail")
"""``title: detail`` of a Mailchimp error body."""


def data_center(api_key: str) -> str:
    """The data center of an API key (``us21`` of ``abc-us21``); ValueError when it has none."""
    dc = api_key.rpartition("-")[2] if "-" in api_key else ""
    if not dc.isalnum():
        raise ValueError(
            "the Mailchimp API key has no data center suffix (it ends in -us21 or similar); paste the "
            "whole key, or put the API URL https://<dc>.api.mailchimp.com/3.0 in Host"
        )
    return dc


class MailchimpHook(RestHook):
    """Talk to Mailchimp with the API key of a ``mailchimp`` connection.

    Connection: Password = API key, Host = API URL (optional; default from the key's data center).

    :param mailchimp_conn_id: the ``mailchimp`` connection (default ``mailchimp_default``).
    :param max_connections: requests this key may have in flight at once, across tasks (at most 10).
    """

    conn_type = "mailchimp"
    hook_name = "Mailchimp"
    auth = BasicApiKey()
    credentials_hint = "needs the Mailchimp API key in the API key (Password) field."
    credentials_fix = (
        "the Mailchimp API key in the API key field, and that Host is the key's data center "
        "(https://<dc>.api.mailchimp.com/3.0) or empty."
    )
    default_headers = JSON_HEADERS
    paging = OffsetPaging(
        page_size=MAX_PAGE, limit_param="count", offset_param="offset", total_key="total_items"
    )
    error_text = staticmethod(mailchimp_error)
    check_path = "/ping"

    def __init__(self, *args: Any, max_connections: int = MAX_CONNECTIONS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 1 <= max_connections <= MAX_CONNECTIONS:
            raise ValueError(f"max_connections must be between 1 and {MAX_CONNECTIONS}")
        self.max_connections = max_connections
        self.slots: ConnectionSlots | None = None
        self.downloads = 0
        self._api_key = ""

    def get_conn(self) -> HttpClient:
        if self._client is None:
            self._api_key = self.get_connection(self.conn_id).password or ""
        return super().get_conn()

    def default_api_url(self) -> str:
        """``https://<dc>.api.mailchimp.com/3.0`` from the API key."""
        return f"https://{data_center(self._api_key)}.api.mailchimp.com/3.0"

    def configure_client(self, client: HttpClient, credentials: Credentials) -> None:
        """Every request holds one of the key's connection slots while it is in flight."""
        self.slots = ConnectionSlots(
            slots_dir(ledger_key(self.conn_id, credentials.identity)), self.max_connections
        )
        slots = self.slots
        send = client.session.request

        def limited(*args: Any, **kwargs: Any) -> requests.Response:
            with slots.hold():
                return send(*args, **kwargs)

        client.session.request = limited  # type: ignore[method-assign]

    def check_found(self, body: Any) -> str:
        """``GET /ping``'s health status."""
        return str(body.get("health_status") or "ping answered")

    # -- audiences -----------------------------------------------------------------------------
    def resolve_list(self, list_ref: str) -> dict[str, Any]:
        """An audience by id or exact name; ValueError naming the audiences there are when none matches."""
        lists = list(self.paginate("/lists", items_key="lists"))
        found, problem = by_id_or_name(lists, list_ref, noun="audiences")
        if found is not None:
            return found
        raise ValueError(
            f"Mailchimp audience {list_ref!r} {problem} (connection "
            f"{self.conn_id!r}); set list to one of: "
            f"{list_choices(lists) or 'none (create the audience in Mailchimp first)'}"
        )

    def iter_members(self, list_id: str, since_last_changed: str | None = None) -> Iterator[dict[str, Any]]:
        """Members of an audience, oldest change first (``since_last_changed`` exclusive)."""
        params: dict[str, Any] = {"sort_field": "last_changed", "sort_dir": "ASC"}
        if since_last_changed:
            params["since_last_changed"] = since_last_changed
        return self.paginate(f"/lists/{list_id}/members", params, items_key="members")

    def iter_campaigns(self, list_id: str) -> Iterator[dict[str, Any]]:
        """Sent campaigns to an audience."""
        return self.paginate("/campaigns", {"list_id": list_id, "status": "sent"}, items_key="campaigns")

    def iter_email_activity(self, campaign_id: str, since: str | None = None) -> Iterator[dict[str, Any]]:
        """Each recipient's activity of a campaign (``since``: only later actions)."""
        params = {"since": since} if since else {}
        return self.paginate(f"/reports/{campaign_id}/email-activity", params, items_key="emails")

    # -- batches -------------------------------------------------------------------------------
    def start_batch(self, operations: list[dict[str, Any]]) -> str:
        """``POST /batches``; the batch id."""
        return str(self.call("POST", "/batches", json={"operations": operations})["id"])

    def batch_status(self, batch_id: str) -> dict[str, Any]:
        """``GET /batches/{batch_id}``."""
        return dict(self.call("GET", f"/batches/{batch_id}"))

    def wait_for_batch(
        self,
        batch_id: str,
        poll_interval: float,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Poll a batch until it is ``finished``; its last status."""
        return wait_for_answer(
            lambda: self.batch_status(batch_id),
            BATCH_PENDING,
            poll_interval,
            timeout,
            f"Mailchimp batch {batch_id}",
            sleep,
        )

    def batch_results(self, url: str) -> list[dict[str, Any]]:
        """The per-operation results in a finished batch's ``response_body_url`` (a signed URL: fetched
        without the API key)."""
        client = HttpClient(
            base_url=url, policy=self.get_conn().policy, context=f"connection {self.conn_id!r}"
        )
        try:
            body = client.request("GET", url).content
        finally:
            self.downloads += client.calls
            client.close()
        results: list[dict[str, Any]] = []
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None and member.name.endswith(".json"):
                    results.extend(json.loads(handle.read() or b"[]"))
        return results


# -- the audience-sync adapter -----------------------------------------------------------------
def _audience_gone(results: dict[str, dict[str, Any]]) -> bool:
    """Whether a member upsert answered 404: only an audience that no longer exists does."""
    return any(
        key.endswith(":member") and int(r.get("status_code") or 0) == 404 for key, r in results.items()
    )


TRANSIENT = frozenset({429, 500, 502, 503, 504})
RESUBMIT_ROUNDS = 3


class MailchimpAudienceDestination(EmailListMembers, PlannedJobs, SyncDestination):
    """Members of a Lytics audience as members of one Mailchimp audience carrying one tag.

    Enter: ``PUT /lists/{list_id}/members/{hash}`` with ``status_if_new`` (a new member is
    subscribed; an existing one keeps its status, so an unsubscribed or cleaned member is never
    resubscribed) and the tag set ``active``. Exit (``on_exit: remove_tag``): the tag set
    ``inactive`` on the members this job tagged; the member stays in the audience.
    Each batch of members, enters and exits together, is one Batch-endpoint request; its id is
    saved in the plan before the first poll, so a retried task reattaches to the batch instead of
    sending it again.

    :param hook: the Mailchimp hook.
    :param list_id: the Mailchimp audience.
    :param tag: the tag that marks the Lytics audience's members.
    :param relocate: looks the audience up again when a member upsert answers 404 (the audience id
        was kept from an earlier run and the audience is gone); returns its id now. The batch is
        sent again to the audience found.
    :param wait: ``poll_interval``, ``timeout`` and ``sleep`` of a batch's wait
        (:class:`~lytics_provider.hooks.bulk_jobs.PlannedJobs`).
    """

    enter_kinds = ("enter",)
    tracked_exit_actions = ("remove",)
    mixed_kinds = ("add", "remove")
    act_kinds = ("add", "remove")
    id_field: str | None = None
    """Members are keyed by email alone."""

    def __init__(
        self,
        hook: MailchimpHook,
        list_id: str,
        tag: str,
        *,
        relocate: Callable[[], str] | None = None,
        email_field: str = "email",
        on_exit: str = "remove_tag",
        status_if_new: str = "subscribed",
        batch_size: int = 1000,
        **wait: Any,
    ) -> None:
        super().__init__(**wait)
        self.hook = hook
        self.list_id = list_id
        self.tag = tag
        self.relocate = relocate
        self.email_field = email_field
        self.on_exit = on_exit
        self.status_if_new = status_if_new
        self.batch_size = batch_size

    # planning
    def payload(self, record: dict[str, Any]) -> dict[str, str]:
        merge = {}
        for source, target in (("first_name", "FNAME"), ("last_name", "LNAME")):
            value = scalar_text(lookup_field(record, source)).strip()
            if value:
                merge[target] = value
        return merge

    def exit_action(self) -> str:
        return "remove" if self.on_exit == "remove_tag" else "ignore"

    def describe(self) -> dict[str, Any]:
        return {"list": self.list_id, "tag": self.tag, "on_exit": self.on_exit}

    def describe_after(self) -> dict[str, Any]:
        return {"batches": self.jobs, "mailchimp_calls": self.hook.calls + self.hook.downloads}

    # acting
    def add(self, target: str, rows: list[Work]) -> list[Outcome]:
        return self.send_mixed(target, [("add", row) for row in rows])

    def remove(self, target: str, rows: list[Work]) -> list[Outcome]:
        return self.send_mixed(target, [("remove", row) for row in rows])

    def send_mixed(self, target: str, rows: list[tuple[str, Work]]) -> list[Outcome]:
        """One Batch-endpoint request for enters and exits together; one outcome per member."""
        span = f"{rows[0][1].seq}:{rows[-1][1].seq}"
        results = self._run(f"{self.list_id}:{span}", self._all_operations(rows))
        if self.relocate is not None and _audience_gone(results):
            moved, self.relocate = self.relocate(), None
            if moved != self.list_id:
                self.list_id = moved
                results = self._run(f"{self.list_id}:{span}", self._all_operations(rows))
        return [self._outcome(kind, target, row, results) for kind, row in rows]

    def _all_operations(self, rows: list[tuple[str, Work]]) -> list[dict[str, Any]]:
        return [op for kind, row in rows for op in self._operations(kind, row)]

    def _operations(self, kind: str, row: Work) -> list[dict[str, Any]]:
        path = f"/lists/{self.list_id}/members/{member_hash(row.ident)}"
        if kind == "remove":
            untag = {"tags": [{"name": self.tag, "status": "inactive"}]}
            return [_op("POST", f"{path}/tags", untag, f"{row.seq}:untag")]
        body = {"email_address": row.ident, "status_if_new": self.status_if_new}
        if row.fields():
            body["merge_fields"] = row.fields()
        tags = {"tags": [{"name": self.tag, "status": "active"}]}
        return [
            _op("PUT", path, body, f"{row.seq}:member"),
            _op("POST", f"{path}/tags", tags, f"{row.seq}:tag"),
        ]

    def _outcome(self, kind: str, target: str, row: Work, results: dict[str, dict[str, Any]]) -> Outcome:
        if kind == "remove":
            result = results[f"{row.seq}:untag"]
            if result["status_code"] == 404:
                return (row.ident, target, kind, row.uid, "NotInAudience", None, None)
            if result["status_code"] >= 300:
                reason = f"Mailchimp refused the tag removal ({result['status_code']}): {_detail(result)}"
                return (row.ident, target, kind, row.uid, "Rejected", None, reason)
            return (row.ident, target, kind, row.uid, "TagRemoved", None, None)
        member, tagged = results[f"{row.seq}:member"], results[f"{row.seq}:tag"]
        failed = next((r for r in (member, tagged) if r["status_code"] >= 300), None)
        if failed is not None:
            reason = f"Mailchimp refused the member ({failed['status_code']}): {_detail(failed)}"
            return (row.ident, target, kind, row.uid, "Rejected", None, reason)
        return (
            row.ident,
            target,
            kind,
            row.uid,
            "Tagged",
            str(_body(member).get("status") or "subscribed"),
            None,
        )

    def _run(self, key: str, ops: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Run ``ops`` as batches until none failed for a transient reason; results by operation id.

        A batch id is saved in the plan before the first poll: a retried task reattaches to it.
        """
        results: dict[str, dict[str, Any]] = {}
        pending = ops
        for round_no in range(RESUBMIT_ROUNDS + 1):
            batch_id = self.planned_job(
                f"mailchimp_batch:{key}:{round_no}", lambda ops=pending: self.hook.start_batch(ops)
            )
            status = self.hook.wait_for_batch(batch_id, self.poll_interval, self.timeout, self.sleep)
            if int(status.get("errored_operations") or 0) == 0:
                found = {str(op["operation_id"]): {"status_code": 200, "response": ""} for op in pending}
            else:
                found = {
                    str(r.get("operation_id")): r
                    for r in self.hook.batch_results(status["response_body_url"])
                }
            retry = [
                op
                for op in pending
                if int(found.get(op["operation_id"], {}).get("status_code", 500)) in TRANSIENT
            ]
            results.update(found)
            if not retry:
                return results
            pending = retry
        raise ServiceError(
            f"Mailchimp batch operations still failed after {RESUBMIT_ROUNDS} resubmissions "
            f"({len(pending)} operations, e.g. {_detail(found.get(pending[0]['operation_id'], {}))}); "
            "the run resumes on retry"
        )


def member_hash(email: str) -> str:
    """Mailchimp's subscriber hash: MD5 of the lower-cased email."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def _op(method: str, path: str, body: dict[str, Any], operation_id: str) -> dict[str, Any]:
    return {"method": method, "path": path, "body": json.dumps(body), "operation_id": operation_id}


def _body(result: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(result.get("response") or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _detail(result: dict[str, Any]) -> str:
    body = _body(result)
    return str(body.get("detail") or body.get("title") or result.get("response") or "no detail")[:300]
