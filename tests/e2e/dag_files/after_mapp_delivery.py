"""A downstream DAG scheduled on the Mapp example job's delivery Asset, as a user would write it.

The e2e stack parses it beside ``dags/lytics_jobs.py``; it stays paused until a test unpauses it.
"""

from __future__ import annotations

from airflow.sdk import DAG, Asset, task

MAPP_DELIVERY = Asset("lytics-destination://mapp_sftp_export/mapp_sftp/upload")

with DAG(dag_id="after_mapp_delivery", schedule=[MAPP_DELIVERY], catchup=False, tags=["e2e"]):

    @task
    def read_the_delivery(**context: object) -> list[str]:
        """The source runs of the asset events that started this run."""
        events = context["triggering_asset_events"][MAPP_DELIVERY]  # type: ignore[index]
        return [event.source_run_id for event in events]

    read_the_delivery()
