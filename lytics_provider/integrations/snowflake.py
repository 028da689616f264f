"""Snowflake: audience exports (stage, COPY, swap) and table imports (the SQL watermark import)."""

from lytics_provider.integrations.registration import LYTICS, Integration, JobType, Transfer

SNOWFLAKE = "Snowflake"
_TYPES = "lytics_provider.jobs.types.warehouses"

INTEGRATION = Integration(
    name=SNOWFLAKE,
    doc_url="https://airflow.apache.org/docs/apache-airflow-providers-snowflake/",
    listed_by="apache-airflow-providers-snowflake",
    airflow_connection_types=("snowflake",),
    transfers=(
        Transfer(LYTICS, SNOWFLAKE, "lytics_provider.transfers.lytics_to_snowflake"),
        Transfer(SNOWFLAKE, LYTICS, "lytics_provider.transfers.sql_to_lytics"),
    ),
    job_types=(
        JobType(
            f"{_TYPES}.SnowflakeExportJob",
            "stage, COPY INTO `USERS_{slug}_{ts}`, swap into `USERS_{slug}`",
            ("snowflake_export_high_value.yaml",),
        ),
        JobType(
            f"{_TYPES}.SnowflakeImportJob",
            "a table or view into a stream, oldest first, with a Modified Timestamp Field watermark",
            ("snowflake_import_orders.yaml",),
        ),
    ),
)
