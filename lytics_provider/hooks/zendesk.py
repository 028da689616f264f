"""Zendesk Support API calls on the official ``ZendeskHook`` (zenpy's authenticated session).

``ZendeskHook`` reads the connection (host ``{subdomain}.zendesk.com``, email, API token) and
builds the zenpy client; :class:`ZendeskApiHook` sends the bulk and incremental-export requests
that zenpy does not page the way the jobs need through that client's session, with:

- one call budget per connection and agent email (:class:`~lytics_provider.pipeline.ratelimit.CallLedger`,
  shared by every task and worker on the data volume), ``requests_per_minute`` in a 60 s window,
  each call counted from its answer (Zendesk counts it on arrival, before the answer), so no
  window at Zendesk sees more calls than the budget;
- 429 answers waited out by their ``Retry-After`` (every user of the budget pauses), never
  longer than ``max_wait``;
- 400/401/403/404/422 failing the task at once with Zendesk's ``error``/``description``.

Contract: https://developer.zendesk.com/api-reference/introduction/rate-limits/,
https://developer.zendesk.com/api-reference/ticketing/users/users/,
https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from airflow.providers.zendesk.hooks.zendesk import ZendeskHook

from lytics_provider.connections import ui_field_behaviour
from lytics_provider.hooks.permanent_errors import PermanentTaskFailure
from lytics_provider.pipeline.ratelimit import CallLedger, ledger_key, ledger_path

PERMANENT = {400, 401, 403, 404, 422}
MAX_MANY = 100


class ZendeskRateLimitWait(RuntimeError):
    """Zendesk asked for a wait longer than the hook may spend."""


class ZendeskApiHook(ZendeskHook):
    """Zendesk Support API requests with a shared per-minute budget.

    :param zendesk_conn_id: the ``zendesk`` connection (host ``{Subdomain}.zendesk.com``, login =
        Zendesk Email Address, password = API Key with extra ``use_token: true``).
    :param requests_per_minute: the account's per-minute budget (Zendesk's plan limit).
    :param incremental_per_minute: the incremental exports' own budget (Zendesk: 10 a minute).
    :param max_wait: longest wait (seconds) for the budget or a ``Retry-After``.
    """

    conn_type = "lytics_zendesk"
    hook_name = "Zendesk (Lytics)"
    #: the vendor's budget window (seconds)
    budget_window: float = 60.0
    #: factor the client's window is widened by: room for the two clocks' rates and the server's
    #: timer resolution (calls are already counted from their answers)
    budget_stretch: float = 1.01

    def __init__(
        self,
        zendesk_conn_id: str = ZendeskHook.default_conn_name,
        *,
        requests_per_minute: int = 200,
        incremental_per_minute: int = 10,
        max_wait: float = 300.0,
    ) -> None:
        super().__init__(zendesk_conn_id=zendesk_conn_id)
        self.requests_per_minute = requests_per_minute
        self.incremental_per_minute = incremental_per_minute
        self.max_wait = max_wait
        self.calls = 0
        self.throttled = 0
        self._ledgers: dict[str, CallLedger] = {}

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form, as declared in lytics_provider/integrations/zendesk.yaml."""
        return ui_field_behaviour(cls.conn_type)

    def ledger(self, scope: str = "api") -> CallLedger:
        """The call budget (``api``, or ``incremental``) shared by every user of this connection."""
        if scope not in self._ledgers:
            login = self.get_connection(self.zendesk_conn_id).login or ""
            path = ledger_path(ledger_key(f"{self.zendesk_conn_id}-{scope}", login))
            limit = self.requests_per_minute if scope == "api" else self.incremental_per_minute
            window = self.budget_window * self.budget_stretch
            self._ledgers[scope] = CallLedger(path, limit=limit, window=window, max_wait=self.max_wait)
        return self._ledgers[scope]

    def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> dict[str, Any]:
        """One API call (``path`` from ``/api/v2``), waiting out 429s; the decoded JSON body.

        :param method: HTTP method.
        :param path: the path, e.g. ``/api/v2/users/me.json``.
        :param params: query parameters.
        :param json: the JSON body.
        """
        session = self.get_conn().users.session
        url = self._url + path
        scopes = ["api", "incremental"] if path.startswith("/api/v2/incremental/") else ["api"]
        while True:
            with ExitStack() as held:
                for scope in scopes:
                    held.enter_context(self.ledger(scope).held())
                self.calls += 1
                response = session.request(method, url, params=params, json=json, timeout=60)
            if response.status_code == 429:
                self.throttled += 1
                wait = float(response.headers.get("Retry-After") or 60)
                if wait > self.max_wait:
                    raise ZendeskRateLimitWait(
                        f"Zendesk asked to wait {wait:.0f}s (> max_wait {self.max_wait:.0f}s)"
                    )
                self.ledger(scopes[-1]).pause_until(time.time() + wait)
                continue
            if response.status_code in PERMANENT:
                raise PermanentTaskFailure(f"Zendesk refused {method} {path}: {_envelope(response)}")
            response.raise_for_status()
            return response.json() if response.content else {}

    # -- users -------------------------------------------------------------------------------------
    def create_or_update_many(self, users: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Submit up to 100 users (matched by email); the ``job_status``."""
        if not 0 < len(users) <= MAX_MANY:
            raise ValueError(f"create_or_update_many takes 1 to {MAX_MANY} users, got {len(users)}")
        return self.request("POST", "/api/v2/users/create_or_update_many.json", json={"users": list(users)})[
            "job_status"
        ]

    def wait_job(
        self, job: dict[str, Any], poll_interval: float = 1.0, timeout: float = 1800.0
    ) -> dict[str, Any]:
        """Poll a ``job_status`` until it is ``completed`` (or ``failed``/``killed``: an error)."""
        deadline = time.monotonic() + timeout
        polls = 0
        while job.get("status") not in ("completed", "failed", "killed"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Zendesk job {job.get('id')} still {job.get('status')} after {timeout}s")
            if polls:  # the first poll goes at once: small jobs are done by then
                time.sleep(poll_interval)
            polls += 1
            job = self.request("GET", f"/api/v2/job_statuses/{job['id']}.json")["job_status"]
        if job["status"] != "completed":
            raise RuntimeError(f"Zendesk job {job.get('id')} {job['status']}: {job.get('message')}")
        return job

    def incremental_page(
        self, kind: str, cursor: str | None, start_time: int, per_page: int = 1000
    ) -> dict[str, Any]:
        """One page of ``/api/v2/incremental/{kind}/cursor.json`` (``cursor``, else ``start_time``)."""
        params: dict[str, Any] = {"per_page": per_page}
        if cursor:
            params["cursor"] = cursor
        else:
            params["start_time"] = start_time
        return self.request("GET", f"/api/v2/incremental/{kind}/cursor.json", params=params)

    def test_connection(self) -> tuple[bool, str]:
        """``GET /api/v2/users/me.json`` (the UI's Test button)."""
        try:
            me = self.request("GET", "/api/v2/users/me.json")["user"]
        except Exception as exc:  # the form shows the reason
            return False, str(exc)
        return True, f"Connected as {me.get('email')}"


def _envelope(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    parts = [str(body.get(k)) for k in ("error", "description", "details") if body.get(k)]
    return f"HTTP {response.status_code} " + "; ".join(parts)
