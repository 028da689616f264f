"""OpenLineage datasets of the audience exports, named as the official providers' transfers name them.

The input is the audience (namespace ``lytics://<API host>``, name the audience slug); a file drop's
output is the file it wrote: ``s3://<bucket>`` / ``gs://<bucket>`` / ``wasbs://<container>`` with
the object key as name, or ``file://<host>:<port>`` with the remote path for SFTP (as the SFTP
provider's ``SFTPOperator`` does). Used by ``get_openlineage_facets_on_complete`` when the
``apache-airflow-providers-openlineage`` package is installed; nothing here runs without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

SFTP_PORT = 22
_OBJECT_STORE_SCHEMES = {"s3": "s3", "gs": "gs", "wasb": "wasbs"}


def audience_dataset(lytics_conn_id: str, slug: str) -> Dataset:
    """The audience read from the Lytics account behind ``lytics_conn_id``."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    from lytics_provider.hooks.lytics import LyticsHook

    host = LyticsHook.get_connection(lytics_conn_id).host or LyticsHook.default_host
    netloc = urlsplit(host if "://" in host else f"https://{host}").netloc
    return Dataset(namespace=f"lytics://{netloc}", name=slug)


def delivered_file_dataset(remote_path: str, sftp_conn_id: str | None = None) -> Dataset:
    """The file a drop wrote: an object-store URI, or a path on the SFTP server of ``sftp_conn_id``."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urlsplit(remote_path)
    if parts.scheme in _OBJECT_STORE_SCHEMES:
        return Dataset(
            namespace=f"{_OBJECT_STORE_SCHEMES[parts.scheme]}://{parts.netloc}", name=parts.path.lstrip("/")
        )
    if sftp_conn_id is None:
        raise ValueError(f"{remote_path!r} is neither an object-store URI nor on an SFTP connection")
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(sftp_conn_id)
    return Dataset(namespace=f"file://{conn.host}:{conn.port or SFTP_PORT}", name=remote_path)


def operator_lineage(inputs: list[Any], outputs: list[Any]) -> OperatorLineage:
    """The ``OperatorLineage`` the OpenLineage listener reads."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=inputs, outputs=outputs)
