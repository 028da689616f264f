"""SQL statements on a Databricks SQL warehouse through the official ``DatabricksHook``.

The official hook submits, polls and cancels statements of the SQL Statement Execution API
(``post_sql_statement``, ``get_sql_statement_state``, ``cancel_sql_statement``;
``POST /api/2.0/sql/statements``, ``GET /api/2.0/sql/statements/{statement_id}``). This hook adds
what the exports and imports need on top: the warehouse taken from the connection's **HTTP Path**
(``/sql/1.0/warehouses/{id}``), a wait with a timeout that cancels the statement, the result rows
read chunk by chunk (``GET /api/2.0/sql/statements/{id}/result/chunks/{chunk_index}``, INLINE
``JSON_ARRAY``), and errors that say which statement failed and why. A statement that fails for
a reason no retry can fix (a missing catalog, table or privilege; a wrong token) raises
:class:`PermanentTaskFailure`.

Contract: https://docs.databricks.com/api/workspace/statementexecution
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.providers.databricks.hooks.databricks import DatabricksHook

from lytics_provider.connections import ui_field_behaviour
from lytics_provider.hooks.permanent_errors import PermanentTaskFailure

STATEMENTS = "2.0/sql/statements"
# status.error.error_code values that no retry fixes (the others: busy, unavailable, timeouts).
PERMANENT_ERROR_CODES = {"BAD_REQUEST", "NOT_FOUND", "ALREADY_EXISTS", "UNAUTHENTICATED"}
PERMANENT_HTTP = {400, 401, 403, 404}


class StatementFailed(RuntimeError):
    """A statement ended FAILED or CANCELED (``sqlstate`` set when the warehouse gave one)."""

    def __init__(self, message: str, error_code: str = "", sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.sqlstate = sqlstate


@dataclass
class StatementResult:
    """A finished statement: its id, column names and the first chunk of rows (``data_array``)."""

    statement_id: str
    columns: list[str]
    column_types: list[str]
    total_rows: int
    first: dict[str, Any]


def warehouse_id_of(http_path: str) -> str:
    """The SQL warehouse id in an HTTP Path (``/sql/1.0/warehouses/abc123`` -> ``abc123``)."""
    parts = [p for p in (http_path or "").strip().split("/") if p]
    if len(parts) >= 2 and parts[-2] in ("warehouses", "endpoints"):
        return parts[-1]
    raise ValueError(
        f"HTTP Path {http_path!r} does not name a SQL warehouse: copy it from the warehouse's "
        "Connection details, e.g. /sql/1.0/warehouses/1234567890abcdef"
    )


class DatabricksStatementHook(DatabricksHook):
    """Runs SQL on the warehouse of a Databricks connection (Host, HTTP Path, Personal Access Token).

    :param databricks_conn_id: the Airflow connection (host; password = Personal Access Token;
        extra ``http_path``).
    :param http_path: HTTP Path of the SQL warehouse (default: the connection's ``http_path``).
    :param statement_timeout: seconds a statement may run before it is cancelled.
    :param poll_interval: seconds between status polls.
    """

    conn_name_attr = "databricks_conn_id"
    default_conn_name = "databricks_default"
    conn_type = "lytics_databricks"
    hook_name = "Databricks SQL warehouse (Lytics)"

    def __init__(
        self,
        databricks_conn_id: str = default_conn_name,
        *,
        http_path: str | None = None,
        statement_timeout: float = 3600.0,
        poll_interval: float = 1.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retry_delay", 1.0)
        super().__init__(databricks_conn_id=databricks_conn_id, **kwargs)
        self.http_path = http_path
        self.statement_timeout = statement_timeout
        self.poll_interval = poll_interval
        self.calls = 0

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form, as declared in lytics_provider/integrations/databricks.yaml."""
        return ui_field_behaviour(cls.conn_type)

    @property
    def warehouse_id(self) -> str:
        """The SQL warehouse of the HTTP Path."""
        path = self.http_path or self.databricks_conn.extra_dejson.get("http_path") or ""
        return warehouse_id_of(str(path))

    def _do_api_call(
        self, endpoint_info: tuple[str, str], json: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        """The official call, counted; 400/401/403/404 fail the task without retries."""
        from airflow.providers.databricks.hooks.databricks_base import DatabricksApiError

        self.calls += 1
        try:
            return super()._do_api_call(endpoint_info, json, **kw)
        except DatabricksApiError as exc:
            if getattr(exc, "http_status_code", None) in PERMANENT_HTTP:
                raise PermanentTaskFailure(
                    f"Databricks refused {endpoint_info[0]} {endpoint_info[1]}: {exc} "
                    "(check the connection's host, HTTP Path and Personal Access Token)"
                ) from exc
            raise

    # -- statements ----------------------------------------------------------------------------
    def run(
        self,
        statement: str,
        parameters: Sequence[dict[str, Any]] | None = None,
        *,
        catalog: str | None = None,
        schema: str | None = None,
    ) -> StatementResult:
        """Submit ``statement``, wait until it finishes (cancel it after ``statement_timeout``).

        :param statement: one SQL statement (named parameter markers ``:name``).
        :param parameters: ``[{"name", "value", "type"}]`` for the markers.
        :param catalog: default catalog (``USE CATALOG``).
        :param schema: default schema (``USE SCHEMA``).
        """
        body: dict[str, Any] = {
            "warehouse_id": self.warehouse_id,
            "statement": statement,
            "wait_timeout": "0s",
            "disposition": "INLINE",
            "format": "JSON_ARRAY",
        }
        if parameters:
            body["parameters"] = list(parameters)
        if catalog:
            body["catalog"] = catalog
        if schema:
            body["schema"] = schema
        statement_id = self.post_sql_statement(body)
        deadline = time.monotonic() + self.statement_timeout
        while True:
            state = self.get_sql_statement_state(statement_id)
            if state.is_terminal:
                break
            if time.monotonic() > deadline:
                self.cancel_sql_statement(statement_id)
                raise TimeoutError(
                    f"statement {statement_id} ran longer than {self.statement_timeout}s and was "
                    f"cancelled: {_short(statement)}"
                )
            time.sleep(self.poll_interval)
        if not state.is_successful:
            self._raise_failed(statement_id, statement, state)
        response = self._do_api_call(("GET", f"{STATEMENTS}/{statement_id}"))
        manifest = response.get("manifest") or {}
        columns = (manifest.get("schema") or {}).get("columns") or []
        return StatementResult(
            statement_id,
            [str(c["name"]) for c in columns],
            [str(c.get("type_name") or "STRING") for c in columns],
            int(manifest.get("total_row_count") or 0),
            response.get("result") or {},
        )

    def _raise_failed(self, statement_id: str, statement: str, state: Any) -> None:
        response = self._do_api_call(("GET", f"{STATEMENTS}/{statement_id}"))
        error = (response.get("status") or {}).get("error") or {}
        code = str(error.get("error_code") or state.error_code or "")
        message = str(error.get("message") or state.error_message or state.state)
        sqlstate = error.get("sql_state")
        text = (
            f"Databricks statement {statement_id} {state.state} ({code}): {message}; "
            f"statement: {_short(statement)}"
        )
        failure = StatementFailed(text, code, sqlstate)
        if code in PERMANENT_ERROR_CODES:
            raise PermanentTaskFailure(text) from failure
        raise failure

    def rows(self, result: StatementResult) -> Iterator[list[list[Any]]]:
        """The result's rows chunk by chunk (values as the API sends them: strings or null)."""
        chunk = result.first
        while chunk:
            data = chunk.get("data_array") or []
            if data:
                yield data
            nxt = chunk.get("next_chunk_index")
            if nxt is None:
                return
            chunk = self._do_api_call(("GET", f"{STATEMENTS}/{result.statement_id}/result/chunks/{nxt}"))

    def scalar(self, statement: str, **kwargs: Any) -> Any:
        """The first cell of the statement's result (None without rows)."""
        result = self.run(statement, **kwargs)
        for chunk in self.rows(result):
            return chunk[0][0]
        return None

    def test_connection(self) -> tuple[bool, str]:
        """Run ``SELECT 1`` on the warehouse (the UI's Test button)."""
        try:
            value = self.scalar("SELECT 1")
        except Exception as exc:  # the form shows the reason
            return False, str(exc)
        return (True, "Connection successfully tested") if str(value) == "1" else (False, f"got {value!r}")


def _short(statement: str, limit: int = 200) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
