"""Job configs: each audience export's identity fields, and the exit guard options and run param of
the job types whose runs send exits."""

from __future__ import annotations

from pathlib import Path

import pytest

from lytics_provider.jobs.dag_builder import build_dag
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.jobs.schema import job_types

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "include" / "jobs").glob("*.yaml"))
GUARDED = {name for name, cls in job_types().items() if issubclass(cls, ExitGuardFields)}
"""The job types whose runs send exits: their configs carry the exit guard fields."""
EXPECTED_IDENTITY = {
    "dotdigital_export_contacts": ["_uid", "email"],
    "dotdigital_export_multiple_audiences": ["_uid", "email"],
    "dotdigital_export_modified_contacts": ["_uid", "email"],
    "dotdigital_remove_contacts": ["_uid", "email"],
    "icontact_export": ["_uid", "ic_contact_id", "email"],
    "mapp_sftp_export": ["_uid", "email"],
    "braze_export": ["_uid", "user_id", "email"],
    "iterable_export": ["_uid", "email", "user_id"],
    "customerio_export": ["_uid", "user_id", "email"],
}


def _load(path: Path):
    loaded, errors = load_job_files([path])
    assert errors == []
    return loaded[0]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_scan_uses_the_job_types_identity_fields(path: Path) -> None:
    job = _load(path)
    dag = build_dag(job)
    scans = [task for task in dag.tasks if task.task_id.startswith("scan")]
    for scan in scans:
        assert scan.identity_fields == EXPECTED_IDENTITY.get(job.config.type, ["_uid", "email"])
    guarded = job.config.type in GUARDED
    assert ("allow_mass_exit" in dag.params) is guarded
    if guarded:
        assert dag.params.get_param("allow_mass_exit").schema["type"] == "boolean"
        assert dag.params["allow_mass_exit"] is False
        for task in dag.tasks:
            if task.task_id.startswith("deliver"):
                assert (task.max_exit_fraction, task.exit_guard_min_exits) == (0.25, 100)


def test_every_guarded_job_type_has_an_example() -> None:
    """Each guarded job type is checked above through one of the example configs."""
    examples = {_load(path).config.type for path in EXAMPLES}
    assert GUARDED
    assert GUARDED.issubset(examples)


def test_options_reach_the_operators(tmp_path: Path) -> None:
    path = tmp_path / "dd.yaml"
    path.write_text(
        "type: dotdigital_export_contacts\naudience: newsletter\nemail_field: work_email\n"
        "identity_fields: [crm_id, work_email]\nmax_exit_fraction: 0.6\nexit_guard_min_exits: 10\n"
    )
    dag = build_dag(_load(path))
    assert dag.get_task("scan").identity_fields == ["crm_id", "work_email"]
    deliver = dag.get_task("deliver")
    assert (deliver.max_exit_fraction, deliver.exit_guard_min_exits) == (0.6, 10)


def test_mapp_identity_follows_its_identifier_field(tmp_path: Path) -> None:
    path = tmp_path / "mapp.yaml"
    path.write_text(
        "type: mapp_sftp_export\naudience: a\nsftp_conn_id: s\nidentifier_field: user_id\n"
        "field_mapping: {user_id: user.Identifier, email: user.Email}\n"
    )
    assert build_dag(_load(path)).get_task("scan").identity_fields == ["_uid", "user_id"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("max_exit_fraction: 0\n", "max_exit_fraction"),
        ("max_exit_fraction: 1.5\n", "max_exit_fraction"),
        ("exit_guard_min_exits: -1\n", "exit_guard_min_exits"),
        ("identity_fields: []\n", "identity_fields"),
        ("identity_fields: [email, email]\n", "identity_fields"),
    ],
)
def test_bad_options_are_named(tmp_path: Path, extra: str, needle: str) -> None:
    path = tmp_path / "dd.yaml"
    path.write_text("type: dotdigital_export_contacts\naudience: newsletter\n" + extra)
    _, errors = load_job_files([path])
    assert errors and needle in str(errors[0])


def test_jobs_without_exits_take_no_guard_options(tmp_path: Path) -> None:
    path = tmp_path / "mod.yaml"
    path.write_text(
        "type: dotdigital_export_modified_contacts\naudience: a\nmap_fields: {city: CITY}\n"
        "max_exit_fraction: 0.5\n"
    )
    _, errors = load_job_files([path])
    assert errors and "max_exit_fraction" in str(errors[0])
