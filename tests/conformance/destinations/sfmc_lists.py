"""Salesforce Marketing Cloud Export Lists: members kept as subscribers on a list, exits removed.

``held()`` is the subscriber keys on the list, ``received()`` every subscriber an answered SOAP
``Create`` (enter) or ``Update`` (exit) carried.
"""

from __future__ import annotations

import json
import re

from tests.conformance.destinations import Destination, Stands, Target, count_bodies, valid_email
from tests.conformance.destinations.sfmc import connect, interrupter, job_config

LIST_ID = "4321"


def _subscribers(body: bytes) -> int:
    """Subscribers a SOAP call carried (none for the list lookup)."""
    return len(re.findall(rb"<(?:\w+:)?SubscriberKey>", body))


def export_lists(stands: Stands) -> Target:
    sandbox, secret, break_credentials = connect(stands)
    sandbox.data.add_list(LIST_ID, f"Lytics {stands.name}")
    created = count_bodies(sandbox, "soap", lambda request: _subscribers(request.body))

    def held() -> set[str]:
        return set(sandbox.data.list_members.get(LIST_ID, {}))

    def state() -> dict[str, bytes]:
        return {"list": json.dumps(sorted(sandbox.data.list_members.get(LIST_ID, {}).items())).encode()}

    # the list lookup and the first batch are answered, then the SOAP endpoint fails
    interrupt = interrupter(sandbox, r"/Service\.asmx", after=2)
    config = job_config("sfmc_export_lists", list_id=LIST_ID, batch_size=50)
    return Target(config, secret, held, lambda: sum(created), state, break_credentials, interrupt)


DESTINATION = Destination(
    "sfmc_export_lists",
    "sfmc_export_lists",
    "churn",
    export_lists,
    valid_email,
    removes_exits=True,
    stand="sfmc_stand",
)
