"""A job's DB URL: the database endpoint a job names, over the connection's user and password.

Redshift's endpoint reads ``cluster.id.region.redshift.amazonaws.com:5439/dev`` (the form the
Redshift console shows; a ``jdbc:redshift://``, ``redshift://``, ``postgres://`` or
``postgresql://`` prefix is accepted too). :func:`parse_db_url` splits it into host, port and
database and refuses one that carries a user or password: the credentials stay on the Airflow
connection (and out of job files and logs). :func:`sql_connection` opens the connection's DB-API
connection with the host, port and database replaced.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

_PREFIX = re.compile(r"^(jdbc:)?(redshift|postgres|postgresql)://", re.IGNORECASE)
_URL = re.compile(r"^(?P<host>[A-Za-z0-9.-]+)(:(?P<port>\d{1,5}))?(/(?P<database>[A-Za-z0-9_$-]+))?/?$")


@dataclass(frozen=True)
class DbUrl:
    """Host, port and database of a DB URL."""

    host: str
    port: int | None
    database: str | None


def parse_db_url(text: str) -> DbUrl:
    """Split ``host[:port][/database]``; a ``ValueError`` says what is wrong and the form to use."""
    rest = _PREFIX.sub("", text.strip())
    if "@" in rest:
        raise ValueError(
            "db_url must not carry a user or password: keep them on the Airflow connection and set "
            "db_url to host:port/database"
        )
    match = _URL.match(rest.split("?", 1)[0])
    if not match:
        raise ValueError(
            f"db_url {text!r} is not an endpoint: use host:port/database, e.g. "
            "examplecluster.abc123.us-east-2.redshift.amazonaws.com:5439/dev"
        )
    port = match["port"]
    return DbUrl(match["host"], int(port) if port else None, match["database"])


def check_db_url(value: str | None) -> str | None:
    """A config validator: ``value`` unchanged when it parses (or is empty)."""
    if value:
        parse_db_url(value)
    return value or None


def sql_connection(conn_id: str, db_url: str | None = None) -> Any:
    """The DB-API connection of Airflow connection ``conn_id``, at ``db_url`` when given.

    :param conn_id: a ``postgres`` or ``redshift`` Airflow connection (user, password, extras).
    :param db_url: ``host[:port][/database]`` replacing the connection's host, port and database.
    """
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    if not db_url:
        return connection.get_hook().get_conn()
    url = parse_db_url(db_url)
    connection = deepcopy(connection)
    connection.host = url.host
    connection.port = url.port or connection.port
    connection.schema = url.database or connection.schema
    hook = connection.get_hook(hook_params={"connection": connection})  # DbApiHook's own connection
    if "conn" in dir(type(hook)):
        hook.__dict__["conn"] = connection  # RedshiftSQLHook reads its cached ``conn`` instead
    return hook.get_conn()
