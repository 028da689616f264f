"""Google BigQuery: audience and activity exports (GCS staging, load), table imports."""

from lytics_provider.integrations.registration import LYTICS, Integration, JobType, Transfer

BIGQUERY = "Google BigQuery"
_TYPES = "lytics_provider.jobs.types.warehouses"

INTEGRATION = Integration(
    name=BIGQUERY,
    doc_url="https://airflow.apache.org/docs/apache-airflow-providers-google/",
    listed_by="apache-airflow-providers-google",
    airflow_connection_types=("google_cloud_platform",),
    transfers=(Transfer(LYTICS, BIGQUERY, "lytics_provider.transfers.lytics_to_bigquery"),),
    job_types=(
        JobType(
            f"{_TYPES}.BigQueryExportJob",
            "stage to GCS, load, replace; scalar / non-scalar field tables",
            ("bigquery_export_all_users.yaml",),
        ),
        JobType(
            f"{_TYPES}.BigQueryActivityExportJob",
            "a stream's events into `events_{stream}`, replaced per run",
            ("bigquery_activity_export.yaml",),
        ),
        JobType(
            f"{_TYPES}.BigQueryImportJob",
            "a table or view into a stream, oldest first, with a Modified Timestamp Field watermark",
            ("bigquery_import_events.yaml",),
        ),
    ),
)
