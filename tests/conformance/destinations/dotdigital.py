"""Dotdigital Export Contacts: contacts in an address book, exits removed (tracked removals)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from lytics_sandbox.httpserver import Request, Response
from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, valid_email


def dotdigital(stands: Stands) -> Target:
    from lytics_provider.operators import dotdigital as operators
    from lytics_sandbox.dotdigital import connection_json

    dd = stands.dotdigital_stand
    for value in vars(operators).values():  # bulk-import status polls without the 15 s wait
        if isinstance(value, type) and "sleep" in vars(value):
            stands.monkeypatch.setattr(value, "sleep", staticmethod(lambda seconds: None))
    secret = f"dd-{stands.name}-pw"
    dd._password = secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_DOTDIGITAL_CONFORMANCE", connection_json(dd))
    book_name = f"Lytics {stands.name}"
    imports_before = set(dd.imports)
    removed: list[int] = []
    for index, route in enumerate(dd.routes):
        if route.name.endswith("/contacts/delete"):
            handler = route.handler

            def counted(request: Request, handler: Any = handler) -> Response:
                response = handler(request)
                if 200 <= response.status < 300:
                    removed.append(len(json.loads(request.body or b"[]")))
                return response

            dd.routes[index] = replace(route, handler=counted)

    def book() -> Any:
        return dd.book_by_name(book_name)

    def held() -> set[str]:
        found = book()
        return {e for e, status in dd.members(found.id).items() if status == "Subscribed"} if found else set()

    def received() -> int:
        return sum(job.rows for key, job in dd.imports.items() if key not in imports_before) + sum(removed)

    def state() -> dict[str, bytes]:
        found = book()
        return {"members": json.dumps(dd.members(found.id) if found else {}, sort_keys=True).encode()}

    def break_credentials() -> None:
        dd._password = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        dd.faults.add("5xx", status=503, path_regex=r"/v2/contacts/import/[^/]+$", method="GET", times=None)
        try:
            yield
        finally:
            dd.faults.clear()

    config = {
        "type": "dotdigital_export_contacts",
        "audience": AUDIENCE,
        "dotdigital_conn_id": "dotdigital_conformance",
        "address_book_name": book_name,
        "create_address_book": True,
        "on_exit": "remove",
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


DESTINATION = Destination(
    "dotdigital_export_contacts",
    "dotdigital_export_contacts",
    "churn",
    dotdigital,
    valid_email,
    removes_exits=True,
    stand="dotdigital_stand",
)
