"""iContact import against the iContact and Lytics sandboxes: every seed mapping row, Filter by AID,
incremental reruns, retries and dry runs."""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from lytics_provider.hooks.icontact import IContactHook
from lytics_provider.pipeline import http
from lytics_provider.pipeline.http import AuthError, ServiceError
from lytics_provider.pipeline.icontact_mapping import ACTIVITY_MAPPING, USER_MAPPING, lql_hash
from lytics_provider.transfers.icontact_to_lytics import (
    IContactActivityToLyticsOperator,
    IContactImportReportOperator,
    IContactUsersToLyticsOperator,
)
from lytics_sandbox.faults import FaultRule
from lytics_sandbox.icontact import COLLECTIONS, IContactData, IContactSandbox
from lytics_sandbox.lytics import LyticsSandbox
from tests.helpers import lytics_conn, make_context, run_task

AID = 4242
KIND = {"bounces": "bounce", "opens": "open", "clicks": "click", "unsubscribes": "unsubscribe"}
API_KEY = {
    "bounce_count": "bounceCount", "business": "business", "city": "city", "create_date": "createDate",
    "fax": "fax", "first_name": "firstName", "id": "contactId", "last_name": "lastName", "phone": "phone",
    "postal_code": "postalCode", "prefix": "prefix", "state": "state", "status": "status", "street": "street",
    "street_line_2": "street2", "suffix": "suffix",
}  # fmt: skip


