"""A loopback stand-in for the two Airflow 3 REST API calls that set a DAG run's note.

Contract followed: Apache Airflow 3.3 public API (the OpenAPI served at ``/openapi.json`` and
documented at https://airflow.apache.org/docs/apache-airflow/stable/stable-rest-api-ref.html),
and its simple auth manager's token endpoint
(https://airflow.apache.org/docs/apache-airflow/stable/security/api.html):

* ``POST /auth/token`` with ``{"username", "password"}`` -> ``201 {"access_token": ...}``; wrong
  credentials -> ``401 {"detail": "Invalid credentials"}``;
* ``PATCH /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}?update_mask=note`` with a ``DAGRunPatchBody``
  (``state`` and ``note`` only, extra keys refused; ``note`` at most 1000 characters) and
  ``Authorization: Bearer <token>`` -> ``200`` with the DAG run; no or a wrong token -> ``401``;
  an unknown run -> ``404``; a bad body -> ``422`` with FastAPI's ``{"detail": [...]}``.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any
from urllib.parse import unquote

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

NOTE_MAX = 1000


class AirflowApiSandbox(SandboxHTTPServer):
    """One user and the DAG runs whose notes may be set; notes kept per ``(dag_id, run_id)``.

    :param username: the user ``/auth/token`` accepts.
    :param password: that user's password.
    """

    def __init__(self, username: str = "admin", password: str = "admin", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.password = password
        self.tokens: set[str] = set()
        self.notes: dict[tuple[str, str], str | None] = {}
        self._data_lock = threading.Lock()
        self.add_route("POST", r"/auth/token", self._token, "token")
        self.add_route(
            "PATCH", r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/(?P<run_id>[^/]+)", self._patch_run, "patch_run"
        )

    def add_run(self, dag_id: str, run_id: str) -> None:
        """A DAG run that exists (without a note)."""
        with self._data_lock:
            self.notes[(dag_id, run_id)] = None

    def _token(self, request: Request) -> Response:
        body = request.json() or {}
        if body.get("username") != self.username or body.get("password") != self.password:
            return json_response({"detail": "Invalid credentials"}, 401)
        token = secrets.token_urlsafe(16)
        with self._data_lock:
            self.tokens.add(token)
        return json_response({"access_token": token}, 201)

    def _patch_run(self, request: Request) -> Response:
        auth = request.header("Authorization") or ""
        with self._data_lock:
            known = auth.startswith("Bearer ") and auth[len("Bearer ") :] in self.tokens
        if not known:
            return json_response({"detail": "Not authenticated"}, 401)
        key = (unquote(request.params["dag_id"]), unquote(request.params["run_id"]))
        body = request.json()
        problems = [
            {"type": "extra_forbidden", "loc": ["body", name], "msg": "Extra inputs are not permitted"}
            for name in (body or {})
            if name not in ("state", "note")
        ]
        note = (body or {}).get("note")
        if isinstance(note, str) and len(note) > NOTE_MAX:
            problems.append({"type": "string_too_long", "loc": ["body", "note"], "msg": "too long"})
        if problems:
            return json_response({"detail": problems}, 422)
        with self._data_lock:
            if key not in self.notes:
                return json_response(
                    {"detail": f"The DagRun with dag_id: `{key[0]}` and run_id: `{key[1]}` was not found"},
                    404,
                )
            if request.query.get("update_mask") in (None, "note"):
                self.notes[key] = note
            current = self.notes[key]
        return json_response({"dag_id": key[0], "dag_run_id": key[1], "note": current})
