"""The API URL of a REST connection's Host, Schema and Port."""

from __future__ import annotations


def base_url(host: str, schema: str | None, port: int | None) -> str:
    """``scheme://host[:port]`` for a bare host (Schema picks http/https, default https); a host
    with a scheme is used as it is.

    :param host: the connection's Host.
    :param schema: the connection's Schema (``http`` or ``https``; anything else means https).
    :param port: the connection's Port, if any.
    """
    if "://" in host:
        return host
    scheme = schema if schema in ("http", "https") else "https"
    return f"{scheme}://{host}" + (f":{port}" if port else "")
