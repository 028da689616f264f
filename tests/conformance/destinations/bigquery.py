"""BigQuery export: files staged on the GCS emulator, load jobs on ``FakeBigQuery``."""

from __future__ import annotations

import json
from typing import Any

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, failing, uid
from tests.conformance.destinations.gcs import gcs


def bigquery(stands: Stands) -> Target:
    """BigQuery: files staged on the GCS emulator, the load jobs on ``FakeBigQuery`` (no emulator
    installs from PyPI), which loads what the job stages, as WRITE_TRUNCATE."""
    from tests.integration.test_gcs_bigquery import FakeBigQuery

    staging = gcs(stands)
    fake = FakeBigQuery()
    fake.install(stands.monkeypatch)
    config = {
        "type": "bigquery_export",
        "audience": AUDIENCE,
        "gcp_conn_id": "gcp_conformance",
        "project": "test-project",
        "dataset": "lytics",
        "gcs_bucket": staging.config["bucket"],
        "fields": ["_uid", "email", "first_name"],
        "export_non_scalar_fields": False,
    }
    users = "lytics.users_conformance"

    def held() -> set[str]:
        return {row["_uid"] for row in fake.tables.get(users, [])}

    def state() -> dict[str, bytes]:
        return {name: json.dumps(rows, sort_keys=True).encode() for name, rows in fake.tables.items()}

    def interrupt() -> Any:  # the files are staged, the load job is lost
        from lytics_provider.pipeline.bigquery_loads import BigQueryLoadJobs

        return failing(stands.monkeypatch, BigQueryLoadJobs, "start_load")

    def break_credentials() -> None:
        config["gcs_bucket"] = f"{staging.config['bucket']}-missing"

    return Target(
        config,
        staging.secret,
        held,
        lambda: sum(len(rows) for rows in fake.tables.values()),
        state,
        break_credentials,
        interrupt,
    )


DESTINATION = Destination(
    "bigquery_export", "bigquery_export", "replace", bigquery, uid, rejects=False, stand="gcs_emulator"
)
