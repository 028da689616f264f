# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Redshift export: S3 staging on a moto server, temp table + COPY + swap on a real PostgreSQL.

PostgreSQL cannot run Redshift's ``COPY ... FROM 's3://...'``, so these tests use
``copy_method="stdin"``: the staged object is read back from (moto) S3 and loaded with
``COPY ... FROM STDIN``. Everything else is the operator's real SQL: CREATE of the temporary
table, the row-count check, and the DROP + RENAME swap in one transaction.
"""

from __future__ import annotations

import gzip
import json

import pytest

from lytics_provider.transfers.lytics_to_redshift import LyticsToRedshiftOperator
from tests.helpers import run_task
from tests.integration.conftest_warehouse import (  # noqa: F401 - fixtures
    lytics_env,
    moto_endpoint,
    pg_connect,
    pg_schema,
    s3_bucket,
    s3_client,
    scanned_context,
)

FIELDS = ["_uid", "email", "score_engagement", "scores", "segments", "last_active_ts"]


def _op(bucket: str, cls: type = LyticsToRedshiftOperator, **kwargs) -> LyticsToRedshiftOperator:
    return cls(
        task_id="deliver", job_id="job", s3_bucket=bucket, copy_method="stdin", fields=FIELDS, **kwargs
    )


def _table(schema: str, table: str = "high_value") -> list[tuple]:
    with pg_connect(schema) as conn, conn.cursor() as cur:
        cur.execute(
            f'SELECT "_uid", email, score_engagement, scores, last_active_ts FROM "{table}" ORDER BY 1'
        )
        return cur.fetchall()


def _expected(sandbox) -> list[tuple]:
    rows = []
    for m in sandbox.expected_members("high_value"):
        rows.append(
            (m["_uid"], m["email"], m["score_engagement"], json.dumps(m["scores"], separators=(",", ":")))
        )
    return sorted(rows)


def test_export_creates_typed_table_with_every_member_once(lytics_env, s3_bucket, pg_schema, moto_endpoint):
    report = run_task(_op(s3_bucket), scanned_context("high_value"))
    rows = _table(pg_schema)
    assert [r[:4] for r in rows] == _expected(lytics_env)
    assert report["rows"] == 500 and report["table"] == "high_value"
    with pg_connect(pg_schema) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'high_value' ORDER BY ordinal_position",
            (pg_schema,),
        )
        assert cur.fetchall() == [
            ("_uid", "character varying"),
            ("email", "character varying"),
            ("score_engagement", "bigint"),
            ("scores", "character varying"),
            ("segments", "character varying"),
            ("last_active_ts", "timestamp with time zone"),
        ]
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (pg_schema,))
        assert cur.fetchone()[0] == 1  # the temporary table was renamed, nothing left behind
    assert "Contents" not in s3_client(moto_endpoint).list_objects_v2(Bucket=s3_bucket)  # staging removed


class _ReadDuringLoad(LyticsToRedshiftOperator):
    """Looks at the main table from a second connection while the COPY is uncommitted."""

    seen: list[list[tuple]]

    def _load_temp(self, cur, temp, columns, s3, key):
        super()._load_temp(cur, temp, columns, s3, key)
        with pg_connect(self.schema_for_test) as other, other.cursor() as look:
            look.execute("SET lock_timeout = '2s'")
            look.execute(
                'SELECT "_uid", email, score_engagement, scores, last_active_ts FROM "high_value" ORDER BY 1'
            )
            self.seen.append(look.fetchall())


class _FailSwapOnce(LyticsToRedshiftOperator):
    failures = 1

    def _swap(self, conn, temp, table):
        if type(self).failures:
            type(self).failures -= 1
            raise ConnectionError("worker lost before the swap")
        super()._swap(conn, temp, table)


def test_main_table_stays_readable_during_the_load_and_a_failed_swap_is_retried(
    lytics_env, s3_bucket, pg_schema
):
    run_task(_op(s3_bucket), scanned_context("high_value", day=22))
    before = _table(pg_schema)
    lytics_env.set_version("high_value", 1)  # churn: exits, enters, changes

    op = _op(s3_bucket, _ReadDuringLoad)
    op.schema_for_test = pg_schema
    op.seen = []
    _FailSwapOnce.failures = 1
    failing = _op(s3_bucket, _FailSwapOnce)
    context = scanned_context("high_value", day=23)
    with pytest.raises(ConnectionError):
        run_task(failing, context)
    assert _table(pg_schema) == before  # loaded but not swapped: readers still see the last export

    run_task(op, context)  # the retry
    assert op.seen == [before]  # mid-load, a second reader sees the last export, without a lock wait
    after = _table(pg_schema)
    assert [r[:4] for r in after] == _expected(lytics_env)
    assert after != before and len({r[0] for r in after}) == len(after)


def test_bad_values_go_to_rejects_with_the_field(lytics_env, s3_bucket, pg_schema, monkeypatch):
    from lytics_provider.pipeline.snapshot import Snapshot

    context = scanned_context("high_value")
    path = context["ti"].xcoms["scan"]["snapshot"]
    with Snapshot(path) as snap:
        first = next(snap.iter_records())
        snap.add_page([{**first, "score_engagement": "very high"}], "", None)
    report = run_task(_op(s3_bucket), context)
    assert report["rows"] == 499 and report["rejected"] == 1
    lines = [json.loads(x) for x in (context_dir(context) / "rejects.jsonl").read_text().splitlines()]
    assert lines[0]["id"] == first["_uid"]
    assert lines[0]["reason"] == "field 'score_engagement' (int): 'very high' is not an integer"
    assert len(_table(pg_schema)) == 499


def context_dir(context):
    from lytics_provider.pipeline.workarea import run_dir

    return run_dir("job", context["run_id"])


def test_unknown_field_is_a_clear_error(lytics_env, s3_bucket, pg_schema):
    op = LyticsToRedshiftOperator(task_id="deliver", job_id="job", s3_bucket=s3_bucket, fields=["emial"])
    with pytest.raises(
        ValueError, match=r"fields \['emial'\] are not in the Lytics user schema; fix 'fields'"
    ):
        run_task(op, scanned_context("high_value"))


def test_staged_file_is_gzip_csv_with_a_header(lytics_env, s3_bucket, pg_schema, moto_endpoint):
    run_task(_op(s3_bucket, keep_staged=True), scanned_context("high_value"))
    client = s3_client(moto_endpoint)
    key = "lytics/job/high_value_20261123T000000Z.csv.gz"
    body = gzip.decompress(client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()).decode()
    assert body.splitlines()[0] == ",".join(FIELDS)
    assert len(body.splitlines()) == 501


def test_lytics_types_map_to_each_warehouse() -> None:
    from lytics_provider.pipeline.warehouse_types import CellError, column_type, to_cell, unique_names

    expected = {
        "string": ("VARCHAR(65535)", "VARCHAR(16777216)", "STRING"),
        "int": ("BIGINT", "NUMBER(38,0)", "INT64"),
        "number": ("DOUBLE PRECISION", "FLOAT", "FLOAT64"),
        "bool": ("BOOLEAN", "BOOLEAN", "BOOL"),
        "date": ("TIMESTAMPTZ", "TIMESTAMP_TZ(9)", "TIMESTAMP"),
        "[]string": ("VARCHAR(65535)", "VARIANT", "JSON"),
        "map[string]int": ("VARCHAR(65535)", "VARIANT", "JSON"),
        "ts[]string": ("VARCHAR(65535)", "VARIANT", "JSON"),
    }
    for lytics_type, types in expected.items():
        assert tuple(column_type(lytics_type, d) for d in ("redshift", "snowflake", "bigquery")) == types
    assert unique_names(["First Name", "first_name", "first-name"], "bigquery") == [
        "first_name",
        "first_name1",
        "first_name2",
    ]
    assert to_cell(["a", "b"], "json") == '["a","b"]' and to_cell("1.0", "int") == 1
    assert to_cell(1_700_000_000_000, "timestamp") == "2023-11-14T22:13:20Z"
    with pytest.raises(CellError, match="'maybe' is not a boolean"):
        to_cell("maybe", "bool")


def test_redshift_copy_statement_reads_the_staged_object() -> None:
    from lytics_provider.pipeline.warehouse_types import Column

    executed: list[str] = []

    class Cursor:
        def execute(self, sql: str) -> None:
            executed.append(sql)

    op = LyticsToRedshiftOperator(
        task_id="d", job_id="j", s3_bucket="stage", iam_role="arn:aws:iam::1:role/copy", region="us-east-2"
    )
    op.schema_name = "crm"
    columns = [Column("email", "string", "email", "string"), Column("n", "int", "n", "int")]
    op._load_temp(Cursor(), "high_value_1", columns, None, "lytics/j/high_value_x.csv.gz")
    assert executed == [
        'COPY "crm"."high_value_1" ("email", "n") FROM \'s3://stage/lytics/j/high_value_x.csv.gz\' '
        "IAM_ROLE 'arn:aws:iam::1:role/copy' FORMAT AS CSV IGNOREHEADER 1 GZIP TIMEFORMAT 'auto' "
        "EMPTYASNULL ACCEPTINVCHARS COMPUPDATE OFF STATUPDATE OFF REGION 'us-east-2'"
    ]


def test_kept_staged_files_are_tagged_to_expire_by_a_bucket_lifecycle_rule(
    lytics_env, s3_bucket, pg_schema, moto_endpoint
):
    client = s3_client(moto_endpoint)
    other = {"ID": "archive", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
    client.put_bucket_lifecycle_configuration(Bucket=s3_bucket, LifecycleConfiguration={"Rules": [other]})
    run_task(_op(s3_bucket, keep_staged=True), scanned_context("high_value"))
    key = "lytics/job/high_value_20261123T000000Z.csv.gz"
    tags = client.get_object_tagging(Bucket=s3_bucket, Key=key)["TagSet"]
    assert tags == [{"Key": "lytics-staged", "Value": "expire"}]
    rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]}
    assert rules["archive"]["Expiration"] == {"Days": 30}  # the bucket's own rule is kept
    assert rules["lytics-staged-expiry"]["Expiration"] == {"Days": 3}  # 72 hours
    assert rules["lytics-staged-expiry"]["Filter"] == {"Tag": {"Key": "lytics-staged", "Value": "expire"}}

    run_task(_op(s3_bucket, keep_staged=True), scanned_context("high_value", day=24))
    assert len(client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)["Rules"]) == 2  # not repeated


def test_staged_files_not_kept_are_deleted_and_the_bucket_left_alone(
    lytics_env, s3_bucket, pg_schema, moto_endpoint
):
    from botocore.exceptions import ClientError

    run_task(_op(s3_bucket), scanned_context("high_value"))
    client = s3_client(moto_endpoint)
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    with pytest.raises(ClientError, match="NoSuchLifecycleConfiguration"):
        client.get_bucket_lifecycle_configuration(Bucket=s3_bucket)


def test_db_url_replaces_the_connection_host_and_database(lytics_env, s3_bucket, pg_schema, monkeypatch):
    import os

    spec = json.loads(os.environ["AIRFLOW_CONN_REDSHIFT_DEFAULT"])
    db_url = f"{spec['host']}:{spec['port']}/{spec['schema']}"
    spec.update(host="no-such-cluster.invalid", port=5439, schema="nodb")
    monkeypatch.setenv("AIRFLOW_CONN_REDSHIFT_DEFAULT", json.dumps(spec))
    report = run_task(_op(s3_bucket, db_url=db_url), scanned_context("high_value"))
    assert report["rows"] == 500 and len(_table(pg_schema)) == 500


def test_without_s3_bucket_the_aws_connection_bucket_stages(lytics_env, s3_bucket, pg_schema, monkeypatch):
    import os

    op = _op(None)
    with pytest.raises(
        ValueError, match="s3_bucket is not set in job 'job' and the AWS connection 'aws_default'"
    ):
        run_task(op, scanned_context("high_value"))
    spec = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])
    spec["extra"]["service_config"] = {"s3": {"bucket_name": s3_bucket}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(spec))
    report = run_task(_op(None), scanned_context("high_value"))
    assert report["staging"] == f"s3://{s3_bucket}/lytics/job/high_value_20261123T000000Z.csv.gz"
    assert report["rows"] == 500 and len(_table(pg_schema)) == 500
