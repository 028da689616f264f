"""Salesforce Export Audiences on the HTTPS Bulk API 2.0 stand-in: members upserted into a custom object
by an External ID; an exit sets the membership checkbox false (semantic churn: held = records whose
checkbox is true; received = rows the ingest jobs reported in ``successfulResults``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, valid_email


@pytest.fixture(scope="session")
def salesforce_stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lytics_sandbox.salesforce import SalesforceSandbox

    with SalesforceSandbox(tmp_path_factory.mktemp("salesforce_tls")) as stand:
        yield stand


def salesforce(stands: Stands) -> Target:
    from lytics_sandbox.salesforce import SObject

    stand = stands.salesforce_stand
    name = f"Member_{stands.name}__c"
    stand.objects[name] = SObject(
        name,
        {
            "Id": "id",
            "CreatedDate": "datetime",
            "SystemModstamp": "datetime",
            "Lytics_UID__c": "string",
            "Email__c": "email",
            "First_Name__c": "string",
            "In_Audience__c": "boolean",
        },
        external_ids=("Lytics_UID__c",),
    )
    secret = f"sf-{stands.name}-pw"
    stand.password = secret
    stands.monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stand.ca_file))
    stands.monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_CONFORMANCE", json.dumps(stand.connection()))

    def held() -> set[str]:
        records = stand.objects[name].records.values()
        return {r["Email__c"] for r in records if r.get("In_Audience__c") == "true"}

    def received() -> int:
        return sum(len(job.successes) for job in list(stand.jobs.values()) if job.info.get("object") == name)

    def state() -> dict[str, bytes]:
        return {"records": json.dumps(stand.objects[name].records, sort_keys=True).encode()}

    def break_credentials() -> None:
        stand.password = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        stand.faults.add("5xx", status=503, path_regex=r"/jobs/ingest/\w+/batches$", after=1, times=None)
        try:
            yield
        finally:
            stand.faults.clear()

    config = {
        "type": "salesforce_export",
        "audience": AUDIENCE,
        "salesforce_conn_id": "salesforce_conformance",
        "salesforce_object": name,
        "external_id_field": "Lytics_UID__c",
        "mapping": {"email": "Email__c", "first_name": "First_Name__c"},
        "membership_field": "In_Audience__c",
        "batch_bytes": 2048,
        "poll_interval": 0.01,
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


DESTINATION = Destination(
    "salesforce_export",
    "salesforce_export",
    "churn",
    salesforce,
    valid_email,
    removes_exits=True,
    stand="salesforce_stand",
)
