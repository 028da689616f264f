"""Audience exports that load a warehouse from a gzip CSV staged in S3 (Redshift, Databricks).

:class:`S3StagedLoad` stages the scanned audience as a typed gzip CSV under
``<directory>/<job_id>/<table>_<run stamp>.csv.gz`` of ``s3_bucket`` with the official ``S3Hook``
and, after the warehouse loaded it, deletes it unless ``keep_staged``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lytics_provider.operators.audience_export import AudienceExportOperator
from lytics_provider.pipeline.object_files import join_key
from lytics_provider.pipeline.warehouse_types import Column


@dataclass(frozen=True)
class S3Staged:
    """The staged object: its S3 hook, key, and the rows staged and rejected."""

    s3: Any
    bucket: str
    key: str
    rows: int
    rejected: int

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class S3StagedLoad(AudienceExportOperator):
    """An audience export whose warehouse loads a CSV staged in S3.

    Subclasses keep ``s3_bucket``, ``directory``, ``aws_conn_id`` and ``keep_staged`` as attributes.
    """

    s3_bucket: str
    directory: str
    aws_conn_id: str | None
    keep_staged: bool

    def staging_key(self, table: str) -> str:
        """The staged object's key for ``table``."""
        return join_key(self.directory, f"{self.job_id}/{table}_{self.stamp}.csv.gz")

    def staging_url(self, table: str) -> str:
        """``s3://bucket/key`` of the staged object for ``table``."""
        return f"s3://{self.s3_bucket}/{self.staging_key(table)}"

    def stage_in_s3(self, columns: Sequence[Column], table: str) -> S3Staged:
        """Stage the audience's rows as ``columns`` and upload them; the local file is removed."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        key = self.staging_key(table)
        s3 = S3Hook(aws_conn_id=self.aws_conn_id)
        with self.rejects() as rejects:
            staged = self.stage_warehouse_csv(columns, f"{table}_{self.stamp}.csv.gz", rejects)
        s3.load_file(staged.path, key, self.s3_bucket, replace=True)
        self.log.info(
            "Staged %d rows (%d bytes) at s3://%s/%s", staged.rows, staged.bytes, self.s3_bucket, key
        )
        staged.path.unlink()
        return S3Staged(s3, self.s3_bucket, key, staged.rows, staged.rejected)

    def drop_staged(self, staged: S3Staged) -> None:
        """Delete the staged object once loaded, unless ``keep_staged``."""
        if not self.keep_staged:
            staged.s3.delete_objects(staged.bucket, [staged.key])
