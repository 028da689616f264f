"""Amazon S3: audience and activity exports as files, file imports (Airflow's ``aws``)."""

from lytics_provider.integrations.registration import LYTICS, Integration, JobType, Transfer

S3 = "Amazon Simple Storage Service (S3)"
_TYPES = "lytics_provider.jobs.types.warehouses"

INTEGRATION = Integration(
    name=S3,
    doc_url="https://airflow.apache.org/docs/apache-airflow-providers-amazon/",
    listed_by="apache-airflow-providers-amazon",
    airflow_connection_types=("aws",),
    transfers=(
        Transfer(LYTICS, S3, "lytics_provider.transfers.lytics_to_s3"),
        Transfer(S3, LYTICS, "lytics_provider.transfers.s3_to_lytics"),
    ),
    job_types=(
        JobType(
            f"{_TYPES}.S3ExportJob",
            "the audience as one CSV or JSON-lines file per run; gzip; PGP",
            ("s3_export_high_value.yaml",),
        ),
        JobType(
            f"{_TYPES}.S3ActivityExportJob",
            "a stream's events as one CSV or JSON-lines file per run",
            ("s3_activity_export.yaml",),
        ),
        JobType(
            f"{_TYPES}.S3ImportJob",
            "CSV / JSON-lines files by Prefix, Since, Starting File, gzip, PGP, `prefix_timestamp.json` "
            "sequences",
            ("s3_import_new_users.yaml",),
        ),
    ),
)
