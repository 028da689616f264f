"""Amazon Redshift: audience exports (S3 staging, COPY, swap) and table imports."""

from lytics_provider.integrations.registration import LYTICS, Integration, JobType, Transfer

REDSHIFT = "Amazon Redshift"
_TYPES = "lytics_provider.jobs.types.warehouses"

INTEGRATION = Integration(
    name=REDSHIFT,
    doc_url="https://airflow.apache.org/docs/apache-airflow-providers-amazon/",
    listed_by="apache-airflow-providers-amazon",
    airflow_connection_types=("redshift", "postgres"),
    transfers=(Transfer(LYTICS, REDSHIFT, "lytics_provider.transfers.lytics_to_redshift"),),
    job_types=(
        JobType(
            f"{_TYPES}.RedshiftExportJob",
            "stage to S3, COPY into a full temporary table, swap by rename",
            ("redshift_export_high_value.yaml",),
        ),
        JobType(
            f"{_TYPES}.RedshiftImportJob",
            "a table or view into a stream, oldest first, with a Modified Timestamp Field watermark",
            ("redshift_import_orders.yaml",),
        ),
    ),
)
