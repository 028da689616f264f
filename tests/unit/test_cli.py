"""``lytics-airflow validate / list / schema`` with good and bad files, and the committed JSON Schema."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.jobs import loader, schema
from lytics_provider.jobs.cli import main
from tests.unit.test_job_configs import GOOD, TEST_TYPES, PullJob, write

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def test_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "registered_job_types", lambda: TEST_TYPES)
    loader.clear_cache()


@pytest.fixture
def jobs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_types: None) -> Path:
    directory = tmp_path / "jobs"
    directory.mkdir()
    monkeypatch.chdir(tmp_path)
    write(directory, "a.yaml", GOOD)
    write(
        directory,
        "b.yaml",
        "type: test_pull\naudience: churn\nkeep_updated: true\nfrequency: every 6 hours\n",
    )
    return directory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_good_files_prints_ok_lines_and_exits_0(jobs_dir: Path, capsys) -> None:
    code, out, err = run(capsys, "validate", "jobs")
    assert code == 0
    assert out.splitlines() == [
        "OK jobs/a.yaml (lytics_a, test_drop, daily at 02:30 America/New_York)",
        "OK jobs/b.yaml (lytics_b, test_pull, every 6 hours (UTC))",
        "2 valid, 0 invalid",
    ]
    assert err == ""


def test_validate_bad_files_prints_the_errors_and_exits_1(jobs_dir: Path, capsys) -> None:
    write(
        jobs_dir,
        "bad.yaml",
        GOOD.replace("America/New_York", "Mars/Base").replace("sftp_conn_id: mapp_sftp\n", ""),
    )
    code, out, err = run(capsys, "validate", "jobs/a.yaml", "jobs/bad.yaml", "jobs/missing.yaml")
    assert code == 1
    assert out.splitlines() == ["OK jobs/a.yaml (lytics_a, test_drop, daily at 02:30 America/New_York)"]
    assert err.splitlines() == [
        "jobs/missing.yaml: no such file or directory; check the path",
        "jobs/bad.yaml: field 'timezone': unknown timezone 'Mars/Base'; use an IANA name such as UTC, "
        "Europe/London or America/New_York",
        "jobs/bad.yaml: field 'sftp_conn_id' is required: set it to the id of an Airflow connection",
        "1 valid, 2 invalid",
    ]


def test_validate_reports_duplicate_dag_ids_across_the_given_paths(
    jobs_dir: Path, tmp_path: Path, capsys
) -> None:
    other = tmp_path / "more"
    write(other, "a.yaml", GOOD)
    code, _, err = run(capsys, "validate", "jobs", "more")
    assert code == 1
    assert (
        "more/a.yaml: field 'dag_id': DAG id 'lytics_a' (from the file name) is already used by jobs/a.yaml"
        in err
    )


def test_validate_build_catches_a_dag_that_cannot_be_built(
    jobs_dir: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: PullJob, job: Any) -> None:
        raise ValueError("bucket name is empty")

    assert run(capsys, "validate", "--build", "jobs")[0] == 0
    monkeypatch.setattr(PullJob, "add_tasks", broken)
    assert run(capsys, "validate", "jobs")[0] == 0  # the config itself is valid
    code, out, err = run(capsys, "validate", "--build", "jobs")
    assert code == 1
    assert "OK jobs/a.yaml" in out
    assert "jobs/b.yaml: cannot build DAG 'lytics_b': ValueError: bucket name is empty" in err


def test_list_shows_dag_id_type_and_schedule_in_words(jobs_dir: Path, capsys) -> None:
    write(jobs_dir, "c.yaml", "type: test_pull\naudience: x\ndag_id: adhoc_pull\n")
    code, out, err = run(capsys, "list", "jobs")
    assert code == 0
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]
    assert rows == [
        ["DAG ID", "TYPE", "SCHEDULE", "FILE"],
        ["adhoc_pull", "test_pull", "once", "jobs/c.yaml"],
        ["lytics_a", "test_drop", "daily at 02:30 America/New_York", "jobs/a.yaml"],
        ["lytics_b", "test_pull", "every 6 hours (UTC)", "jobs/b.yaml"],
    ]
    assert len({line.index("jobs/") for line in out.splitlines()[1:]}) == 1  # columns line up
    assert err == ""


def test_list_with_a_bad_file_lists_the_rest_and_exits_1(jobs_dir: Path, capsys) -> None:
    write(jobs_dir, "bad.yaml", "type: test_pul\n")
    code, out, err = run(capsys, "list", "jobs")
    assert code == 1
    assert len(out.splitlines()) == 3
    assert err.startswith(
        "jobs/bad.yaml: field 'type': unknown job type 'test_pul'; did you mean 'test_pull'?"
    )


def test_schema_prints_the_generated_json_schema(test_types: None, capsys) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert json.loads(out) == schema.job_config_json_schema()


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["validate"])
    assert caught.value.code == 2
    assert "PATH" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# The real registry
# ------------------------------------------------------------------------------------------------


def test_committed_json_schema_matches_the_models() -> None:
    """If this fails, refresh the file: lytics-airflow schema > lytics_provider/jobs/job-config.schema.json"""
    loader.clear_cache()
    committed = schema.SCHEMA_FILE.read_text()
    assert committed == schema.job_config_json_schema_text(), (
        "lytics_provider/jobs/job-config.schema.json is out of date; refresh it with "
        "`lytics-airflow schema > lytics_provider/jobs/job-config.schema.json`"
    )
    assert set(json.loads(committed)["discriminator"]["mapping"]) == set(schema.job_types())


def test_example_job_configs_validate_and_build_with_the_console_script() -> None:
    script = Path(sys.executable).with_name("lytics-airflow")
    assert script.exists(), "the lytics-airflow console script is not installed; run make venv"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [str(script), "validate", "--build", "include/jobs"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    ok = [line for line in result.stdout.splitlines() if line.startswith("OK include/jobs/")]
    assert ok, result.stdout
    assert result.stdout.splitlines()[-1] == f"{len(ok)} valid, 0 invalid"


def test_example_job_configs_pass_the_committed_json_schema() -> None:
    """What an editor checks against the published schema accepts every example, and rejects a typo."""
    import jsonschema
    import yaml

    validator = jsonschema.Draft202012Validator(json.loads(schema.SCHEMA_FILE.read_text()))
    examples = sorted((REPO / "include" / "jobs").glob("*.yaml"))
    assert examples
    for path in examples:
        config = yaml.load(path.read_text(), Loader=loader._JobYamlLoader)
        assert list(validator.iter_errors(config)) == [], path.name
        config["keep_upated"] = True
        assert list(validator.iter_errors(config)), path.name
