"""Job config files -> validated configs -> DAGs, and every way a config can be wrong."""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path
from typing import Any, Literal

import pendulum
import pytest
from pydantic import Field

from lytics_provider.jobs import loader, schema
from lytics_provider.jobs.base import AudienceExportConfig, StrictModel
from lytics_provider.jobs.errors import JobConfigError, JobConfigWarning
from lytics_provider.jobs.loader import LoadedJob, load_job_file, load_jobs

REPO = Path(__file__).resolve().parents[2]


class DropOptions(StrictModel):
    """Nested options of the test job."""

    compress: bool = Field(default=False, description="Gzip the file.")
    delimiter: str = Field(default=",", description="Column delimiter.")


class DropJob(AudienceExportConfig):
    """A test-only job type: one EmptyOperator."""

    type: Literal["test_drop"]
    sftp_conn_id: str = Field(min_length=1, description="SFTP connection id.")
    api_token: str | None = Field(default=None, description="A secret the errors must never show.")
    options: DropOptions = Field(default_factory=DropOptions)

    def add_tasks(self, job: Any) -> None:
        from airflow.providers.standard.operators.empty import EmptyOperator

        EmptyOperator(task_id="deliver")


class PullJob(AudienceExportConfig):
    """A second test-only job type, so the union has a discriminator."""

    type: Literal["test_pull"]

    def add_tasks(self, job: Any) -> None:
        from airflow.providers.standard.operators.empty import EmptyOperator

        EmptyOperator(task_id="pull")


TEST_TYPES = (DropJob, PullJob)
GOOD = """\
type: test_drop
audience: high_value
sftp_conn_id: mapp_sftp
keep_updated: true
frequency: daily
time_of_day: 02:30
timezone: America/New_York
"""


@pytest.fixture(autouse=True)
def test_job_types(monkeypatch: pytest.MonkeyPatch) -> tuple[type, ...]:
    """Use the test-only job types instead of the registry."""
    monkeypatch.setattr(schema, "registered_job_types", lambda: TEST_TYPES)
    loader.clear_cache()
    return TEST_TYPES


