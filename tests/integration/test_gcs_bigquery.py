# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""GCS exports and imports on the ``gcp-storage-emulator`` server; BigQuery loads on a stand-in.

Real: every GCS call (resumable uploads, listing, downloads, deletes) goes to the emulator on
loopback through the official ``GCSHook``. Stand-ins: Google auth (anonymous credentials, as the
emulator needs none) and BigQuery — no BigQuery emulator installs from PyPI, so ``BigQueryHook``'s
``insert_job`` / ``get_job`` / ``create_empty_dataset`` are replaced by :class:`FakeBigQuery`,
which checks the load configuration the operator sends (WRITE_TRUNCATE, schema, formats, job id
reuse) and loads the staged objects it reads back from the GCS emulator (replacing the table, or
appending to it).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass, replace
from typing import Any

import pytest

from lytics_provider.transfers.gcs_to_lytics import GCSToLyticsOperator
from lytics_provider.transfers.lytics_to_bigquery import (
    LyticsStreamToBigQueryOperator,
    LyticsToBigQueryOperator,
    user_id,
)
from lytics_provider.transfers.lytics_to_gcs import LyticsToGCSOperator
from tests.helpers import make_context, run_task
from tests.integration.conftest_warehouse import (  # noqa: F401 - fixtures
    gcs_bucket,
    gcs_emulator,
    install_stream_events,
    lytics_env,
    scanned_context,
)

pytest.importorskip("airflow.providers.google")


def _storage():
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test-project", credentials=AnonymousCredentials())


@pytest.fixture
def google(gcs_bucket, monkeypatch):
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setattr(
        GoogleBaseHook,
        "get_credentials_and_project_id",
        lambda self: (AnonymousCredentials(), "test-project"),
    )
    return gcs_bucket


@dataclass
class FakeJob:
    job_id: str
    error_result: Any = None
    state: str = "DONE"

    def result(self) -> None:
        return None


class FakeBigQuery:
    """Stand-in for the BigQuery load path (see the module docstring).

    A job inserted with ``nowait`` answers ``RUNNING`` to its first ``running_polls`` ``get_job``
    calls (0: done at once); ``fail`` names tables whose load jobs end with an error.
    """

    def __init__(self, running_polls: int = 0, fail: tuple[str, ...] = ()) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.loads: list[dict[str, Any]] = []
        self.datasets: set[str] = set()
        self.running_polls = running_polls
        self.fail = fail
        self.polls_left: dict[str, int] = {}
        self.status_polls = 0

    def install(self, monkeypatch) -> None:
        from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

        fake = self

        def insert_job(hook, configuration, job_id=None, project_id=None, location=None, nowait=False, **_):
            from google.api_core.exceptions import Conflict

            if job_id in fake.jobs:
                raise Conflict(f"Already Exists: Job {project_id}:{job_id}")
            load = configuration["load"]
            fake.loads.append(load)
            assert load["writeDisposition"] in ("WRITE_TRUNCATE", "WRITE_APPEND")
            dest = load["destinationTable"]
            if dest["tableId"] in fake.fail:
                fake.jobs[job_id] = FakeJob(job_id, {"reason": "invalid", "message": "Bad value in row 1"})
                return fake.jobs[job_id]
            rows: list[dict[str, Any]] = []
            for uri in load["sourceUris"]:
                bucket, key = uri.removeprefix("gs://").split("/", 1)
                data = _storage().bucket(bucket).blob(key).download_as_bytes()
                text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()
                if load["sourceFormat"] == "CSV":
                    reader = csv.reader(io.StringIO(text))
                    header = next(reader)
                    assert header == [f["name"] for f in load["schema"]["fields"]]
                    rows += [dict(zip(header, r, strict=True)) for r in reader]
                else:
                    rows += [json.loads(line) for line in text.splitlines()]
            name = f"{dest['datasetId']}.{dest['tableId']}"
            if load["writeDisposition"] == "WRITE_APPEND":  # CREATE_IF_NEEDED: a new table starts empty
                rows = fake.tables.get(name, []) + rows
            fake.tables[name] = rows
            fake.jobs[job_id] = FakeJob(job_id)
            if nowait and fake.running_polls:
                fake.polls_left[job_id] = fake.running_polls
                return replace(fake.jobs[job_id], state="RUNNING")
            return fake.jobs[job_id]

        def get_job(hook, job_id, **_):
            from google.api_core.exceptions import NotFound

            if job_id not in fake.jobs:
                raise NotFound(f"Not found: Job test-project:{job_id}")
            fake.status_polls += 1
            if fake.polls_left.get(job_id):
                fake.polls_left[job_id] -= 1
                return replace(fake.jobs[job_id], state="RUNNING")
            return fake.jobs[job_id]

        monkeypatch.setattr(BigQueryHook, "insert_job", insert_job)
        monkeypatch.setattr(BigQueryHook, "get_job", get_job)
        monkeypatch.setattr(
            BigQueryHook, "create_empty_dataset", lambda hook, dataset_id, **_: fake.datasets.add(dataset_id)
        )


