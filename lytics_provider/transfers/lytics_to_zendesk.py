"""Zendesk "Export Users": an audience's members as Zendesk users with ``member_of_lytics_group``.

Zendesk has a text user field with the key ``member_of_lytics_group`` (the seed: "the Field key
must be member_of_lytics_group for Lytics to find it"). Each member who entered the audience (or
whose exported fields changed) is created or updated by email with that field set to the
audience's name, plus the Export Fields as user fields; each member who left it, and that this
job had set, gets the field cleared (the user is never deleted). Users go 100 per
``POST /api/v2/users/create_or_update_many.json`` (Zendesk's maximum); the answer is a job status
polled at ``GET /api/v2/job_statuses/{id}.json``, whose per-user results become the outcomes: a
user Zendesk refused is a reject with its error. Each acknowledged batch is checkpointed by the
sync engine, so a retried run resumes after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lytics_provider.hooks.zendesk import MAX_MANY, ZendeskApiHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs
from lytics_provider.sync.plan import Outcome, Work

GROUP_FIELD = "member_of_lytics_group"


class ZendeskUsersDestination(SyncDestination):
    """Audience members as Zendesk users, matched by email.

    :param hook: the Zendesk hook.
    :param audience_name: the value written to ``member_of_lytics_group``.
    :param export_fields: member fields written as user fields (their names are the field keys).
    :param poll_interval: seconds between job-status polls.
    """

    batch_size = MAX_MANY

    def __init__(
        self,
        hook: ZendeskApiHook,
        audience_name: str,
        export_fields: Sequence[str] = (),
        poll_interval: float = 1.0,
    ) -> None:
        self.hook = hook
        self.audience_name = audience_name
        self.export_fields = [f for f in export_fields if f not in ("email", "name", "_uid")]
        self.poll_interval = poll_interval
        self.jobs = 0

    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        return str(record.get("email") or "").strip().lower(), None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        local, _, domain = ident.partition("@")
        if not local or "." not in domain:
            return "no valid email: Zendesk matches users by email (export the email field)"
        return None

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        fields = {f: record.get(f) for f in self.export_fields if record.get(f) is not None}
        return {"name": record.get("name") or record.get("email"), "user_fields": fields}

    def enter_action(self) -> str:
        return "add"

    def exit_action(self) -> str:
        return "remove"

    def describe(self) -> dict[str, Any]:
        return {"user_field": GROUP_FIELD, "value": self.audience_name}

    def describe_after(self) -> dict[str, Any]:
        return {"api_calls": self.hook.calls, "jobs": self.jobs, "throttled": self.hook.throttled}

    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        users = []
        for work in rows:
            body = work.fields()
            fields = {**(body.get("user_fields") or {}), GROUP_FIELD: self.audience_name}
            users.append({"email": work.ident, "name": body.get("name") or work.ident, "user_fields": fields})
        return self._send(target, "add", rows, users)

    def remove(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        users = [{"email": w.ident, "user_fields": {GROUP_FIELD: ""}} for w in rows]
        return self._send(target, "remove", rows, users)

    def _send(self, target: str, action: str, rows: list[Work], users: list[dict[str, Any]]) -> list[Outcome]:
        job = self.hook.wait_job(self.hook.create_or_update_many(users), self.poll_interval)
        self.jobs += 1
        by_index = {int(r.get("index", i)): r for i, r in enumerate(job.get("results") or [])}
        outcomes: list[Outcome] = []
        for index, work in enumerate(rows):
            result = by_index.get(index)
            if result is None:
                outcomes.append(
                    (work.ident, target, action, work.uid, "Rejected", None, "no result in the job status")
                )
            elif result.get("error"):
                reason = f"{result['error']}: {result.get('details') or ''}".strip(": ")
                outcomes.append((work.ident, target, action, work.uid, "Rejected", None, reason))
            else:
                status = str(result.get("status") or result.get("action") or "Updated")
                outcomes.append((work.ident, target, action, work.uid, status, str(result.get("id")), None))
        return outcomes


class LyticsToZendeskUsersOperator(AudienceSyncOperator):
    """Export Users: set ``member_of_lytics_group`` on the audience's Zendesk users.

    :param zendesk_conn_id: the Zendesk connection (Subdomain, Zendesk Email Address, API Key).
    :param export_fields: member fields also written as user fields.
    :param requests_per_minute: the account's per-minute API budget.
    :param poll_interval: seconds between job-status polls.
    :param kwargs: :class:`~lytics_provider.sync.operator.AudienceSyncOperator`'s arguments.
    """

    def __init__(
        self,
        *,
        zendesk_conn_id: str = "zendesk_default",
        export_fields: Sequence[str] | None = None,
        requests_per_minute: int = 200,
        poll_interval: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.export_fields = list(export_fields or [])

    def make_destination(self, inputs: SyncRunInputs) -> ZendeskUsersDestination:
        audience = inputs.audience
        return ZendeskUsersDestination(
            ZendeskApiHook(self.zendesk_conn_id, requests_per_minute=self.requests_per_minute),
            str(audience.get("name") or audience.get("slug")),
            self.export_fields,
            self.poll_interval,
        )
