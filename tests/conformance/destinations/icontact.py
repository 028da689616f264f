"""iContact Export Audience to List: subscriptions, exits left alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, count_bodies, valid_email


def icontact(stands: Stands) -> Target:
    ic = stands.icontact_stand
    secret = f"ic-{stands.name}-pw"
    app_id, username, _ = ic.credentials
    ic.credentials = (app_id, username, secret)
    stands.monkeypatch.setenv("AIRFLOW_CONN_ICONTACT_CONFORMANCE", json.dumps(ic.connection()))
    listing = ic.data.add_list(stands.name)
    list_id = str(listing["listId"])
    posted = count_bodies(ic, "subscriptions_post", lambda request: len(ic._items(request, "subscription")))

    def held() -> set[str]:
        return {ic.data.contacts[cid]["email"] for cid in ic.data.subscribers(list_id)}

    def state() -> dict[str, bytes]:
        return {"subscribers": json.dumps(sorted(held())).encode()}

    def break_credentials() -> None:
        ic.credentials = (app_id, username, f"{secret}-rotated")

    @contextmanager
    def interrupt() -> Iterator[None]:
        ic.faults.add("5xx", status=503, path_regex=r"/subscriptions", method="POST", after=1, times=None)
        try:
            yield
        finally:
            ic.faults.clear()

    config = {
        "type": "icontact_export",
        "audience": AUDIENCE,
        "icontact_conn_id": "icontact_conformance",
        "destination_list": list_id,
        "batch_size": 50,
    }
    return Target(config, secret, held, lambda: sum(posted), state, break_credentials, interrupt)


DESTINATION = Destination(
    "icontact_export", "icontact_export", "churn", icontact, valid_email, stand="icontact_stand"
)