def _blobs(bucket: str) -> dict[str, bytes]:
    return {b.name: b.download_as_bytes() for b in _storage().list_blobs(bucket)}


def test_gcs_csv_export_round_trips_and_retries_to_the_same_object(lytics_env, google) -> None:
    context = scanned_context("newsletter")
    op = LyticsToGCSOperator(
        task_id="deliver", job_id="job", bucket=google, directory="out", fields=["email"]
    )
    report = run_task(op, context)
    blobs = _blobs(google)
    key = "out/lytics_newsletter_20261123T000000Z.csv.gz"
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(blobs[key]).decode())))
    assert [r["email"] for r in rows] == [m["email"] for m in lytics_env.expected_members("newsletter")]
    assert report["rows"] == 1000
    run_task(op, context)
    assert _blobs(google) == blobs


def test_gcs_import_files_with_starting_file_and_resume(lytics_env, google) -> None:
    bucket = _storage().bucket(google)
    for name, rows in (("new-users-001.json", range(0, 5)), ("new-users-002.json.gz", range(5, 30))):
        body = "".join(json.dumps({"n": i}) + "\n" for i in rows).encode()
        bucket.blob(name).upload_from_string(gzip.compress(body) if name.endswith(".gz") else body)
    op = GCSToLyticsOperator(
        task_id="import",
        job_id="gcs_import",
        bucket=google,
        prefix="new-users-",
        file_type="json",
        starting_file="new-users-002.json.gz",
        batch_size=10,
    )
    lytics_env.faults.add("5xx", path_regex="/collect/json/gcs_files", after=1, times=None)
    with pytest.raises(Exception, match="500"):
        run_task(op, make_context())
    lytics_env.faults.clear()
    report = run_task(op, make_context())
    assert [r["n"] for r in lytics_env.collected("gcs_files")] == list(range(5, 30))
    assert report["rows"] == 15


def test_gcs_continuous_import_takes_new_files_by_date_in_the_jobs_project(lytics_env, google) -> None:
    from lytics_provider.jobs.operator_args import operator_kwargs
    from lytics_provider.jobs.types.warehouses import GCSImportJob

    bucket = _storage().bucket(google)
    bucket.blob("orders-latest.json").upload_from_string(b'{"n": 1}\n')
    bucket.blob("orders_20260101000000.json").upload_from_string(b'{"n": 2}\n')
    options = {"bucket": google, "prefix": "orders", "file_type": "json", "project": "import-project"}
    job = GCSImportJob.model_validate({"type": "gcs_import", "continuous": True, **options})
    assert job.keep_updated  # Continuous Import: the job looks for new files on its schedule
    op = GCSToLyticsOperator(**operator_kwargs(job, GCSToLyticsOperator, task_id="import", job_id="gcs_c"))
    assert op.store().client().project == "import-project"
    first = run_task(op, make_context(run_id="r1"))
    assert first["skipped"] == [] and sorted(first["files"]) == [
        "orders-latest.json",
        "orders_20260101000000.json",
    ]
    assert run_task(op, make_context(run_id="r2"))["files"] == []  # nothing new: no stop, no error
    bucket.blob("orders-next.json").upload_from_string(b'{"n": 3}\n')
    assert run_task(op, make_context(run_id="r3"))["files"] == ["orders-next.json"]
    assert sorted(r["n"] for r in lytics_env.collected("gcs_files")) == [1, 2, 3]
    default = GCSToLyticsOperator(task_id="import", job_id="x", bucket=google)
    assert default.store().client().project == "test-project"  # the connection's


def test_bigquery_export_scalar_and_non_scalar_tables(lytics_env, google, monkeypatch) -> None:
    bq = FakeBigQuery()
    bq.install(monkeypatch)
    op = LyticsToBigQueryOperator(
        task_id="deliver",
        job_id="job",
        dataset="lytics",
        gcs_bucket=google,
        fields=["_uid", "email", "score_engagement", "segments", "scores"],
    )
    context = scanned_context("high_value")
    report = run_task(op, context)
    expected = list(lytics_env.expected_members("high_value"))
    ids = {m["_uid"]: user_id(m, ["_uid", "email", "user_id"]) for m in expected}
    users = bq.tables["lytics.users_high_value"]
    assert [(u["_uid"], u["email"], int(u["score_engagement"])) for u in users] == [
        (m["_uid"], m["email"], m["score_engagement"]) for m in expected
    ]
    assert [u["id"] for u in users] == [ids[m["_uid"]] for m in expected]
    segments = bq.tables["lytics.users_high_value_segments"]
    assert len(segments) == sum(len(m["segments"]) for m in expected)
    scores = bq.tables["lytics.users_high_value_scores"]
    first = expected[0]
    assert {r["key"]: float(r["value"]) for r in scores if r["id"] == ids[first["_uid"]]} == first["scores"]
    schema = {f["name"]: f["type"] for f in bq.loads[0]["schema"]["fields"]}
    assert schema == {"id": "STRING", "_uid": "STRING", "email": "STRING", "score_engagement": "INT64"}
    assert report["tables"] == {
        "users_high_value": 500,
        "users_high_value_segments": len(segments),
        "users_high_value_scores": len(scores),
    }
    assert _blobs(google) == {}  # staged objects removed after the loads

    run_task(op, context)  # a retry reattaches to the existing load jobs instead of loading twice
    assert len(bq.loads) == 3 and bq.tables["lytics.users_high_value"] == users


