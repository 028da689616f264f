"""A Databricks SQL Statement Execution API stand-in that runs the statements on DuckDB.

Contract (the vendor's published reference):
https://docs.databricks.com/api/workspace/statementexecution (``POST /api/2.0/sql/statements``,
``GET /api/2.0/sql/statements/{statement_id}``, ``POST .../{statement_id}/cancel``,
``GET .../{statement_id}/result/chunks/{chunk_index}``) and
https://docs.databricks.com/en/sql/language-manual/delta-copy-into.html (``COPY INTO``).

What it follows: Bearer Personal Access Token auth (401 with an ``error_code``/``message`` body),
the ``warehouse_id`` of the request (404 for an unknown one), asynchronous statements
(``wait_timeout: "0s"`` answers ``PENDING``; the next ``GET`` sees the final state), the
``StatementResponse`` shape (``status.state``, ``status.error{error_code, message, sql_state}``,
``manifest.schema.columns[{name, type_name}]``, ``manifest.chunks``, ``total_row_count``) and
INLINE ``JSON_ARRAY`` results as strings, split into chunks of ``chunk_rows`` rows with
``next_chunk_index``. Named parameter markers (``:name`` with ``parameters[{name, value, type}]``),
the catalog / schema defaults and three-part names are honoured (a catalog is a DuckDB database).

Translated statements: ``CREATE TABLE name`` without columns makes a placeholder whose columns
come from the first ``COPY INTO``; ``COPY INTO name FROM 's3://bucket/key' FILEFORMAT = CSV
FORMAT_OPTIONS ('header' = 'true', 'inferSchema' = 'true', ...)`` reads the staged object from
the S3 endpoint given (moto) and loads it with DuckDB's CSV type detection; backtick identifiers
become double-quoted ones. Everything else runs as DuckDB SQL.
"""

from __future__ import annotations

import re
import tempfile
import threading
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

_PLACEHOLDER = re.compile(
    r"^\s*CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(?P<name>[^\s(]+)\s*;?\s*$", re.I | re.S
)
_COPY = re.compile(
    r"^\s*COPY\s+INTO\s+(?P<name>\S+)\s+FROM\s+'(?P<url>s3://[^']+)'\s+FILEFORMAT\s*=\s*CSV(?P<rest>.*)$",
    re.I | re.S,
)
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_TYPE_NAMES = {
    "BIGINT": "LONG",
    "INTEGER": "INT",
    "SMALLINT": "SHORT",
    "TINYINT": "BYTE",
    "VARCHAR": "STRING",
    "DOUBLE": "DOUBLE",
    "FLOAT": "FLOAT",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
}


DEFAULT_CATALOG = "main"


class SqlError(Exception):
    """A statement the warehouse refuses: ``error_code`` and ``sql_state`` as the API reports them."""

    def __init__(self, message: str, error_code: str = "BAD_REQUEST", sql_state: str = "42000") -> None:
        super().__init__(message)
        self.error_code = error_code
        self.sql_state = sql_state


