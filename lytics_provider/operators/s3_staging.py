"""Audience exports that load a warehouse from a gzip CSV staged in S3 (Redshift, Databricks).

:class:`S3StagedLoad` stages the scanned audience as a typed gzip CSV under
``<directory>/<job_id>/<table>_<run stamp>.csv.gz`` of ``s3_bucket`` with the official ``S3Hook``
and, after the warehouse loaded it, deletes it unless ``keep_staged``. An operator whose kept
files expire by themselves (``kept_expiry_days``, Redshift's 72 hours) uploads them with the
expiry tag of :mod:`lytics_provider.pipeline.s3_expiry` and makes sure the bucket's lifecycle
rule for that tag exists before staging.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lytics_provider.operators.audience_export import AudienceExportOperator
from lytics_provider.pipeline.object_files import join_key
from lytics_provider.pipeline.s3_expiry import ensure_expiry_rule, expiry_tagging
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

    Subclasses keep ``s3_bucket``, ``directory``, ``aws_conn_id`` and ``keep_staged`` as attributes;
    ``kept_expiry_days`` set, kept files expire that many days after upload (an S3 lifecycle rule).
    """

    kept_expiry_days: ClassVar[int | None] = None

    s3_bucket: str | None
    directory: str
    aws_conn_id: str | None
    keep_staged: bool

    def staging_key(self, table: str) -> str:
        """The staged object's key for ``table``."""
        return join_key(self.directory, f"{self.job_id}/{table}_{self.stamp}.csv.gz")

    def staging_bucket(self) -> str:
        """``s3_bucket``, or else the AWS connection's default bucket (``bucket_name`` under
        ``service_config.s3`` in its extra, which the official ``S3Hook`` falls back to too)."""
        if not self.s3_bucket:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self.s3_bucket = S3Hook(aws_conn_id=self.aws_conn_id).service_config.get("bucket_name")
            if not self.s3_bucket:
                raise ValueError(
                    f"s3_bucket is not set in job {self.job_id!r} and the AWS connection "
                    f"{self.aws_conn_id!r} names no default bucket: set s3_bucket in the job config, "
                    'or {"service_config": {"s3": {"bucket_name": "..."}}} in the connection\'s extra'
                )
        return self.s3_bucket

    def staging_url(self, table: str) -> str:
        """``s3://bucket/key`` of the staged object for ``table``."""
        return f"s3://{self.staging_bucket()}/{self.staging_key(table)}"

    def stage_in_s3(self, columns: Sequence[Column], table: str) -> S3Staged:
        """Stage the audience's rows as ``columns`` and upload them; the local file is removed."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        key = self.staging_key(table)
        bucket = self.staging_bucket()
        expires = self.keep_staged and self.kept_expiry_days is not None
        tagging = {"Tagging": expiry_tagging()} if expires else None
        s3 = S3Hook(aws_conn_id=self.aws_conn_id, extra_args=tagging)
        if expires and ensure_expiry_rule(s3.get_conn(), bucket, self.kept_expiry_days):
            self.log.info(
                "Bucket %s now expires kept staged files %d days after upload",
                bucket,
                self.kept_expiry_days,
            )
        with self.rejects() as rejects:
            staged = self.stage_warehouse_csv(columns, f"{table}_{self.stamp}.csv.gz", rejects)
        s3.load_file(staged.path, key, bucket, replace=True)
        self.log.info("Staged %d rows (%d bytes) at s3://%s/%s", staged.rows, staged.bytes, bucket, key)
        staged.path.unlink()
        return S3Staged(s3, bucket, key, staged.rows, staged.rejected)

    def drop_staged(self, staged: S3Staged) -> None:
        """Delete the staged object once loaded, unless ``keep_staged``."""
        if not self.keep_staged:
            staged.s3.delete_objects(staged.bucket, [staged.key])
