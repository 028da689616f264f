"""The demo's pure parts: the table, the report figures, the error line, the jobs' needs."""

from __future__ import annotations

from lytics_sandbox.demo import JobNeeds, conn_env_name
from lytics_sandbox.demo_runner import Row, first_error, markdown_table, report_figures


def test_table_marks_green_rows_counts_them_and_names_stand_ins_not_running() -> None:
    rows = [
        Row("lytics_s3_export", "success", 300, 300, 0, 12.4),
        Row("lytics_azure_blob_import", "failed", seconds=3, note="list: no | container"),
    ]
    table = markdown_table(rows, {"azurite": "npx is not on PATH"})
    lines = table.splitlines()
    assert lines[0] == "| DAG | state | members | delivered | rejected | seconds | note |"
    assert lines[2] == "| lytics_s3_export | ✅ success | 300 | 300 | 0 | 12 |  |"
    assert lines[3] == "| lytics_azure_blob_import | ❌ failed |  |  |  | 3 | list: no \\| container |"
    assert "1 of 2 runs succeeded." in lines
    assert lines[-1] == "Stand-in not running: azurite (npx is not on PATH)."


def test_report_figures_sum_the_last_tasks_reports() -> None:
    export = {"members": 300, "delivery": {"delivered": 290, "rejected": 10}}
    second = {"members": 50, "delivery": {"outcomes": {"added": 50}}}
    assert report_figures([export, second]) == (350, 340, 10)
    assert report_figures([{"rows": 12, "rows_rejected": 2}]) == (None, 12, 2)
    assert report_figures([]) == (None, None, None)


def test_first_error_is_the_last_error_events_exception() -> None:
    log = {
        "content": [
            {"event": "starting", "level": "info"},
            {
                "event": "Task failed with exception",
                "level": "error",
                "error_detail": [{"exc_type": "ValueError", "exc_value": "bucket missing\nfix: create it"}],
            },
        ]
    }
    assert first_error(log) == "ValueError: bucket missing"
    assert first_error({"content": [{"event": "fine", "level": "info"}]}) == ""


def test_job_needs_collects_connection_ids_by_kind_audiences_and_names() -> None:
    needs = JobNeeds()
    needs.add(
        {"audience": "high_value", "sftp_conn_id": "mapp_sftp", "folder": "/upload", "pgp_conn_id": None}
    )
    needs.add({"audiences": [{"audience": "vip"}], "alerts": {"slack_webhook_conn_id": "slack_alerts"}})
    assert needs.conn_ids == {"sftp": {"mapp_sftp"}, "slack_webhook": {"slack_alerts"}}
    assert needs.audiences == {"high_value", "vip"}
    assert needs.named("folder", "bucket") == {"/upload"}
    assert conn_env_name("mapp_sftp") == "AIRFLOW_CONN_MAPP_SFTP"