def _day(day: int) -> dict[str, Any]:
    import pendulum

    logical = pendulum.datetime(2026, 11, day, tz="UTC")
    return make_context(run_id=f"scheduled__{logical.isoformat()}", logical_date=logical)


def _activity(bucket: str) -> LyticsStreamToBigQueryOperator:
    return LyticsStreamToBigQueryOperator(
        task_id="export", job_id="job", stream="email_events", dataset="activity", gcs_bucket=bucket
    )


def _ns(bq: FakeBigQuery) -> list[int]:
    return [row["n"] for row in bq.tables["activity.events_email_events"]]


def test_bigquery_activity_export_loads_every_event_then_appends_new_ones(
    lytics_env, google, monkeypatch
) -> None:
    bq = FakeBigQuery()
    bq.install(monkeypatch)
    events = [{"email": f"u{i}@example.com", "event": "open", "n": i} for i in range(1500)]
    install_stream_events(lytics_env, {"email_events": events})
    op = _activity(google)
    report = run_task(op, _day(23))
    assert bq.tables["activity.events_email_events"] == events
    assert report["rows"] == 1500 and bq.loads[0]["autodetect"] is True
    assert bq.loads[0]["writeDisposition"] == "WRITE_TRUNCATE" and report["since_position"] is None

    later = [{"email": f"u{i}@example.com", "event": "click", "n": i, "url": "/x"} for i in range(1500, 1520)]
    install_stream_events(lytics_env, {"email_events": later})
    second = run_task(op, _day(24))
    assert bq.tables["activity.events_email_events"] == events + later
    assert bq.loads[1]["writeDisposition"] == "WRITE_APPEND"
    assert bq.loads[1]["schemaUpdateOptions"] == ["ALLOW_FIELD_ADDITION"]  # the new url column
    assert second["rows"] == 20 and second["since_position"] == report["position"]

    third = run_task(op, _day(25))  # nothing new: no load
    assert third["rows"] == 0 and len(bq.loads) == 2 and _blobs(google) == {}


def test_bigquery_activity_retries_load_each_event_once(lytics_env, google, monkeypatch) -> None:
    from lytics_provider.pipeline.bigquery_loads import BigQueryLoadError, BigQueryLoadJobs

    bq = FakeBigQuery()
    bq.install(monkeypatch)
    install_stream_events(lytics_env, {"email_events": [{"n": i} for i in range(100)]})
    op = _activity(google)
    run_task(op, _day(23))

    # run 2: its load job fails; the retry loads the window (and what arrived since) once
    install_stream_events(lytics_env, {"email_events": [{"n": i} for i in range(100, 130)]})
    bq.fail = ("events_email_events",)
    context = _day(24)
    with pytest.raises(BigQueryLoadError, match="a retry loads again"):
        run_task(op, context)
    bq.fail = ()
    install_stream_events(lytics_env, {"email_events": [{"n": i} for i in range(130, 140)]})
    context["ti"].try_number = 2
    assert run_task(op, context)["rows"] == 40
    assert _ns(bq) == list(range(140))
    assert sorted(bq.jobs)[-1].endswith("20261124t000000z_try2")

    # run 3: the worker dies after the load job started; the retry reattaches to it
    install_stream_events(lytics_env, {"email_events": [{"n": i} for i in range(140, 150)]})
    real_wait = BigQueryLoadJobs.wait_for_loads

    def killed(self: Any, *args: Any) -> Any:
        raise ConnectionResetError("worker lost while the load job ran")

    monkeypatch.setattr(BigQueryLoadJobs, "wait_for_loads", killed)
    context = _day(25)
    with pytest.raises(ConnectionResetError):
        run_task(op, context)
    monkeypatch.setattr(BigQueryLoadJobs, "wait_for_loads", real_wait)
    install_stream_events(lytics_env, {"email_events": [{"n": i} for i in range(150, 155)]})
    context["ti"].try_number = 2
    retried = run_task(op, context)
    assert retried["rows"] == 10 and len(bq.loads) == 4  # no second load of 140..149
    assert run_task(op, context)["rows"] == 0  # a further retry: loaded and committed already

    # run 4 loads what arrived while run 3 was retried
    assert run_task(op, _day(26))["rows"] == 5
    assert _ns(bq) == list(range(155)) and _blobs(google) == {}
