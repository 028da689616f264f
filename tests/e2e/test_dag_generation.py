"""dags/lytics_jobs.py end to end: good configs become DAGs, a bad one becomes its own import error.

The subprocess test runs Airflow's real dag processor once over the repo's ``dags/`` folder with a
jobs folder holding two example configs and one broken copy, then reads the metadata DB through
``airflow dags list`` and ``airflow dags list-import-errors``.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from lytics_provider.jobs import loader
from lytics_provider.jobs.loader import default_dag_id

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
EXAMPLES = REPO / "include" / "jobs"


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    """Two example configs as they are, and ``broken.yaml``: the first one with timezone Mars/Base."""
    examples = sorted(EXAMPLES.glob("*.yaml"))[:2]
    assert len(examples) == 2, "include/jobs needs at least two example configs"
    directory = tmp_path / "jobs"
    directory.mkdir()
    for example in examples:
        shutil.copy(example, directory / example.name)
    config = yaml.load(examples[0].read_text(), Loader=loader._JobYamlLoader)
    config["timezone"] = "Mars/Base"
    (directory / "broken.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    loader.clear_cache()
    return directory


def good_dag_ids(jobs_dir: Path) -> list[str]:
    return sorted(default_dag_id(path) for path in jobs_dir.glob("*.yaml") if path.name != "broken.yaml")


def assert_names_file_field_and_fix(error: str, jobs_dir: Path) -> None:
    assert "broken.yaml: field 'timezone': unknown timezone 'Mars/Base'; use an IANA name such as" in error
    assert str(jobs_dir / "broken.yaml") in error or "jobs/broken.yaml" in error


def test_dagbag_keeps_good_dags_and_keys_the_error_by_the_yaml_file(
    jobs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process, the way the dag processor's DagBag reads the dags-folder bundle (fast)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("LYTICS_JOBS_DIR", str(jobs_dir))
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    bag = DagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder")
    assert sorted(bag.dag_ids) == good_dag_ids(jobs_dir)
    assert list(bag.import_errors) == [os.path.relpath(jobs_dir / "broken.yaml", DAGS)]
    assert_names_file_field_and_fix(next(iter(bag.import_errors.values())), jobs_dir)
    for dag in bag.dags.values():
        assert dag.relative_fileloc == "lytics_jobs.py"
        assert dag.tasks, dag.dag_id


def test_a_worker_parse_builds_only_its_dag(jobs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    wanted = good_dag_ids(jobs_dir)[1]
    monkeypatch.setenv("LYTICS_JOBS_DIR", str(jobs_dir))
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", wanted)
    bag = DagBag(dag_folder=str(DAGS / "lytics_jobs.py"))
    assert bag.dag_ids == [wanted]
    assert bag.import_errors == {}


def test_dag_processor_stores_good_dags_and_one_import_error_for_the_bad_yaml(
    jobs_dir: Path, airflow_cli
) -> None:
    env = {"LYTICS_JOBS_DIR": str(jobs_dir)}
    airflow_cli("dag-processor", "--num-runs", "1", env_extra=env)
    with ThreadPoolExecutor(max_workers=2) as pool:
        listed = pool.submit(airflow_cli, "dags", "list", "-o", "json", env_extra=env)
        # list-import-errors exits 1 when there are errors
        errors = pool.submit(
            airflow_cli, "dags", "list-import-errors", "-o", "json", env_extra=env, check=False
        )
    dags = {dag["dag_id"]: dag for dag in json.loads(listed.result().stdout)}
    assert set(good_dag_ids(jobs_dir)) <= set(dags)
    assert default_dag_id("broken.yaml") not in dags
    assert {dags[dag_id]["fileloc"] for dag_id in good_dag_ids(jobs_dir)} == {str(DAGS / "lytics_jobs.py")}

    result = errors.result()
    assert result.returncode == 1, result.stderr[-2000:]
    import_errors = json.loads(result.stdout)
    assert len(import_errors) == 1, import_errors
    [error] = import_errors
    assert error["bundle_name"] == "dags-folder"
    assert Path(os.path.normpath(DAGS / error["filepath"])) == jobs_dir / "broken.yaml"
    assert_names_file_field_and_fix(error["error"], jobs_dir)
