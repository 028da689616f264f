"""The Airflow REST API of the deployment itself, for what a task cannot do through the Task SDK.

Airflow 3's execution API (what a task talks to) can set a note only on a DAG run it *triggers*
(``TriggerDAGRunPayload.note``); it has no call that changes the note of the running DAG run, and
tasks have no metadata-database access. The public REST API has it:
``PATCH /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}?update_mask=note`` with ``{"note": ...}``
(``DAGRunPatchBody``, at most 1000 characters), authenticated by a JWT from ``POST /auth/token``
(``{"username", "password"}``, as the simple and FAB auth managers take it).

The connection (type ``http``): Host = the API server's base URL (e.g. ``http://airflow-apiserver:8080``),
Login / Password = a user allowed to edit DAG runs.
"""

from __future__ import annotations

from typing import Any

import requests
from airflow.sdk import BaseHook

NOTE_MAX_CHARS = 1000


class AirflowApiHook(BaseHook):
    """Sets DAG run notes through the deployment's public REST API (an ``http`` connection).

    :param airflow_api_conn_id: the ``http`` connection of the API server (Host, Login, Password).
    :param timeout: seconds per request.
    """

    conn_name_attr = "airflow_api_conn_id"
    default_conn_name = "airflow_api"

    def __init__(self, airflow_api_conn_id: str = default_conn_name, timeout: float = 10.0) -> None:
        super().__init__()
        self.airflow_api_conn_id = airflow_api_conn_id
        self.timeout = timeout
        self._base_url: str | None = None
        self._token: str | None = None

    def base_url(self) -> str:
        """The API server's base URL from the connection's Host (a scheme added when missing)."""
        if self._base_url is None:
            conn = self.get_connection(self.airflow_api_conn_id)
            host = (conn.host or "").rstrip("/")
            if not host:
                raise ValueError(
                    f"connection '{self.airflow_api_conn_id}' has no Host; set it to the Airflow API "
                    "server's base URL, e.g. http://airflow-apiserver:8080"
                )
            if "://" not in host:
                host = f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
            self._base_url = host
        return self._base_url

    def token(self) -> str:
        """A JWT from ``POST /auth/token`` with the connection's Login and Password."""
        if self._token is None:
            conn = self.get_connection(self.airflow_api_conn_id)
            response = requests.post(
                f"{self.base_url()}/auth/token",
                json={"username": conn.login, "password": conn.password},
                timeout=self.timeout,
            )
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def set_dag_run_note(self, dag_id: str, run_id: str, note: str) -> dict[str, Any]:
        """Replace the note of one DAG run (cut to the API's 1000 characters); return the run.

        :param dag_id: the DAG.
        :param run_id: the DAG run.
        :param note: the note (Markdown, as the UI renders it).
        """
        if len(note) > NOTE_MAX_CHARS:
            note = note[: NOTE_MAX_CHARS - 1] + "…"
        response = requests.patch(
            f"{self.base_url()}/api/v2/dags/{dag_id}/dagRuns/{requests.utils.quote(run_id, safe='')}",
            params={"update_mask": "note"},
            json={"note": note},
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=self.timeout,
        )
        response.raise_for_status()
        return dict(response.json())
