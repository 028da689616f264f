"""Dotdigital job configs: the examples load, build their tasks, and bad options are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from lytics_provider.jobs.types.dotdigital import (
    DotdigitalExportContactsJob,
    DotdigitalExportMultipleAudiencesJob,
    DotdigitalRemoveContactsJob,
)
from lytics_provider.transfers.dotdigital_to_lytics import DATA_FIELD_MAP

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "include" / "jobs").glob("dotdigital_*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_build_their_dags(path: Path) -> None:
    from lytics_provider.jobs.dag_builder import build_dag
    from lytics_provider.jobs.loader import load_job_files

    loaded, errors = load_job_files([path])
    assert errors == []
    dag = build_dag(loaded[0])
    ids = set(dag.task_ids)
    if loaded[0].config.type == "dotdigital_import_contacts_activity":
        assert ids == {"import"}
    elif loaded[0].config.type == "dotdigital_export_multiple_audiences":
        assert ids == {f"{t}_{n}" for t in ("scan", "deliver", "report") for n in (1, 2)}
        assert dag.get_task("deliver_2").address_book_name == "VIP"
    else:
        assert ids == {"scan", "deliver", "report"}
        assert dag.get_task("scan").downstream_task_ids == {"deliver"}


def test_export_contacts_defaults_follow_the_seed() -> None:
    job = DotdigitalExportContactsJob(type="dotdigital_export_contacts", audience="a")
    assert (job.id_field, job.opt_in_type, job.email_type, job.on_exit) == (
        "dm_contact_id",
        "Unknown",
        "Html",
        "remove",
    )
    assert (job.create_address_book, job.trigger_join_actions, job.resubscribe) == (False, False, False)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"map_fields": {"first_name": "FIRST NAME!"}}, "1-20 letters"),
        ({"opt_in_type": "Maybe"}, "opt_in_type"),
        ({"on_exit": "delete"}, "on_exit"),
        ({"address_book_nam": "x"}, "address_book_nam"),
    ],
)
def test_bad_export_options_are_named(data: dict, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        DotdigitalExportContactsJob(type="dotdigital_export_contacts", audience="a", **data)


def test_multi_and_remove_rules() -> None:
    with pytest.raises(ValidationError, match="one_time and keep_updated"):
        DotdigitalExportMultipleAudiencesJob(
            type="dotdigital_export_multiple_audiences",
            audiences=[{"audience": "a", "address_book": "A"}],
            one_time=True,
            keep_updated=True,
        )
    with pytest.raises(ValidationError, match="needs address_book_name"):
        DotdigitalRemoveContactsJob(type="dotdigital_remove_contacts", audience="a", on_enter="remove")


def test_contacts_mapping_file_matches_the_importer() -> None:
    doc = yaml.safe_load((ROOT / "include" / "mappings" / "dotmailer_contacts.yaml").read_text())
    named = {k: v for k, v in doc["data_fields"].items() if k != "other"}
    assert named == DATA_FIELD_MAP
