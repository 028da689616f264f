"""Small stand-ins for Airflow's runtime context, so operators run without a metadata DB."""

from __future__ import annotations

import json
from typing import Any


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
