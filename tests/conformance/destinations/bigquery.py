"""BigQuery export: files staged on the GCS emulator, load jobs on ``FakeBigQuery``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, failing, uid
from tests.conformance.destinations.gcs import gcs


def fake_bigquery(stands: Stands, job_type: str, **options: Any) -> tuple[Any, Target, dict[str, Any]]:
    """``FakeBigQuery`` installed for the test (no emulator installs from PyPI), the GCS emulator
    bucket the job stages its files in, and the job config (dataset ``lytics``, plus ``options``)."""
    from tests.integration.test_gcs_bigquery import FakeBigQuery

    staging = gcs(stands)
    fake = FakeBigQuery()
    fake.install(stands.monkeypatch)
    config = {
        "type": job_type,
        "audience": AUDIENCE,
        "gcp_conn_id": "gcp_conformance",
        "project": "test-project",
        "dataset": "lytics",
        "gcs_bucket": staging.config["bucket"],
        **options,
    }
    return fake, staging, config


def bigquery_target(
    stands: Stands,
    fake: Any,
    staging: Target,
    config: dict[str, Any],
    held: Callable[[], set[str]],
    received: Callable[[], int],
) -> Target:
    """A BigQuery job's target: every table as its state; a lost load job interrupts; a missing
    staging bucket breaks it."""

    def state() -> dict[str, bytes]:
        return {name: json.dumps(rows, sort_keys=True).encode() for name, rows in fake.tables.items()}

    def interrupt() -> Any:  # the files are staged, the load job is lost
        from lytics_provider.pipeline.bigquery_loads import BigQueryLoadJobs

        return failing(stands.monkeypatch, BigQueryLoadJobs, "start_load")

    def break_credentials() -> None:
        config["gcs_bucket"] = f"{staging.config['bucket']}-missing"

    return Target(config, staging.secret, held, received, state, break_credentials, interrupt)


def bigquery(stands: Stands) -> Target:
    """BigQuery: the load jobs replace the user table (WRITE_TRUNCATE)."""
    fake, staging, config = fake_bigquery(
        stands, "bigquery_export", fields=["_uid", "email", "first_name"], export_non_scalar_fields=False
    )
    users = "lytics.users_conformance"

    def held() -> set[str]:
        return {row["_uid"] for row in fake.tables.get(users, [])}

    def received() -> int:
        return sum(len(rows) for rows in fake.tables.values())

    return bigquery_target(stands, fake, staging, config, held, received)


DESTINATION = Destination(
    "bigquery_export", "bigquery_export", "replace", bigquery, uid, rejects=False, stand="gcs_emulator"
)