def _cell(value: Any) -> str | None:
    """A value as the JSON_ARRAY format sends it (every value a string)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


class DatabricksSandbox(SandboxHTTPServer):
    """The statement API of one SQL warehouse on an in-memory DuckDB.

    :param token: the Personal Access Token accepted.
    :param warehouse_id: the warehouse id accepted in ``warehouse_id``.
    :param s3_endpoint: S3 endpoint (moto) that ``COPY INTO`` reads ``s3://`` objects from.
    :param chunk_rows: rows per result chunk.
    """

    def __init__(
        self,
        token: str = "dapi-sandbox-token",
        warehouse_id: str = "abc123def456",
        s3_endpoint: str | None = None,
        chunk_rows: int = 1000,
        **kwargs: Any,
    ) -> None:
        import duckdb

        super().__init__(**kwargs)
        self.token = token
        self.warehouse_id = warehouse_id
        self.s3_endpoint = s3_endpoint
        self.chunk_rows = chunk_rows
        self.db = duckdb.connect(":memory:")
        self.default_db = str(self.db.execute("SELECT current_database()").fetchone()[0])
        self.db_lock = threading.RLock()
        self.statements: dict[str, dict[str, Any]] = {}
        self.executed: list[str] = []
        self.placeholders: set[str] = set()
        self.catalogs: set[str] = set()
        self.add_route("POST", r"/api/2\.0/sql/statements/?", self._execute, "execute")
        self.add_route("GET", r"/api/2\.0/sql/statements/(?P<id>[^/]+)", self._get, "get")
        self.add_route("POST", r"/api/2\.0/sql/statements/(?P<id>[^/]+)/cancel", self._cancel, "cancel")
        self.add_route(
            "GET", r"/api/2\.0/sql/statements/(?P<id>[^/]+)/result/chunks/(?P<n>\d+)", self._chunk, "chunk"
        )

    @property
    def http_path(self) -> str:
        """The HTTP Path of the warehouse."""
        return f"/sql/1.0/warehouses/{self.warehouse_id}"

    def connection(self, token: str | None = None) -> dict[str, Any]:
        """An Airflow connection (JSON form) for this stand-in."""
        return {
            "conn_type": "lytics_databricks",
            "host": self.host,
            "port": self.port,
            "schema": "http",
            "password": token or self.token,
            "extra": {"http_path": self.http_path},
        }

    # -- the warehouse -------------------------------------------------------------------------
    def create_schema(self, catalog: str, schema: str) -> None:
        """A catalog (attached DuckDB database) and a schema in it."""
        with self.db_lock:
            # Databricks' default catalog is "main"; DuckDB reserves that name for its own default
            # database, which already answers to it, so only other catalogs are attached.
            if catalog not in self.catalogs and catalog != DEFAULT_CATALOG:
                self.db.execute(f"ATTACH ':memory:' AS \"{catalog}\"")
                self.catalogs.add(catalog)
            self.db.execute(f'CREATE SCHEMA IF NOT EXISTS "{catalog}"."{schema}"')

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run SQL directly on the warehouse (for test set-up and read-back)."""
        with self.db_lock:
            return self.db.execute(sql, params).fetchall()

    def tables(self, catalog: str, schema: str) -> list[str]:
        """The tables of ``catalog.schema``."""
        rows = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ?",
            [self.db_name(catalog), schema],
        )
        return sorted(r[0] for r in rows)

    def db_name(self, catalog: str) -> str:
        """The DuckDB database holding ``catalog``."""
        return self.default_db if catalog == DEFAULT_CATALOG else catalog

    # -- routes ----------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        if request.header("Authorization") != f"Bearer {self.token}":
            return json_response(
                {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}, status=401
            )
        return None

    def _execute(self, request: Request) -> Response:
        body = request.json() or {}
        if body.get("warehouse_id") != self.warehouse_id:
            return json_response(
                {
                    "error_code": "RESOURCE_DOES_NOT_EXIST",
                    "message": f"Warehouse {body.get('warehouse_id')!r} does not exist.",
                },
                status=404,
            )
        statement = str(body.get("statement") or "")
        if not statement.strip():
            return json_response(
                {"error_code": "INVALID_PARAMETER_VALUE", "message": "statement is empty"}, 400
            )
        sid = uuid.uuid4().hex
        record = self._run(statement, body)
        record["statement_id"] = sid
        record["polled"] = False
        self.statements[sid] = record
        return json_response({"statement_id": sid, "status": {"state": "PENDING"}})

    def _run(self, statement: str, body: dict[str, Any]) -> dict[str, Any]:
        self.executed.append(statement)
        try:
            columns, types, rows = self._execute_sql(statement, body)
        except SqlError as exc:
            return {
                "state": "FAILED",
                "error": exc.error_code,
                "message": str(exc),
                "sql_state": exc.sql_state,
            }
        except Exception as exc:  # DuckDB's own errors
            code, state = _classify(exc)
            return {"state": "FAILED", "error": code, "message": str(exc).split("\n")[0], "sql_state": state}
        return {"state": "SUCCEEDED", "columns": columns, "types": types, "rows": rows}

    def _get(self, request: Request) -> Response:
        record = self.statements.get(request.params["id"])
        if record is None:
            return json_response(
                {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such statement"}, 404
            )
        if not record["polled"]:  # the first poll still sees it running
            record["polled"] = True
            return json_response({"statement_id": record["statement_id"], "status": {"state": "RUNNING"}})
        return json_response(self._response(record))

    def _cancel(self, request: Request) -> Response:
        record = self.statements.get(request.params["id"])
        if record is not None and record["state"] in ("PENDING", "RUNNING"):
            record["state"] = "CANCELED"
        return json_response({})

    def _chunk(self, request: Request) -> Response:
        record = self.statements.get(request.params["id"])
        index = int(request.params["n"])
        if record is None or record["state"] != "SUCCEEDED" or index >= self._chunk_count(record):
            return json_response({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such chunk"}, 404)
        return json_response(self._chunk_body(record, index))

    # -- responses -------------------------------------------------------------------------------
    def _chunk_count(self, record: dict[str, Any]) -> int:
        return max(1, -(-len(record["rows"]) // self.chunk_rows))

    def _chunk_body(self, record: dict[str, Any], index: int) -> dict[str, Any]:
        start = index * self.chunk_rows
        rows = record["rows"][start : start + self.chunk_rows]
        body: dict[str, Any] = {
            "chunk_index": index,
            "row_offset": start,
            "row_count": len(rows),
            "data_array": [[_cell(v) for v in row] for row in rows],
        }
        if index + 1 < self._chunk_count(record):
            body["next_chunk_index"] = index + 1
            body["next_chunk_internal_link"] = (
                f"/api/2.0/sql/statements/{record['statement_id']}/result/chunks/{index + 1}"
            )
        return body

    def _response(self, record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"statement_id": record["statement_id"], "status": {"state": record["state"]}}
        if record["state"] == "FAILED":
            out["status"]["error"] = {
                "error_code": record["error"],
                "message": record["message"],
                "sql_state": record["sql_state"],
            }
            return out
        if record["state"] != "SUCCEEDED":
            return out
        count = self._chunk_count(record)
        out["manifest"] = {
            "format": "JSON_ARRAY",
            "schema": {
                "column_count": len(record["columns"]),
                "columns": [
                    {"name": n, "position": i, "type_name": t}
                    for i, (n, t) in enumerate(zip(record["columns"], record["types"], strict=True))
                ],
            },
            "total_chunk_count": count,
            "chunks": [
                {
                    "chunk_index": i,
                    "row_offset": i * self.chunk_rows,
                    "row_count": len(record["rows"][i * self.chunk_rows : (i + 1) * self.chunk_rows]),
                }
                for i in range(count)
            ],
            "total_row_count": len(record["rows"]),
            "truncated": False,
        }
        out["result"] = self._chunk_body(record, 0)
        return out

    # -- SQL ---------------------------------------------------------------------------------------
    def _execute_sql(self, statement: str, body: dict[str, Any]) -> tuple[list[str], list[str], list[Any]]:
        sql = statement.strip().rstrip(";").replace("`", '"')
        with self.db_lock:
            self._use(body)
            placeholder = _PLACEHOLDER.match(sql)
            if placeholder:
                name = placeholder.group("name")
                if self._exists(name):
                    if placeholder.group(1):
                        return [], [], []
                    raise SqlError(f"[TABLE_OR_VIEW_ALREADY_EXISTS] {name}", "BAD_REQUEST", "42P07")
                self.placeholders.add(self._canonical(name))
                return [], [], []
            copy = _COPY.match(sql)
            if copy:
                return self._copy_into(copy.group("name"), copy.group("url"))
            if (
                re.match(r"^\s*DROP\s+TABLE", sql, re.I)
                and self._canonical(sql.split()[-1]) in self.placeholders
            ):
                self.placeholders.discard(self._canonical(sql.split()[-1]))
                return [], [], []
            sql, params = _bind(sql, body.get("parameters") or [])
            cursor = self.db.execute(sql, params or None)
            if cursor.description is None:
                return [], [], []
            columns = [d[0] for d in cursor.description]
            types = [_TYPE_NAMES.get(str(d[1]).upper(), str(d[1]).upper()) for d in cursor.description]
            return columns, types, cursor.fetchall()

    def _use(self, body: dict[str, Any]) -> None:
        catalog, schema = body.get("catalog"), body.get("schema")
        if catalog and schema:
            self.db.execute(f'USE "{catalog}"."{schema}"')
        elif catalog:
            self.db.execute(f'USE "{catalog}"')
        elif schema:
            self.db.execute(f'USE "{schema}"')

    def _canonical(self, name: str) -> str:
        return name.replace('"', "").lower()

    def _exists(self, name: str) -> bool:
        if self._canonical(name) in self.placeholders:
            return True
        try:
            self.db.execute(f"SELECT 1 FROM {name} LIMIT 0")
        except Exception:
            return False
        return True

    def _copy_into(self, name: str, url: str) -> tuple[list[str], list[str], list[Any]]:
        import boto3

        if not self.s3_endpoint:
            raise SqlError("COPY INTO needs the stand-in's s3_endpoint", "BAD_REQUEST", "42000")
        bucket, _, key = url[len("s3://") :].partition("/")
        client = boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            raise SqlError(f"[PATH_NOT_FOUND] Path does not exist: {url}", "BAD_REQUEST", "42K03") from None
        except client.exceptions.NoSuchBucket:
            raise SqlError(f"[PATH_NOT_FOUND] Path does not exist: {url}", "BAD_REQUEST", "42K03") from None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(key).name
            path.write_bytes(body)
            source = f"read_csv('{path}', header = true, auto_detect = true, quote = '\"', escape = '\"')"
            if self._canonical(name) in self.placeholders:
                self.db.execute(f"CREATE TABLE {name} AS SELECT * FROM {source}")
                self.placeholders.discard(self._canonical(name))
            elif not self._exists(name):
                raise SqlError(f"[TABLE_OR_VIEW_NOT_FOUND] {name}", "BAD_REQUEST", "42P01")
            else:
                self.db.execute(f"INSERT INTO {name} BY NAME SELECT * FROM {source}")
            loaded = self.db.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
        return ["num_affected_rows", "num_inserted_rows"], ["LONG", "LONG"], [(loaded, loaded)]


def _bind(sql: str, parameters: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """``:name`` markers as DuckDB ``$name`` parameters, cast to their declared type."""
    types = {str(p["name"]): str(p.get("type") or "STRING").upper() for p in parameters}
    values: dict[str, Any] = {}
    for p in parameters:
        value = p.get("value")
        if value is not None and types[str(p["name"])] == "TIMESTAMP":
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            value = moment.isoformat()
        values[str(p["name"])] = value

    def marker(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in types:
            raise SqlError(
                f"[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {name}", "BAD_REQUEST", "42P02"
            )
        kind = "VARCHAR" if types[name] == "STRING" else types[name]
        return f"CAST(${name} AS {kind})"

    return _PARAM.sub(marker, sql), values


def _classify(exc: Exception) -> tuple[str, str]:
    """The API's ``error_code`` and SQLSTATE for a DuckDB error."""
    name = type(exc).__name__
    if name == "CatalogException":
        return "BAD_REQUEST", "42P01"
    if name in ("ParserException", "BinderException"):
        return "BAD_REQUEST", "42601"
    if name in ("ConversionException", "InvalidInputException"):
        return "BAD_REQUEST", "22000"
    return "INTERNAL_ERROR", "XX000"
