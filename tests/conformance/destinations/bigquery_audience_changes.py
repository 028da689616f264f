"""BigQuery Export Audience Changes: CSV batches staged on the GCS emulator, appended by load jobs
on ``FakeBigQuery`` (churn: the members whose latest row is an enter are held; every row counts
as received)."""

from __future__ import annotations

from typing import Any

from tests.conformance.destinations import Destination, Stands, Target
from tests.conformance.destinations._event_readback import held_members
from tests.conformance.destinations.bigquery import bigquery_target, fake_bigquery

TABLE = "lytics.audience_changes"


def email(member: dict[str, Any]) -> str | None:
    """The ID Field's value (``email``)."""
    return str(member.get("email") or "").strip() or None


def bigquery_audience_changes(stands: Stands) -> Target:
    fake, staging, config = fake_bigquery(stands, "bigquery_export_audience_changes", batch_size=50)

    def rows() -> list[dict[str, Any]]:
        return fake.tables.get(TABLE, [])

    def held() -> set[str]:
        return held_members((r["email"], "exit" if r["exit"] == "true" else "enter") for r in rows())

    return bigquery_target(stands, fake, staging, config, held, lambda: len(rows()))


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
