"""Salesforce Marketing Cloud Export Lists against the stand-in (``lytics_sandbox.sfmc``), which follows
Salesforce's published SOAP articles on subscribers and lists: enter adds (or updates) the subscriber
on the list, each exit option does what it says and only to members the job added, nobody is
resubscribed, a subscriber refused on its own lands in the rejects with Marketing Cloud's reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from lytics_provider.hooks.sfmc import SfmcHook
from lytics_provider.hooks.sfmc_lists import SfmcListDestination, subscriber_object
from lytics_provider.jobs.types.sfmc import SfmcExportListsJob
from lytics_provider.sync.plan import Work
from lytics_sandbox.sfmc import SfmcSandbox
from tests.conformance.destinations import count_bodies
from tests.conformance.runner import JobRun
from tests.helpers import audience_emails
from tests.integration import test_sfmc

# the Marketing Cloud stand-in's fixtures, shared with test_sfmc.py
sfmc_server, sfmc, lytics_account = test_sfmc.sfmc_server, test_sfmc.sfmc, test_sfmc.lytics_account

LIST_ID = "77"


def lists_config(**options: Any) -> dict[str, Any]:
    return {
        "type": "sfmc_export_lists",
        "audience": "vip",
        "list_id": LIST_ID,
        "field_mapping": {"first_name": "First Name"},
        **options,
    }


def on_list(sandbox: SfmcSandbox) -> dict[str, str]:
    return dict(sandbox.data.list_members[LIST_ID])


def churn(lytics: Any) -> tuple[set[str], set[str]]:
    """Move ``vip`` on a step (10 exits, 5 enters); the valid emails that left and that came."""
    before = audience_emails(lytics, "vip")[0]
    lytics.set_churn("vip", exits=10, enters=5, changes=0)
    lytics.set_version("vip", 1)
    after = audience_emails(lytics, "vip")[0]
    return before - after, after - before


def test_enters_become_active_subscribers_on_the_list_with_attributes(sfmc: SfmcSandbox, lytics: Any) -> None:
    sfmc.data.add_list(LIST_ID, "VIP")
    sizes = count_bodies(sfmc, "soap", lambda request: request.body.count(b"<SubscriberKey>"))
    report = JobRun(lists_config(batch_size=40), "sfmc_list").run()["report"]
    valid, invalid = audience_emails(lytics, "vip")
    assert invalid, "the synthetic audience holds invalid emails"
    assert on_list(sfmc) == dict.fromkeys(valid, "Active")
    assert all("First Name" in sfmc.data.subscribers[key]["Attributes"] for key in valid)
    assert report["delivery"]["rejected"] == len(invalid)
    assert report["delivery"]["list"] == {"id": LIST_ID, "name": "VIP"}
    assert max(sizes) <= 40 and sum(sizes) == len(valid)


@pytest.mark.parametrize(
    ("on_exit", "left_as"), [("remove", None), ("unsubscribe", "Unsubscribed"), ("ignore", "Active")]
)
def test_each_exit_option_does_what_it_says(
    sfmc: SfmcSandbox, lytics: Any, on_exit: str, left_as: str | None
) -> None:
    sfmc.data.add_list(LIST_ID, "VIP")
    JobRun(lists_config(on_exit=on_exit), f"sfmc_exit_{on_exit}").run()
    exited, entered = churn(lytics)
    assert exited and entered
    JobRun(lists_config(on_exit=on_exit), f"sfmc_exit_{on_exit}", day=24).run()
    members = on_list(sfmc)
    assert {key: members.get(key) for key in exited} == dict.fromkeys(exited, left_as)
    assert all(members[key] == "Active" for key in entered)
    assert all(key in sfmc.data.subscribers for key in exited)  # never deleted as subscribers


def sfmc_created() -> datetime:
    return datetime(2027, 1, 1, tzinfo=UTC)


def test_an_enter_never_resubscribes_someone_unsubscribed_from_the_list(
    sfmc: SfmcSandbox, lytics: Any
) -> None:
    sfmc.data.add_list(LIST_ID, "VIP")
    member = sorted(audience_emails(lytics, "vip")[0])[0]
    sfmc.data.add_subscriber(member, member, sfmc_created())
    sfmc.data.list_members[LIST_ID][member] = "Unsubscribed"
    JobRun(lists_config(), "sfmc_no_resubscribe").run()
    assert on_list(sfmc)[member] == "Unsubscribed"
    assert sfmc.data.subscribers[member]["Status"] == "Active"  # the subscriber's own status untouched


def test_a_subscriber_refused_on_its_own_is_a_reject_with_its_reason(sfmc: SfmcSandbox, lytics: Any) -> None:
    sfmc.data.add_list(LIST_ID, "VIP")
    destination = SfmcListDestination(SfmcHook(), LIST_ID, "VIP", "email", "email", {})
    rows = [
        Work(1, "u1", "ok@example.com", None, json.dumps({"email": "ok@example.com", "attributes": {}})),
        Work(2, "u2", "bad", None, json.dumps({"email": "not an address", "attributes": {}})),
    ]
    outcomes = list(destination.add(LIST_ID, rows))
    assert outcomes[0][4] == "added" and outcomes[0][6] is None
    assert outcomes[1][4] == "Rejected" and "Invalid Email Address" in (outcomes[1][6] or "")
    assert on_list(sfmc) == {"ok@example.com": "Active"}


def test_save_objects_reads_each_result_in_order(sfmc: SfmcSandbox) -> None:
    sfmc.data.add_list(LIST_ID, "VIP")
    hook = SfmcHook()
    results = hook.save_objects(
        "Update",
        [subscriber_object("nobody", LIST_ID, "Delete"), subscriber_object("nobody2", "1", "Delete")],
    )
    assert [r["StatusCode"] for r in results] == ["Error", "Error"]
    assert "not found" in results[0]["StatusMessage"] and results[0]["ErrorCode"]


def test_an_unknown_list_fails_before_anything_is_sent(sfmc: SfmcSandbox, lytics: Any) -> None:
    with pytest.raises(ValueError, match="no list with ID '77'"):
        JobRun(lists_config(), "sfmc_no_list").run()
    assert sfmc.data.subscribers == {}


def test_config_refuses_a_bad_list_id_exit_option_or_batch_size() -> None:
    for bad in ({"list_id": "VIP"}, {"on_exit": "delete"}, {"batch_size": 101}):
        with pytest.raises(ValidationError):
            SfmcExportListsJob.model_validate({**lists_config(), **bad})
