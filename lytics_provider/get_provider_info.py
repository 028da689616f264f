"""Provider metadata read by Airflow's providers manager (imports nothing heavy)."""

from __future__ import annotations

from typing import Any

from lytics_provider import __version__
from lytics_provider.connections import CONNECTION_TYPES


def get_provider_info() -> dict[str, Any]:
    """Describe the package, its hooks, operators and connection types to Airflow."""
    integration = "Lytics"
    return {
        "package-name": "airflow-provider-lytics",
        "name": "Lytics",
        "description": "Lytics CDP integration jobs: audience exports, stream imports, file drops.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": integration,
                "external-doc-url": "https://docs.lytics.com",
                "tags": ["service"],
            },
            {
                "integration-name": "Dotdigital",
                "external-doc-url": "https://developer.dotdigital.com",
                "tags": ["service"],
            },
            {
                "integration-name": "iContact",
                "external-doc-url": "https://www.icontact.com",
                "tags": ["service"],
            },
            {
                "integration-name": "PGP",
                "external-doc-url": "https://www.gnupg.org",
                "tags": ["software"],
            },
        ],
        "hooks": [
            {"integration-name": integration, "python-modules": ["lytics_provider.hooks.lytics"]},
            {"integration-name": "Dotdigital", "python-modules": ["lytics_provider.hooks.dotdigital"]},
            {"integration-name": "iContact", "python-modules": ["lytics_provider.hooks.icontact"]},
            {"integration-name": "PGP", "python-modules": ["lytics_provider.hooks.pgp"]},
        ],
        "operators": [
            {"integration-name": integration, "python-modules": ["lytics_provider.operators.lytics"]},
            {"integration-name": "Dotdigital", "python-modules": ["lytics_provider.operators.dotdigital"]},
        ],
        "transfers": [
            {
                "source-integration-name": "iContact",
                "target-integration-name": integration,
                "python-module": "lytics_provider.transfers.icontact_to_lytics",
            },
            {
                "source-integration-name": integration,
                "target-integration-name": "iContact",
                "python-module": "lytics_provider.transfers.lytics_to_icontact",
            },
            {
                "source-integration-name": "Dotdigital",
                "target-integration-name": integration,
                "python-module": "lytics_provider.transfers.dotdigital_to_lytics",
            },
            {
                "source-integration-name": integration,
                "target-integration-name": "SSH File Transfer Protocol (SFTP)",
                "python-module": "lytics_provider.transfers.lytics_to_sftp",
            },
            {
                "source-integration-name": "SSH File Transfer Protocol (SFTP)",
                "target-integration-name": integration,
                "python-module": "lytics_provider.transfers.sftp_to_lytics",
            },
            {
                "source-integration-name": integration,
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": "lytics_provider.transfers.lytics_to_s3",
            },
            {
                "source-integration-name": "Amazon Simple Storage Service (S3)",
                "target-integration-name": integration,
                "python-module": "lytics_provider.transfers.s3_to_lytics",
            },
            {
                "source-integration-name": integration,
                "target-integration-name": "Google Cloud Storage (GCS)",
                "python-module": "lytics_provider.transfers.lytics_to_gcs",
            },
            {
                "source-integration-name": "Google Cloud Storage (GCS)",
                "target-integration-name": integration,
                "python-module": "lytics_provider.transfers.gcs_to_lytics",
            },
            {
                "source-integration-name": integration,
                "target-integration-name": "Amazon Redshift",
                "python-module": "lytics_provider.transfers.lytics_to_redshift",
            },
            {
                "source-integration-name": integration,
                "target-integration-name": "Google BigQuery",
                "python-module": "lytics_provider.transfers.lytics_to_bigquery",
            },
            {
                "source-integration-name": integration,
                "target-integration-name": "Snowflake",
                "python-module": "lytics_provider.transfers.lytics_to_snowflake",
            },
            {
                "source-integration-name": "Snowflake",
                "target-integration-name": integration,
                "python-module": "lytics_provider.transfers.sql_to_lytics",
            },
        ],
        "connection-types": [dict(spec) for spec in CONNECTION_TYPES],
    }