class Env:
    """Both sandboxes plus the connections and data directory the operators use."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
        self.icontact = IContactSandbox(IContactData.synthetic(contacts=60, messages=4, aid=AID))
        self.lytics = LyticsSandbox()
        self.icontact.start()
        self.lytics.start()
        monkeypatch.setenv("AIRFLOW_CONN_ICONTACT_DEFAULT", json.dumps(self.icontact.connection()))
        monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(self.lytics.base_url))
        monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.001)

    def stop(self) -> None:
        self.icontact.stop()
        self.lytics.stop()

    def run(self, run_id: str, params: dict | None = None, **kwargs) -> dict:
        """Run users → activity → report as Airflow would, with small pages and batches."""
        context = make_context(run_id=run_id, params=params)
        opts = {"job_id": "ic_import", "page_size": 7, "send_batch": 40, **kwargs}
        run_task(IContactUsersToLyticsOperator(task_id="users", **opts), context)
        run_task(IContactActivityToLyticsOperator(task_id="activity", aid=AID, **opts), context)
        return run_task(IContactImportReportOperator(task_id="report", job_id="ic_import"), context)

    def records(self, kind: str) -> list[dict]:
        return [r for r in self.lytics.collected("icontact_activity") if r["record_type"] == kind]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Iterator[Env]:
    """One import run shared by the per-row mapping tests."""
    with pytest.MonkeyPatch.context() as mp:
        env = Env(mp, tmp_path_factory.mktemp("icontact"))
        try:
            env.run("scheduled__2026-06-01T00:00:00+00:00")
            yield env
        finally:
            env.stop()


@pytest.fixture
def env(monkeypatch, tmp_path) -> Iterator[Env]:
    env = Env(monkeypatch, tmp_path)
    try:
        yield env
    finally:
        env.stop()


# -- expected values, computed straight from the sandbox data ----------------------------------------


def _expected_user_value(contact: dict, source: str):
    email = contact["email"].strip().lower()
    valid = "@" in email and "." in email.rpartition("@")[2]
    if source == "email(email)":
        return email if valid else None
    if source == "emaildomain(email)":
        return email.rpartition("@")[2] if valid else None
    value = str(contact[API_KEY[source]]).strip()
    if source == "create_date":
        moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("America/New_York"))
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value or None


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def _tagged_events(data: IContactData) -> dict[str, list[tuple[str, int, str | None]]]:
    """contact id -> [(event type, epoch ms, url)] over the messages tagged with AID."""
    out: dict[str, list[tuple[str, int, str | None]]] = defaultdict(list)
    for mid in data.tagged_messages(AID):
        for collection, time_key in COLLECTIONS.items():
            for row in data.activity[(mid, collection)]:
                out[str(row["contactId"])].append(
                    (KIND[collection], _ms(row[time_key]), row.get("clickLink"))
                )
    return out


def _expected_activity_value(events: list[tuple[str, int, str | None]], field: str):
    by_kind = defaultdict(list)
    for kind, ts, _ in events:
        by_kind[kind].append(ts)
    engaged = by_kind["open"] + by_kind["click"] + by_kind["unsubscribe"]
    counts = {"email_bouncect": "bounce", "email_click_ct": "click", "email_open_ct": "open"}
    counts["email_unsubscribect"] = "unsubscribe"
    lasts = {"email_last_click_ts": "click", "email_last_open_ts": "open", "email_lastbounce_ts": "bounce"}
    lasts["email_lastunsubscribe_ts"] = "unsubscribe"
    firsts = {
        "email_first_click_ts": "click",
        "email_first_open_ts": "open",
        "email_firstbounce_ts": "bounce",
    }
    firsts["email_firstunsubscribe_ts"] = "unsubscribe"
    if field in counts:
        return len(by_kind[counts[field]]) or None
    if field in lasts:
        return max(by_kind[lasts[field]], default=None)
    if field in firsts:
        return min(by_kind[firsts[field]], default=None)
    if field == "last_active_ts":
        return max(engaged, default=None)
    if field == "last_channel_activities":
        return {"email": max(engaged)} if engaged else None
    if field == "channels":
        return ["email"] if engaged else None
    if field == "hashedurls":
        urls = Counter()
        for _, _, url in events:
            if url:
                parts = urlsplit(url)
                urls[lql_hash(parts.netloc + parts.path)] += 1
        return dict(urls) or None
    raise AssertionError(field)


# -- per mapping row ---------------------------------------------------------------------------------


@pytest.mark.parametrize("row", USER_MAPPING, ids=lambda r: f"{r.source}->{r.field}")
def test_users_mapping_row(imported: Env, row) -> None:
    written = {r["ic_contact_id"]: r for r in imported.lytics.collected("icontact_users")}
    contacts = imported.icontact.data.contacts
    assert set(written) == set(contacts)
    present = 0
    for cid, contact in contacts.items():
        expected = _expected_user_value(contact, row.source)
        assert written[cid].get(row.field) == expected, (cid, row.field)
        present += expected is not None
    assert present > 0, f"the sandbox data never exercises {row.field}"


@pytest.mark.parametrize("row", ACTIVITY_MAPPING, ids=lambda r: f"{r.field}")
def test_activity_mapping_row(imported: Env, row) -> None:
    profiles = {r["ic_contact_id"]: r for r in imported.records("profile")}
    events = _tagged_events(imported.icontact.data)
    assert set(profiles) == set(events)
    present = 0
    for cid, contact_events in events.items():
        if row.field == "ic_contact_id":
            expected = cid
        else:
            expected = _expected_activity_value(contact_events, row.field)
        assert profiles[cid].get(row.field) == expected, (cid, row.field)
        present += expected is not None
    assert present > 0, f"the sandbox data never exercises {row.field}"


def test_events_are_the_tagged_messages_activity_once_each(imported: Env) -> None:
    data = imported.icontact.data
    tagged = set(data.tagged_messages(AID))
    assert 0 < len(tagged) < len(data.messages)
    events = imported.records("event")
    expected = sum(len(data.activity[(m, c)]) for m in tagged for c in COLLECTIONS)
    assert len(events) == expected
    assert {e["message_id"] for e in events} == tagged
    assert len({e["event_id"] for e in events}) == len(events)
    click = next(e for e in events if e["event_type"] == "click")
    assert click["event_url"].startswith("http") and click["ic_contact_id"] == click["contact_id"]


# -- incremental -------------------------------------------------------------------------------------


def test_rerun_after_new_activity_sends_only_the_new_events(env: Env) -> None:
    first = env.run("scheduled__2026-06-01T00:00:00+00:00")
    data = env.icontact.data
    events_before = env.records("event")
    users_before = len(env.lytics.collected("icontact_users"))
    assert first["users"]["sent"] == users_before == len(data.contacts)

    tagged, untagged = (
        data.tagged_messages(AID)[0],
        next(m for m in data.messages if m not in data.tagged_messages(AID)),
    )
    cids = list(data.contacts)
    newest = max(_ms(r["openTime"]) for r in data.activity[(tagged, "opens")])
    late = datetime.fromtimestamp(newest / 1000, UTC) - timedelta(minutes=30)  # inside the lookback
    added = [
        data.add_activity(tagged, "opens", cids[0], datetime(2026, 7, 1, 12, tzinfo=UTC)),
        data.add_activity(
            tagged, "clicks", cids[1], datetime(2026, 7, 1, 13, tzinfo=UTC), "https://x.example/p?a=1"
        ),
        data.add_activity(tagged, "opens", cids[2], late),
        data.add_activity(untagged, "opens", cids[3], datetime(2026, 7, 1, 14, tzinfo=UTC)),
    ]
    data.contacts[cids[4]]["city"] = "Durham"

    second = env.run("scheduled__2026-06-01T01:00:00+00:00")
    new_events = env.records("event")[len(events_before) :]
    assert sorted((e["contact_id"], e["event_type"]) for e in new_events) == sorted(
        [(cids[0], "open"), (cids[1], "click"), (cids[2], "open")]
    )
    assert second["activity"]["new_events"] == 3 == len(added) - 1
    all_ids = [e["event_id"] for e in env.records("event")]
    assert len(all_ids) == len(set(all_ids))
    # Only the changed contact is sent again.
    users_after = env.lytics.collected("icontact_users")[users_before:]
    assert [u["ic_contact_id"] for u in users_after] == [cids[4]] and users_after[0]["city"] == "Durham"
    # Profiles of the touched contacts carry the totals over both runs.
    latest = {}
    for record in env.records("profile"):
        latest[record["ic_contact_id"]] = record
    expected_events = _tagged_events(data)
    for cid in cids[:3]:
        assert latest[cid]["email_open_ct"] == _expected_activity_value(expected_events[cid], "email_open_ct")
        assert latest[cid]["last_active_ts"] == _expected_activity_value(
            expected_events[cid], "last_active_ts"
        )

    third = env.run("scheduled__2026-06-01T02:00:00+00:00")
    assert third["activity"]["new_events"] == 0 and third["users"]["sent"] == 0
    assert len(env.records("event")) == len(all_ids)


def _tagged_contacts(data: IContactData) -> set[str]:
    """Contacts named in the activity of the messages tagged with AID."""
    return {
        str(row["contactId"])
        for mid in data.tagged_messages(AID)
        for collection in COLLECTIONS
        for row in data.activity[(mid, collection)]
    }


def test_filter_by_aid_imports_only_the_users_tagged_with_the_aid(env: Env) -> None:
    data = env.icontact.data
    untagged = next(m for m in data.messages if m not in data.tagged_messages(AID))
    other = data.add_contact(email="other.aid@example.com", firstName="Other")["contactId"]
    data.add_activity(untagged, "opens", other, datetime(2026, 6, 2, 9, tzinfo=UTC))
    silent = data.add_contact(email="silent@example.com", firstName="Silent")["contactId"]
    tagged = _tagged_contacts(data)
    assert other not in tagged and silent not in tagged and 0 < len(tagged) < len(data.contacts)

    opts = {"job_id": "ic_aid", "page_size": 7, "send_batch": 10, "aid": AID}
    report = run_task(IContactUsersToLyticsOperator(task_id="users", **opts), make_context(run_id="r1"))
    sent = [r["ic_contact_id"] for r in env.lytics.collected("icontact_users")]
    assert sorted(sent) == sorted(tagged)
    assert report["sent"] == len(tagged) and report["skipped_by_aid"] == len(data.contacts) - len(tagged)

    # The silent contact opens a tagged message: the next run sends it, and only it.
    data.add_activity(data.tagged_messages(AID)[0], "opens", silent, datetime(2026, 7, 1, 9, tzinfo=UTC))
    second = run_task(IContactUsersToLyticsOperator(task_id="users", **opts), make_context(run_id="r2"))
    assert [r["ic_contact_id"] for r in env.lytics.collected("icontact_users")][len(sent) :] == [silent]
    assert second["sent"] == 1 and second["unchanged"] == len(tagged)


def test_filtered_users_task_retried_sends_each_tagged_contact_once(env: Env) -> None:
    data = env.icontact.data
    tagged = _tagged_contacts(data)
    context = make_context(run_id="manual__aid_retry")
    opts = {"job_id": "ic_aid_retry", "page_size": 50, "send_batch": 10, "aid": AID}
    env.lytics.faults.add(FaultRule("5xx", path_regex=r"/collect/json/icontact_users", after=2, times=20))
    with pytest.raises(ServiceError):
        IContactUsersToLyticsOperator(task_id="users", **opts).execute(context)
    assert len(env.lytics.collected("icontact_users")) == 20  # two acknowledged batches
    env.lytics.faults.clear()
    # The retry resumes the run's staged contacts; a contact tagged meanwhile waits for the next run.
    late = data.add_contact(email="late@example.com")["contactId"]
    data.add_activity(data.tagged_messages(AID)[0], "opens", late, datetime(2026, 7, 1, tzinfo=UTC))
    report = IContactUsersToLyticsOperator(task_id="users", **opts).execute(context)
    sent = [r["ic_contact_id"] for r in env.lytics.collected("icontact_users")]
    assert len(sent) == len(set(sent)) == report["sent"] and set(sent) == tagged


def test_retried_task_resumes_without_duplicates(env: Env) -> None:
    context = make_context(run_id="manual__retry")
    opts = {"job_id": "ic_retry", "page_size": 50, "send_batch": 40, "aid": AID}
    env.lytics.faults.add(FaultRule("5xx", path_regex=r"/collect/json/icontact_activity", after=2, times=20))
    op = IContactActivityToLyticsOperator(task_id="activity", **opts)
    with pytest.raises(ServiceError):
        op.execute(context)
    partial = len(env.lytics.collected("icontact_activity"))
    assert partial == 80  # two acknowledged batches
    env.lytics.faults.clear()
    report = IContactActivityToLyticsOperator(task_id="activity", **opts).execute(context)
    events = env.records("event")
    assert len(events) == report["new_events"] == len({e["event_id"] for e in events})
    assert len(env.records("profile")) == report["profiles"]


def test_icontact_503_and_dropped_connections_lose_nothing(env: Env) -> None:
    env.icontact.faults.add(FaultRule("5xx", status=503, path_regex=r"/opens", every=3, times=4))
    env.icontact.faults.add(FaultRule("drop", path_regex=r"/contacts", after=2, times=2))
    env.run("manual__faults")
    assert env.icontact.faults.injected["5xx"] == 4 and env.icontact.faults.injected["drop"] == 2
    data = env.icontact.data
    tagged = data.tagged_messages(AID)
    assert len(env.records("event")) == sum(len(data.activity[(m, c)]) for m in tagged for c in COLLECTIONS)
    assert len(env.lytics.collected("icontact_users")) == len(data.contacts)


def test_dry_run_sends_and_commits_nothing(env: Env) -> None:
    report = env.run("manual__dry", params={"dry_run": True})
    assert env.lytics.streams() == []
    assert report["users"]["to_send"] == len(env.icontact.data.contacts)
    assert report["activity"]["new_events"] > 0
    real = env.run("manual__real")
    assert real["users"]["sent"] == report["users"]["to_send"]
    assert real["activity"]["new_events"] == report["activity"]["new_events"]


def test_bad_contacts_and_invalid_emails_are_reported(env: Env) -> None:
    data = env.icontact.data
    broken = [cid for cid, c in data.contacts.items() if "@" not in c["email"]]
    report = env.run("manual__rejects")
    users = report["users"]
    assert users["invalid_emails"] == len(broken) > 0
    with open(users["rejects_file"], encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    assert {line["id"] for line in lines} == set(broken)
    assert all("email" in line["reason"] for line in lines)
    written = {r["ic_contact_id"]: r for r in env.lytics.collected("icontact_users")}
    assert all("email" not in written[cid] and written[cid]["first_name"] for cid in broken)


def test_wrong_password_fails_fast_without_leaking_it(env: Env, monkeypatch, caplog) -> None:
    conn = env.icontact.connection()
    conn["password"] = "wrong-secret-987"
    monkeypatch.setenv("AIRFLOW_CONN_ICONTACT_DEFAULT", json.dumps(conn))
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as raised:
        IContactHook().resolve_folder()
    assert raised.value.status == 401 and "Api username invalid" in str(raised.value)
    assert "wrong-secret-987" not in caplog.text and "wrong-secret-987" not in str(raised.value)
    assert env.icontact.calls_to("accounts") == 1
