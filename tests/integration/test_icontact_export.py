"""Export Audience to List against the Lytics and iContact sandboxes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator
from lytics_provider.pipeline import http
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.transfers.lytics_to_icontact import EXPORT_FIELDS, LyticsToIContactListOperator
from lytics_sandbox.faults import FaultRule
from lytics_sandbox.icontact import IContactData, IContactSandbox
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.helpers import lytics_conn, make_context, run_task

SLUG = "ic_members"
SIZE = 1200
SUBS = r"/subscriptions"


def build_sandboxes(size: int) -> tuple[LyticsSandbox, IContactSandbox, dict[str, str]]:
    """A Lytics audience whose users with an even index carry ``ic_contact_id``; iContact holds those
    contacts, plus (for every 5th odd user) a contact found only by email."""
    account = SyntheticAccount(seed=5, audiences={SLUG: size})
    data = IContactData(contacts={}, lists={}, subscriptions={}, messages={}, activity={})
    data.add_list("Lytics Export", list_id="777")
    make = account.profiler()
    ids: dict[int, str] = {}
    for i in range(account.universe() + size):  # room for enters of later versions
        profile = make(i)
        if i % 2 == 0:
            ids[i] = data.add_contact(email=profile["email"], firstName=profile["first_name"])["contactId"]
        elif i % 5 == 0:
            data.add_contact(email=profile["email"], street="1 Keep St", firstName="Kept")
    original = account.profiler

    def profiler(versions=None):
        inner = original(versions)

        def with_ids(i: int) -> dict:
            profile = inner(i)
            if i in ids:
                profile["ic_contact_id"] = ids[i]
            return profile

        return with_ids

    account.profiler = profiler  # type: ignore[method-assign]
    by_email = {c["email"]: cid for cid, c in data.contacts.items()}
    return LyticsSandbox(account), IContactSandbox(data), by_email


class Env:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path, size: int = SIZE) -> None:
        self.lytics, self.icontact, self.by_email = build_sandboxes(size)
        self.lytics.start()
        self.icontact.start()
        monkeypatch.setenv("AIRFLOW_CONN_ICONTACT_DEFAULT", json.dumps(self.icontact.connection()))
        monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(self.lytics.base_url))
        monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.001)

    def run(self, run_id: str, params: dict | None = None, batch_size: int = 100) -> dict:
        context = make_context(run_id=run_id, params=params)
        run_task(
            LyticsAudienceScanOperator(
                task_id="scan", audience=SLUG, job_id="ic_export", fields=list(EXPORT_FIELDS)
            ),
            context,
        )
        op = LyticsToIContactListOperator(
            task_id="deliver", job_id="ic_export", destination_list="Lytics Export", batch_size=batch_size
        )
        run_task(op, context)
        return run_task(LyticsCommitRunOperator(task_id="report", job_id="ic_export"), context)

    def members(self) -> list[dict]:
        return list(self.lytics.account.iter_members(SLUG))

    def contact_id_of(self, member: dict) -> str:
        return member.get("ic_contact_id") or self.data.contact_by_email(member["email"])["contactId"]

    @property
    def data(self) -> IContactData:
        return self.icontact.data


@pytest.fixture
def env(monkeypatch, tmp_path) -> Iterator[Env]:
    env = Env(monkeypatch, tmp_path)
    try:
        yield env
    finally:
        env.lytics.stop()
        env.icontact.stop()


def test_every_member_is_subscribed_in_batches(env: Env) -> None:
    members = env.members()
    before = {cid: dict(c) for cid, c in env.data.contacts.items()}
    report = env.run("manual__1")
    delivery = report["delivery"]
    expected = {env.contact_id_of(m) for m in members}
    assert env.data.subscribers("777") == expected
    assert delivery["members"] == len(members) == SIZE
    assert delivery["batches"] == SIZE // 100 == env.icontact.calls_to("subscriptions_post")
    with_id = sum(1 for m in members if m.get("ic_contact_id"))
    found = sum(1 for m in members if not m.get("ic_contact_id") and m["email"] in env.by_email)
    assert delivery["contacts_found_by_email"] == found > 0
    assert delivery["contacts_created"] == len(members) - with_id - found > 0
    assert delivery["subscribed"] == len(members) and delivery["rejected"] == 0
    # Contacts found by email are never re-posted, so iContact keeps their other fields.
    for cid, old in before.items():
        assert env.data.contacts[cid] == old
    # Contact creation happens in collection POSTs, at most one per batch, and only once.
    assert env.icontact.calls_to("contacts_post") <= delivery["batches"]
    assert env.icontact.calls_to("contacts_list") >= 1
    assert report["enters"] == SIZE


def test_keep_updated_sends_only_enters_and_leaves_exits(env: Env) -> None:
    env.run("scheduled__1")
    first = env.data.subscribers("777")
    old_members = {m["_uid"] for m in env.members()}
    env.lytics.set_version(SLUG, 1)
    env.icontact.reset_counters()
    report = env.run("scheduled__2")
    entered = [m for m in env.members() if m["_uid"] not in old_members]
    assert report["enters"] == len(entered) > 0 and report["exits"] > 0
    assert report["delivery"]["mode"] == "enters" and report["delivery"]["members"] == len(entered)
    assert env.icontact.calls_to("subscriptions_post") == -(-len(entered) // 100)
    assert env.data.subscribers("777") == first | {env.contact_id_of(m) for m in entered}


def test_unsubscribed_contacts_are_not_resubscribed(env: Env) -> None:
    members = env.members()
    victim = env.contact_id_of(members[0])
    env.data.subscribe("777", victim, "unsubscribed")
    report = env.run("manual__unsub")
    assert env.data.subscriptions[f"777_{victim}"]["status"] == "unsubscribed"
    assert report["delivery"]["skipped_unsubscribed"] == 1
    assert report["delivery"]["subscribed"] == len(members) - 1


def test_unknown_contact_ids_and_members_without_email_go_to_rejects(env: Env) -> None:
    members = env.members()
    gone = members[0]["ic_contact_id"] if members[0].get("ic_contact_id") else members[1]["ic_contact_id"]
    del env.data.contacts[gone]
    report = env.run("manual__rejects")
    delivery = report["delivery"]
    assert delivery["rejected"] == 1
    with open(delivery["rejects_file"], encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert len(lines) == 1 and f"Contact {gone} does not exist" in lines[0]["reason"]
    assert lines[0]["uid"] in {m["_uid"] for m in members[:2]}
    assert "@" not in json.dumps(lines)  # rejects carry ids, not emails


def test_failed_batch_is_retried_without_resending_acknowledged_ones(env: Env) -> None:
    context = make_context(run_id="manual__retry")
    scan = LyticsAudienceScanOperator(
        task_id="scan", audience=SLUG, job_id="ic_export", fields=list(EXPORT_FIELDS)
    )
    run_task(scan, context)
    env.icontact.faults.add(FaultRule("5xx", status=503, path_regex=SUBS, method="POST", after=3, times=50))
    op = LyticsToIContactListOperator(
        task_id="deliver", job_id="ic_export", destination_list="777", batch_size=100
    )
    with pytest.raises(ServiceError):
        op.execute(context)
    env.icontact.faults.clear()
    env.icontact.reset_counters()
    report = op.execute(context)
    assert env.icontact.calls_to("subscriptions_post") == SIZE // 100 - 3
    assert report["batches"] == SIZE // 100 and report["subscribed"] == SIZE
    assert env.data.subscribers("777") == {env.contact_id_of(m) for m in env.members()}


def test_dry_run_writes_nothing(env: Env) -> None:
    report = env.run("manual__dry", params={"dry_run": True})
    assert env.icontact.calls_to("subscriptions_post") == 0 and env.icontact.calls_to("contacts_post") == 0
    assert env.data.subscribers("777") == set()
    assert report["delivery"]["subscribed"] == SIZE and report["dry_run"] is True


def test_unknown_list_names_the_lists(env: Env) -> None:
    context = make_context(run_id="manual__nolist")
    run_task(
        LyticsAudienceScanOperator(task_id="scan", audience=SLUG, job_id="ic_export", user_limit=5), context
    )
    op = LyticsToIContactListOperator(task_id="deliver", job_id="ic_export", destination_list="Nope")
    with pytest.raises(ValueError, match=r"destination list 'Nope' not found.*777 \(Lytics Export\)"):
        op.execute(context)
