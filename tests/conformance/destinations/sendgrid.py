"""SendGrid Export Audiences: the audience's segment (``lytics_segments`` contains the audience id).

``held()`` is the emails the segment's query matches; ``received()`` counts the contacts SendGrid
accepted in upsert requests (enters, and exits whose ``lytics_segments`` lost the audience id).
Contacts are never deleted: an exit only takes the id out of the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, valid_email


@pytest.fixture(scope="session")
def sendgrid_stand() -> Iterator[Any]:
    from lytics_sandbox.sendgrid import SendGridSandbox

    with SendGridSandbox() as sandbox:
        yield sandbox


def sendgrid(stands: Stands) -> Target:
    from lytics_provider.transfers.lytics_to_sendgrid import LyticsToSendGridOperator

    sg = stands.sendgrid_stand
    sg.reset()
    original_key = sg.api_key
    stands.cleanup.callback(setattr, sg, "api_key", original_key)
    secret = f"SG.{stands.name}-secret"
    sg.api_key = secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_CONFORMANCE", json.dumps(sg.connection()))
    stands.monkeypatch.setattr(LyticsToSendGridOperator, "sleep", staticmethod(lambda seconds: None))

    def held() -> set[str]:
        found = [s["id"] for s in sg.segments.values() if s["name"] == stands.name]
        return sg.segment_members(found[0]) if found else set()

    def state() -> dict[str, bytes]:
        contacts = {e: sorted(c.custom_fields.values()) for e, c in sg.contacts.items()}
        return {
            "contacts": json.dumps(contacts, sort_keys=True).encode(),
            "segments": json.dumps(sg.segments).encode(),
        }

    def break_credentials() -> None:
        sg.api_key = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        sg.faults.add("5xx", status=503, path_regex=r"/contacts/imports/", method="GET", after=1, times=None)
        try:
            yield
        finally:
            sg.faults.clear()

    config = {
        "type": "sendgrid_export",
        "audience": AUDIENCE,
        "sendgrid_conn_id": "sendgrid_conformance",
        "segment_name": stands.name,
        "batch_size": 50,
    }
    return Target(config, secret, held, lambda: sum(sg.upserted), state, break_credentials, interrupt)


DESTINATION = Destination(
    "sendgrid_export",
    "sendgrid_export",
    "churn",
    sendgrid,
    valid_email,
    removes_exits=True,
    stand="sendgrid_stand",
)
