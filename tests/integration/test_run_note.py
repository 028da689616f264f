"""Each run's report becomes its DAG run's note; a failed task's error (and its fix) does too.

The note goes through the Airflow REST API (``hooks/airflow_api.py``), here its stand-in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lytics_provider.jobs.run_note import failure_note, report_note, set_run_note
from lytics_sandbox.airflow_api import AirflowApiSandbox
from tests.conformance.runner import JobRun
from tests.helpers import lytics_conn, make_context

PASSWORD = "apiPassw0rd!"
DAG = SimpleNamespace(dag_id="lytics_notes")


@pytest.fixture(scope="module")
def airflow_api() -> Iterator[AirflowApiSandbox]:
    with AirflowApiSandbox(username="notes", password=PASSWORD) as api:
        yield api


@pytest.fixture(scope="module")
def ga4_and_lytics() -> Iterator[tuple[Any, Any]]:
    from lytics_sandbox.ga4 import GA4Sandbox
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.synth import SyntheticAccount

    with GA4Sandbox() as ga4, LyticsSandbox(SyntheticAccount(seed=5, audiences={"vip": 12})) as lytics:
        yield ga4, lytics


@pytest.fixture
def api_conn(airflow_api: AirflowApiSandbox, monkeypatch: pytest.MonkeyPatch) -> AirflowApiSandbox:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIRFLOW_API",
        json.dumps(
            {"conn_type": "http", "host": airflow_api.base_url, "login": "notes", "password": PASSWORD}
        ),
    )
    return airflow_api


def ga4_run(ga4: Any, lytics: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: Any) -> JobRun:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    ga4.add_stream("G-NOTES", "mpSecretNotes1")
    monkeypatch.setenv("AIRFLOW_CONN_GA4_DEFAULT", json.dumps(ga4.connection("mpSecretNotes1")))
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics.base_url))
    config = {"type": "ga4_audience_export", "audience": "vip", "measurement_id": "G-NOTES", **extra}
    return JobRun(config, job_id="lytics_ga4_notes")


def test_the_report_task_makes_the_report_the_run_note(
    api_conn: AirflowApiSandbox,
    ga4_and_lytics: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    ga4, lytics = ga4_and_lytics
    run = ga4_run(ga4, lytics, monkeypatch, tmp_path, client_id="_uid", export_scalar_fields=["scores"])
    api_conn.add_run("lytics_ga4_notes", run.context["run_id"])
    report = run.run()["report"]
    note = api_conn.notes[("lytics_ga4_notes", run.context["run_id"])]
    assert note == report_note(report)
    rejects = report["delivery"]["rejects_file"]
    assert note.startswith(
        "12 members: 12 enters, 0 exits, 0 changes; delivered 0; rejected 12; API calls 2;"
    )
    assert note.endswith(f"; rejects `{rejects}`")
    assert PASSWORD not in note and "mpSecretNotes1" not in note


def test_a_failed_task_names_its_error_in_the_run_note(
    api_conn: AirflowApiSandbox,
    ga4_and_lytics: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    ga4, lytics = ga4_and_lytics
    run = ga4_run(ga4, lytics, monkeypatch, tmp_path, client_id="_uid")
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics.base_url, token="wrongToken999"))
    api_conn.add_run("lytics_ga4_notes", run.context["run_id"])
    with pytest.raises(Exception) as failure:
        run.run()
    scan = run.dag.get_task("scan")
    context = {**run.context, "task": scan, "exception": failure.value}
    for callback in scan.on_failure_callback:  # as the task runner calls them
        callback(context)
    note = api_conn.notes[("lytics_ga4_notes", run.context["run_id"])]
    first_line = str(failure.value).strip().splitlines()[0]
    assert note == f"Failed: task `scan`: {type(failure.value).__name__}: {first_line}"
    assert "wrongToken999" not in note


def test_without_the_api_connection_the_run_goes_on_without_a_note(
    airflow_api: AirflowApiSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    context = make_context(run_id="manual__1", dag=DAG)
    calls = airflow_api.total_calls
    with caplog.at_level("INFO"):
        assert set_run_note(context, "a note") is False
    assert "no 'airflow_api' connection" in caplog.text
    assert airflow_api.total_calls == calls


def test_a_refused_note_is_logged_not_raised(
    api_conn: AirflowApiSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    context = make_context(run_id="manual__unknown", dag=DAG)
    with caplog.at_level("WARNING"):
        assert set_run_note(context, "a note") is False
    assert "404" in caplog.text


def test_a_long_note_is_cut_to_the_api_limit(api_conn: AirflowApiSandbox) -> None:
    context = make_context(run_id="manual__long", dag=DAG)
    api_conn.add_run(DAG.dag_id, "manual__long")
    assert set_run_note(context, "x" * 1500) is True
    note = api_conn.notes[(DAG.dag_id, "manual__long")]
    assert len(note) == 1000 and note.endswith("…")


def test_a_dry_run_note_says_nothing_was_sent() -> None:
    report = {"members": 3, "enters": 3, "exits": 0, "changes": 0, "scan_api_calls": 1, "dry_run": True}
    assert (
        report_note(report)
        == "3 members: 3 enters, 0 exits, 0 changes; dry run, nothing sent; rejected 0; API calls 1"
    )


def test_a_failure_note_without_an_exception_says_so() -> None:
    assert (
        failure_note({"task": type("T", (), {"task_id": "scan"})()})
        == "Failed: task `scan`: no error recorded"
    )
