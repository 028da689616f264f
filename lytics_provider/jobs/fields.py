"""Config fields and field checks that several job types declare alike.

A job type spells its own options; what it shares with others (a connection id, a "since" date
in one of the two accepted forms) comes from here, so the rule lives once:
``snowflake_conn_id: str = connection_field("snowflake_default", "...")``,
``_check_since = field_validator("since")(check_rfc3339)``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field


def connection_field(default: str, description: str) -> Any:
    """A required-non-empty Airflow connection id field with its default connection name.

    :param default: the connection id used when the config names none.
    :param description: the field's description in the JSON Schema.
    """
    return Field(default=default, min_length=1, description=description)


def check_rfc3339(value: str | None) -> str | None:
    """Validator: an RFC 3339 date-time (``YYYY-MM-DDThh:mm:ss+00:00``), or None."""
    from lytics_provider.pipeline.timestamps import parse_rfc3339

    parse_rfc3339(value)
    return value


def check_listing_since(value: str | None) -> str | None:
    """Validator: a file listing's oldest date, ``yyyy/mm/dd HH:MM/SS``, or None."""
    from lytics_provider.files.listing import parse_since

    parse_since(value)
    return value
