"""Mailchimp Export Audiences: members of a Mailchimp audience carrying the audience's tag; exits lose
the tag (only members the job tagged).

``held()`` is the emails carrying the tag; ``received()`` counts the batch operations Mailchimp
accepted for a member: member upserts (enters) and tag removals (exits).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, valid_email


@pytest.fixture(scope="session")
def mailchimp_stand() -> Iterator[Any]:
    from lytics_sandbox.mailchimp import MailchimpSandbox

    with MailchimpSandbox() as sandbox:
        yield sandbox


def mailchimp(stands: Stands) -> Target:
    from lytics_provider.transfers.lytics_to_mailchimp import LyticsToMailchimpOperator

    mc = stands.mailchimp_stand
    original_key = mc.api_key
    stands.cleanup.callback(setattr, mc, "api_key", original_key)
    secret = f"{stands.name}secret-us21"
    mc.api_key = secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_CONFORMANCE", json.dumps(mc.connection()))
    stands.monkeypatch.setattr(LyticsToMailchimpOperator, "sleep", staticmethod(lambda seconds: None))
    audience = mc.add_audience(f"Lytics {stands.name}")
    before = {kind: mc.accepted(kind) for kind in ("member_put", "member_untag")}

    def held() -> set[str]:
        return mc.tagged(audience.id, stands.name)

    def received() -> int:
        return sum(mc.accepted(kind) - count for kind, count in before.items())

    def state() -> dict[str, bytes]:
        members = {m.email_address: [m.status, sorted(m.tags)] for m in audience.members.values()}
        return {"members": json.dumps(members, sort_keys=True).encode()}

    def break_credentials() -> None:
        mc.api_key = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        mc.faults.add(
            "5xx", status=503, path_regex=r"/3\.0/batches/[^/]+$", method="GET", after=1, times=None
        )
        try:
            yield
        finally:
            mc.faults.clear()

    config = {
        "type": "mailchimp_export",
        "audience": AUDIENCE,
        "mailchimp_conn_id": "mailchimp_conformance",
        "mailchimp_list": audience.id,
        "tag": stands.name,
        "batch_size": 50,
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


DESTINATION = Destination(
    "mailchimp_export",
    "mailchimp_export",
    "churn",
    mailchimp,
    valid_email,
    removes_exits=True,
    stand="mailchimp_stand",
)
