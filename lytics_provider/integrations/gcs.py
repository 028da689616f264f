"""Google Cloud Storage: audience exports as files, file imports (Airflow's ``google_cloud_platform``)."""

from lytics_provider.integrations.registration import LYTICS, Integration, JobType, Transfer

GCS = "Google Cloud Storage (GCS)"
_TYPES = "lytics_provider.jobs.types.warehouses"

INTEGRATION = Integration(
    name=GCS,
    doc_url="https://airflow.apache.org/docs/apache-airflow-providers-google/",
    listed_by="apache-airflow-providers-google",
    airflow_connection_types=("google_cloud_platform",),
    transfers=(
        Transfer(LYTICS, GCS, "lytics_provider.transfers.lytics_to_gcs"),
        Transfer(GCS, LYTICS, "lytics_provider.transfers.gcs_to_lytics"),
    ),
    job_types=(
        JobType(
            f"{_TYPES}.GCSExportJob",
            "the audience as one CSV or JSON-lines file per run; gzip; PGP",
            ("gcs_export_newsletter.yaml",),
        ),
        JobType(
            f"{_TYPES}.GCSImportJob",
            "CSV / JSON-lines files by Prefix, Since, Starting File, gzip, PGP, `prefix_timestamp.json` "
            "sequences",
            ("gcs_import_files.yaml",),
        ),
    ),
)
