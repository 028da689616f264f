"""Small stand-ins for Airflow's runtime context, so operators run without a metadata DB."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lytics_provider.pipeline import http


class FakeTaskInstance:
    """Keeps XComs in a dict: ``xcom_pull(task_ids=...)`` returns what a task returned."""

    def __init__(self, xcoms: dict[str, Any] | None = None) -> None:
        self.xcoms: dict[str, Any] = dict(xcoms or {})

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms.get(task_ids)

    def xcom_push(self, key: str, value: Any, **_: Any) -> None:
        self.xcoms[key] = value


def make_context(
    run_id: str = "manual__2026-11-23T00:00:00+00:00",
    params: dict[str, Any] | None = None,
    xcoms: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A context dict with what the provider's operators read."""
    import pendulum

    logical = pendulum.datetime(2026, 11, 23, tz="UTC")
    return {
        "run_id": run_id,
        "params": dict(params or {}),
        "ti": FakeTaskInstance(xcoms),
        "logical_date": logical,
        "data_interval_start": logical,
        "data_interval_end": logical,
        "dag_run": None,
        **extra,
    }


def run_task(operator: Any, context: dict[str, Any], task_id: str | None = None) -> Any:
    """Execute ``operator`` and store its return value as its XCom, as Airflow would (JSON-safe)."""
    result = operator.execute(context)
    json.dumps(result)
    context["ti"].xcoms[task_id or operator.task_id] = result
    return result


def lytics_conn(base_url: str, token: str = "sandbox-token", **extra: Any) -> str:
    """The JSON of a ``lytics`` connection for an ``AIRFLOW_CONN_*`` variable."""
    return json.dumps(
        {"conn_type": "lytics", "host": base_url, "password": token, "extra": {"bulk_url": base_url, **extra}}
    )


def serve_connection(monkeypatch: Any, tmp_path: Path, conn_id: str, connection: Mapping[str, Any]) -> None:
    """For one test: ``conn_id`` is ``connection`` (a stand-in's), the jobs keep their state in the
    test's own data directory, and retries skip their backoff waits."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)


def audience_emails(lytics: Any, slug: str) -> tuple[set[str], set[str]]:
    """The lower-cased emails of ``slug``'s members: well formed (an ``@`` and a dot in the domain),
    and the rest."""
    valid: set[str] = set()
    invalid: set[str] = set()
    for member in lytics.expected_members(slug):
        email = str(member.get("email") or "").lower()
        (valid if "@" in email and "." in email.split("@")[-1] else invalid).add(email)
    return valid, invalid
