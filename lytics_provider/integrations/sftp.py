"""SFTP file drops: Mapp SFTP Export, Lytics File Service export and import (Airflow's ``sftp``)."""

from lytics_provider.integrations.registration import LYTICS, Integration, JobType, Transfer

SFTP = "SSH File Transfer Protocol (SFTP)"
_TYPES = "lytics_provider.jobs.types.files"

INTEGRATION = Integration(
    name=SFTP,
    doc_url="https://airflow.apache.org/docs/apache-airflow-providers-sftp/",
    listed_by="apache-airflow-providers-sftp",
    airflow_connection_types=("sftp",),
    transfers=(
        Transfer(LYTICS, SFTP, "lytics_provider.transfers.lytics_to_sftp"),
        Transfer(SFTP, LYTICS, "lytics_provider.transfers.sftp_to_lytics"),
    ),
    job_types=(
        JobType(
            f"{_TYPES}.MappSftpExportJob",
            "Mapp SFTP Export: the whole audience daily as `export-lytics-{audience name}-{timestamp}.csv` "
            "with Mapp header names and `user.CustomAttribute.SegmentMembership` (add only)",
            ("mapp_high_value_daily.yaml",),
        ),
        JobType(
            f"{_TYPES}.FileServiceExportJob",
            "Lytics File Service CSV export `lytics_{segment_slug}_{date_time}.csv` to SFTP; zip or gz; PGP",
            ("file_service_export.yaml",),
        ),
        JobType(
            f"{_TYPES}.FileServiceImportJob",
            "CSV or JSON-lines files from an SFTP folder into a stream; gz; PGP; each file once",
            ("file_service_import.yaml",),
        ),
    ),
)