@pytest.fixture
def jobs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty jobs folder; the working directory is its parent so errors read ``jobs/x.yaml: ...``."""
    directory = tmp_path / "jobs"
    directory.mkdir()
    monkeypatch.chdir(tmp_path)
    return directory


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def error_lines(directory: Path, name: str, text: str) -> list[str]:
    path = write(directory, name, text)
    with pytest.raises(JobConfigError) as caught:
        load_job_file(path)
    assert caught.value.path == path
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"jobs/{name}: ") for line in lines), lines
    return lines


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


def test_a_good_file_loads_with_unquoted_time_and_date(jobs_dir: Path) -> None:
    config = load_job_file(write(jobs_dir, "high_value.yaml", GOOD + "start_date: 2026-02-01\n"))
    assert isinstance(config, DropJob)
    assert config.time_of_day == "02:30"  # not YAML 1.1's base-60 number 150
    assert config.start_date == "2026-02-01"  # not a date object
    assert config.timezone == "America/New_York"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("America/New_York", "Mars/Base"),
            "jobs/bad.yaml: field 'timezone': unknown timezone 'Mars/Base'; use an IANA name such as UTC, "
            "Europe/London or America/New_York",
        ),
        (
            GOOD.replace("sftp_conn_id: mapp_sftp\n", ""),
            "jobs/bad.yaml: field 'sftp_conn_id' is required: set it to the id of an Airflow connection",
        ),
        (
            GOOD.replace("keep_updated", "keep_upated"),
            "jobs/bad.yaml: unknown field 'keep_upated'; did you mean 'keep_updated'?",
        ),
        (
            GOOD + "options:\n  compres: true\n",
            "jobs/bad.yaml: field 'options': unknown field 'compres'; did you mean 'compress'?",
        ),
        (
            GOOD + "options:\n  zzz: 1\n",
            "jobs/bad.yaml: field 'options': unknown field 'zzz'; valid fields are: compress, delimiter",
        ),
        (
            GOOD.replace("audience: high_value\n", ""),
            "jobs/bad.yaml: field 'audience' is required (Audience (segment) slug or id to export): "
            "add it to the file",
        ),
        (GOOD + "retries: three\n", "jobs/bad.yaml: field 'retries': must be a whole number (got 'three')"),
        (GOOD + "retries: 99\n", "jobs/bad.yaml: field 'retries': must be less than or equal to 20 (got 99)"),
        (
            GOOD.replace("daily", "fortnightly"),
            "jobs/bad.yaml: field 'frequency': unknown frequency 'fortnightly'; "
            'use "hourly", "every N hours" with N one of 2, 3, 4, 6, 8, 12, "every N minutes" with N one of '
            '5, 6, 10, 12, 15, 20, 30, "daily", "weekly" or "monthly"',
        ),
        (
            GOOD.replace("daily", "hourly"),
            "jobs/bad.yaml: time_of_day is only used by daily, weekly and monthly jobs, not 'hourly'; "
            "remove time_of_day or change frequency",
        ),
        (
            GOOD + "options: gzip\n",
            "jobs/bad.yaml: field 'options': must be a mapping of 'field: value' lines (got 'gzip')",
        ),
        (
            GOOD.replace("daily", "every 2 minutes").replace("time_of_day: 02:30\n", ""),
            "jobs/bad.yaml: field 'frequency': every 2 minutes is shorter than the 5-minute minimum "
            "(each run scans the audience, plans and sends before the next may start); use "
            '"every N minutes" with N one of 5, 6, 10, 12, 15, 20, 30',
        ),
        (
            GOOD.replace("daily", "every 7 minutes").replace("time_of_day: 02:30\n", ""),
            "jobs/bad.yaml: field 'frequency': every 7 minutes does not divide the hour, so runs would drift "
            'against the clock; use "every N minutes" with N one of 5, 6, 10, 12, 15, 20, 30, or "hourly" / '
            '"every N hours"',
        ),
        (
            GOOD.replace("daily", "every 15 minutes"),
            "jobs/bad.yaml: time_of_day is only used by daily, weekly and monthly jobs, "
            "not 'every 15 minutes'; remove time_of_day or change frequency",
        ),
        (
            GOOD.replace("daily", "every 15 minutes").replace("time_of_day: 02:30\n", "")
            + "scan_max_age_minutes: 30\n",
            "jobs/bad.yaml: scan_max_age_minutes 30 is not shorter than the 15-minute interval, so a run "
            "could reuse the scan of the run before it and miss the changes since; set "
            "scan_max_age_minutes below 15 (e.g. 5) or remove it",
        ),
    ],
    ids=[
        "timezone",
        "missing-conn-id",
        "typo-did-you-mean",
        "nested-typo",
        "nested-unknown-lists-fields",
        "missing-required",
        "bad-type",
        "out-of-range",
        "frequency",
        "time-of-day-with-hourly",
        "mapping-expected",
        "minutes-below-floor",
        "minutes-not-dividing-the-hour",
        "time-of-day-with-minutes",
        "shared-scan-older-than-interval",
    ],
)
def test_each_problem_names_file_field_and_fix(jobs_dir: Path, text: str, expected: str) -> None:
    assert error_lines(jobs_dir, "bad.yaml", text) == [expected]


def test_unknown_field_far_from_any_lists_the_valid_fields(jobs_dir: Path) -> None:
    [line] = error_lines(jobs_dir, "bad.yaml", GOOD + "zzzzzz: 1\n")
    assert line.startswith(
        "jobs/bad.yaml: unknown field 'zzzzzz'; valid fields are: alerts, api_token, audience, "
    )
    assert "sftp_conn_id" in line and "timezone" in line


def test_several_problems_give_one_line_each(jobs_dir: Path) -> None:
    text = (
        GOOD.replace("America/New_York", "Mars/Base").replace("sftp_conn_id: mapp_sftp\n", "")
        + "retries: x\n"
    )
    lines = error_lines(jobs_dir, "bad.yaml", text)
    assert len(lines) == 3
    assert {line.split(":")[1].strip() for line in lines} == {
        "field 'timezone'",
        "field 'sftp_conn_id' is required",
        "field 'retries'",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty; start it with 'type: <one of test_drop, test_pull>'"),
        ("- type: test_drop\n", "the file must hold a mapping of 'field: value' lines, not a list"),
        ("audience: x\n", "field 'type' is required: set it to one of: test_drop, test_pull"),
        (
            "type: test_drpo\naudience: x\n",
            "field 'type': unknown job type 'test_drpo'; did you mean 'test_drop'? valid types are: "
            "test_drop, test_pull",
        ),
        ("type: 7\n", "field 'type': unknown job type 7; valid types are: test_drop, test_pull"),
    ],
    ids=["empty", "not-a-mapping", "missing-type", "unknown-type", "type-not-text"],
)
def test_file_level_problems(jobs_dir: Path, text: str, expected: str) -> None:
    [line] = error_lines(jobs_dir, "bad.yaml", text)
    assert line.startswith(f"jobs/bad.yaml: {expected}")


def test_yaml_syntax_error_gives_the_line(jobs_dir: Path) -> None:
    [line] = error_lines(jobs_dir, "bad.yaml", "type: test_drop\naudience: [a, b\nsftp_conn_id: x\n")
    assert line.startswith("jobs/bad.yaml: YAML syntax error at line 3")
    assert line.endswith("check indentation, colons and quoting there")


def test_a_key_given_twice_is_an_error(jobs_dir: Path) -> None:
    [line] = error_lines(jobs_dir, "bad.yaml", GOOD + "audience: other\n")
    assert "key 'audience' appears twice (lines 2 and 8); keep one of them" in line


def test_secret_values_never_appear_in_errors(jobs_dir: Path) -> None:
    [line] = error_lines(jobs_dir, "bad.yaml", GOOD + "api_token: [s3cr3t-value]\n")
    assert line.startswith("jobs/bad.yaml: field 'api_token': must be text")
    assert "s3cr3t" not in line


def test_one_bad_file_never_affects_the_others(jobs_dir: Path) -> None:
    write(jobs_dir, "a.yaml", GOOD)
    write(jobs_dir, "b.yaml", GOOD.replace("America/New_York", "Mars/Base"))
    write(jobs_dir, "c.yml", "type: test_pull\naudience: churn_risk\n")
    write(jobs_dir, "nested/d.yaml", GOOD.replace("audience: high_value", "audience: d"))
    write(jobs_dir, "e.yaml", "type: [\n")
    write(jobs_dir, ".hidden.yaml", "not: a job\n")
    write(jobs_dir, "notes.txt", "not a job config")
    jobs, errors = load_jobs(jobs_dir)
    assert [(job.path.name, job.dag_id, job.config.type) for job in jobs] == [
        ("a.yaml", "lytics_a", "test_drop"),
        ("c.yml", "lytics_c", "test_pull"),
        ("d.yaml", "lytics_d", "test_drop"),
    ]
    assert [error.path.name for error in errors] == ["b.yaml", "e.yaml"]


def test_duplicate_dag_ids_are_an_error_on_the_later_file(jobs_dir: Path) -> None:
    write(jobs_dir, "a.yaml", GOOD + "dag_id: shared\n")
    write(jobs_dir, "b.yaml", GOOD + "dag_id: shared\n")
    write(jobs_dir, "c.yaml", GOOD)
    write(jobs_dir, "sub/c.yaml", GOOD)
    jobs, errors = load_jobs(jobs_dir)
    assert [job.dag_id for job in jobs] == ["shared", "lytics_c"]
    assert [str(error) for error in errors] == [
        "jobs/b.yaml: field 'dag_id': DAG id 'shared' is already used by jobs/a.yaml; "
        "set dag_id to a unique value",
        "jobs/sub/c.yaml: field 'dag_id': DAG id 'lytics_c' (from the file name) is already used by "
        "jobs/c.yaml; set dag_id to a unique value",
    ]


def test_default_dag_id_replaces_characters_a_dag_id_cannot_hold(jobs_dir: Path) -> None:
    write(jobs_dir, "high value (EU).yaml", GOOD)
    [job], _ = load_jobs(jobs_dir)
    assert job.dag_id == "lytics_high_value__EU_"


def test_a_missing_jobs_directory_is_reported(tmp_path: Path) -> None:
    jobs, [error] = load_jobs(tmp_path / "nowhere")
    assert jobs == []
    assert "the jobs directory does not exist; create it or point LYTICS_JOBS_DIR" in str(error)


def test_validated_configs_are_cached_by_content(jobs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real_validate = loader._validate

    def counting_validate(path: Path, data: Any, types: Any) -> Any:
        calls.append(path)
        return real_validate(path, data, types)

    monkeypatch.setattr(loader, "_validate", counting_validate)
    good = write(jobs_dir, "a.yaml", GOOD)
    write(jobs_dir, "b.yaml", "type: nope\n")
    first, first_errors = load_jobs(jobs_dir)
    second, second_errors = load_jobs(jobs_dir)
    assert len(calls) == 2
    assert second[0].config is first[0].config
    assert [str(error) for error in second_errors] == [str(error) for error in first_errors]
    good.write_text(GOOD.replace("high_value", "churn_risk"))
    third, _ = load_jobs(jobs_dir)
    assert len(calls) == 3
    assert third[0].config.audience == "churn_risk"


# ------------------------------------------------------------------------------------------------
# Schema
# ------------------------------------------------------------------------------------------------


def test_json_schema_is_a_union_over_the_registered_types_with_descriptions() -> None:
    generated = schema.job_config_json_schema()
    assert generated["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert generated["discriminator"]["propertyName"] == "type"
    assert set(generated["discriminator"]["mapping"]) == {"test_drop", "test_pull"}
    drop = generated["$defs"]["DropJob"]
    assert drop["additionalProperties"] is False
    assert drop["properties"]["timezone"]["description"].startswith("IANA timezone")
    assert drop["properties"]["type"]["const"] == "test_drop"
    assert set(drop["required"]) == {"type", "audience", "sftp_conn_id"}
    assert json.loads(schema.job_config_json_schema_text()) == generated


def test_a_new_job_type_in_the_registry_just_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    class ExtraJob(AudienceExportConfig):
        type: Literal["test_extra"]

    monkeypatch.setattr(schema, "registered_job_types", lambda: (*TEST_TYPES, ExtraJob))
    assert list(schema.job_types()) == ["test_drop", "test_pull", "test_extra"]
    assert "test_extra" in schema.job_config_json_schema()["discriminator"]["mapping"]


def test_a_job_type_without_a_literal_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Untyped(AudienceExportConfig):
        pass

    monkeypatch.setattr(schema, "registered_job_types", lambda: (Untyped,))
    with pytest.raises(TypeError, match=r"Untyped\.type must be a Literal"):
        schema.job_types()


# ------------------------------------------------------------------------------------------------
# DAGs
# ------------------------------------------------------------------------------------------------


def loaded(jobs_dir: Path, text: str = GOOD, name: str = "high_value.yaml") -> LoadedJob:
    jobs, errors = loader.load_job_files([write(jobs_dir, name, text)])
    assert errors == []
    return jobs[0]


def test_build_dag_sets_schedule_dates_defaults_tags_docs_and_params(jobs_dir: Path) -> None:
    from lytics_provider.jobs.dag_builder import build_dag
    from lytics_provider.timetables.keep_updated import KeepUpdatedTimetable

    text = GOOD + "tags: [emea, lytics]\nretries: 5\nowner: data-eng\ndescription: High value to Mapp\n"
    dag = build_dag(loaded(jobs_dir, text))
    assert dag.dag_id == "lytics_high_value"
    assert dag.timetable == KeepUpdatedTimetable(
        "30 2 * * *", timezone="America/New_York", words="daily at 02:30 America/New_York"
    )
    assert dag.start_date == pendulum.datetime(2026, 1, 1, tz="America/New_York")
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.default_args["owner"] == "data-eng"
    assert dag.default_args["retries"] == 5
    assert dag.default_args["retry_delay"].total_seconds() == 120
    assert sorted(dag.tags) == ["emea", "lytics", "test_drop"]
    assert dag.description == "High value to Mapp"
    assert "`jobs/high_value.yaml`" in dag.doc_md
    assert "daily at 02:30 America/New_York" in dag.doc_md
    assert "audience: high_value" in dag.doc_md
    assert [task.task_id for task in dag.tasks] == ["deliver"]


def test_params_are_typed_and_described_for_the_trigger_form(jobs_dir: Path) -> None:
    from lytics_provider.jobs.dag_builder import build_dag

    params = build_dag(loaded(jobs_dir)).params
    assert params.dump() == {"audience": "high_value", "full_refresh": False, "dry_run": False}
    schemas = {name: params.get_param(name).schema for name in params}
    assert schemas["audience"]["type"] == "string"
    assert schemas["full_refresh"]["type"] == "boolean"
    assert schemas["dry_run"]["type"] == "boolean"
    assert all(params.get_param(name).description for name in params)
    params.validate()  # the defaults pass their own schema


def test_one_time_job_is_scheduled_once(jobs_dir: Path) -> None:
    from airflow.timetables.simple import OnceTimetable

    from lytics_provider.jobs.dag_builder import build_dag
    from lytics_provider.jobs.schedule import ONCE

    dag = build_dag(loaded(jobs_dir, "type: test_pull\naudience: churn\n"))
    assert ONCE == "@once"
    assert type(dag.timetable).__name__ == OnceTimetable.__name__
    assert dag.start_date == pendulum.datetime(2026, 1, 1, tz="UTC")


def test_secret_looking_fields_are_redacted_in_the_dag_docs(jobs_dir: Path) -> None:
    from lytics_provider.jobs.dag_builder import build_dag

    dag = build_dag(loaded(jobs_dir, GOOD + "api_token: s3cr3t-value\n"))
    assert "s3cr3t" not in dag.doc_md
    assert "api_token: '***'" in dag.doc_md


def test_build_dags_builds_only_the_dag_a_worker_asks_for(jobs_dir: Path) -> None:
    from lytics_provider.jobs.dag_builder import build_dags

    write(jobs_dir, "a.yaml", GOOD)
    write(jobs_dir, "b.yaml", GOOD)
    write(jobs_dir, "c.yaml", "type: nope\n")
    assert list(build_dags(jobs_dir, only_dag_id="lytics_b")) == ["lytics_b"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sorted(build_dags(jobs_dir)) == ["lytics_a", "lytics_b"]
    assert [str(warning.message) for warning in caught if warning.category is JobConfigWarning] == [
        "jobs/c.yaml: field 'type': unknown job type 'nope'; valid types are: test_drop, test_pull"
    ]


def test_a_job_type_that_fails_to_build_is_reported_and_the_rest_still_build(
    jobs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lytics_provider.jobs.dag_builder import build_dags

    def broken(self: PullJob, job: Any) -> None:
        raise ValueError("no such bucket")

    monkeypatch.setattr(PullJob, "add_tasks", broken)
    write(jobs_dir, "a.yaml", GOOD)
    write(jobs_dir, "b.yaml", "type: test_pull\naudience: x\n")
    with pytest.warns(
        JobConfigWarning, match=r"jobs/b.yaml: cannot build DAG 'lytics_b': ValueError: no such bucket"
    ):
        assert list(build_dags(jobs_dir)) == ["lytics_a"]


def test_dagbag_gets_good_dags_and_one_import_error_per_bad_yaml(
    jobs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real DAG file in a DagBag, in process (fast): errors keyed by YAML path, good DAGs kept."""
    from airflow.dag_processing.dagbag import DagBag

    write(jobs_dir, "a.yaml", GOOD)
    write(jobs_dir, "b.yaml", "type: test_pull\naudience: churn\n")
    bad = write(jobs_dir, "bad.yaml", GOOD.replace("America/New_York", "Mars/Base"))
    typo = write(jobs_dir, "typo.yaml", GOOD.replace("keep_updated", "keep_upated"))
    monkeypatch.setenv("LYTICS_JOBS_DIR", str(jobs_dir))
    bag = DagBag(dag_folder=str(REPO / "dags" / "lytics_jobs.py"), safe_mode=True)
    assert sorted(bag.dag_ids) == ["lytics_a", "lytics_b"]
    assert sorted(bag.import_errors) == [str(bad), str(typo)]
    assert bag.import_errors[str(bad)] == (
        "jobs/bad.yaml: field 'timezone': unknown timezone 'Mars/Base'; use an IANA name such as UTC, "
        "Europe/London or America/New_York"
    )
    assert (
        bag.import_errors[str(typo)]
        == "jobs/typo.yaml: unknown field 'keep_upated'; did you mean 'keep_updated'?"
    )


def test_import_error_keys_follow_the_bundle_root() -> None:
    from lytics_provider.jobs.dag_builder import import_error_key

    assert import_error_key(Path("/repo/include/jobs/a.yaml"), "/repo/dags") == "../include/jobs/a.yaml"
    assert import_error_key(Path("/repo/dags/jobs/a.yaml"), "/repo/dags") == "jobs/a.yaml"
    assert import_error_key(Path("/repo/include/jobs/a.yaml"), None) == "/repo/include/jobs/a.yaml"


def test_jobs_directory_defaults_to_include_jobs_beside_the_dags_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lytics_provider.jobs.dag_builder import jobs_directory

    monkeypatch.delenv("LYTICS_JOBS_DIR", raising=False)
    assert jobs_directory("/repo/dags/lytics_jobs.py") == Path("/repo/include/jobs")
    monkeypatch.setenv("LYTICS_JOBS_DIR", "/srv/jobs")
    assert jobs_directory("/repo/dags/lytics_jobs.py") == Path("/srv/jobs")
