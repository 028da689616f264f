"""BigQuery Export Audience Changes: CSV batches staged on the GCS emulator, appended by load jobs
on ``FakeBigQuery`` (churn: the members whose latest row is an enter are held; every row counts
as received)."""

from __future__ import annotations

import json
from typing import Any

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, failing
from tests.conformance.destinations._event_readback import held_members
from tests.conformance.destinations.gcs import gcs

TABLE = "lytics.audience_changes"


def email(member: dict[str, Any]) -> str | None:
    """The ID Field's value (``email``)."""
    return str(member.get("email") or "").strip() or None


def bigquery_audience_changes(stands: Stands) -> Target:
    from tests.integration.test_gcs_bigquery import FakeBigQuery

    staging = gcs(stands)
    fake = FakeBigQuery()
    fake.install(stands.monkeypatch)
    config = {
        "type": "bigquery_export_audience_changes",
        "audience": AUDIENCE,
        "gcp_conn_id": "gcp_conformance",
        "project": "test-project",
        "dataset": "lytics",
        "gcs_bucket": staging.config["bucket"],
        "batch_size": 50,
    }

    def rows() -> list[dict[str, Any]]:
        return fake.tables.get(TABLE, [])

    def held() -> set[str]:
        return held_members((r["email"], "exit" if r["exit"] == "true" else "enter") for r in rows())

    def state() -> dict[str, bytes]:
        return {name: json.dumps(table, sort_keys=True).encode() for name, table in fake.tables.items()}

    def interrupt() -> Any:  # the batch is staged, its load job is lost
        from lytics_provider.pipeline.bigquery_loads import BigQueryLoadJobs

        return failing(stands.monkeypatch, BigQueryLoadJobs, "start_load")

    def break_credentials() -> None:
        config["gcs_bucket"] = f"{staging.config['bucket']}-missing"

    return Target(config, staging.secret, held, lambda: len(rows()), state, break_credentials, interrupt)


DESTINATION = Destination(
    "bigquery_export_audience_changes",
    "bigquery_export_audience_changes",
    "churn",
    bigquery_audience_changes,
    email,
    removes_exits=True,
    rejects=False,  # the ID Field is any text; the conformance audience has none missing
    stand="gcs_emulator",
)
