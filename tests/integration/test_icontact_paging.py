"""iContact collection paging against the published paging contract."""

from __future__ import annotations

import json

import pytest

from lytics_provider.hooks.icontact import IContactHook
from lytics_sandbox.icontact import IContactData, IContactSandbox


@pytest.fixture
def capped(monkeypatch):
    """An iContact stand-in that silently answers at most 25 items per page."""
    with IContactSandbox(IContactData.synthetic(contacts=60, messages=2), max_limit=25) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_ICONTACT_DEFAULT", json.dumps(sandbox.connection()))
        yield sandbox


def test_a_server_side_page_cap_does_not_end_the_read(capped) -> None:
    """Pages shorter than ``limit`` do not end the read; ``total`` does. iContact publishes no
    maximum page size, so a server may cap ``limit`` and the client must keep going.

    Contract: limit/offset/total paging — iContact's developer portal paging page
    (icontact.com/developerportal/api-documentation/vocus-advanced-users/) and the conventions
    file of api-evangelist/icontact (conventions/icontact-conventions.yml: no maximum published).
    """
    hook = IContactHook(page_size=500)
    folder = hook.resolve_folder()
    contacts = list(hook.iter_contacts(folder))
    assert len(contacts) == len(capped.data.contacts) == 60
    assert len({c["contactId"] for c in contacts}) == 60
    assert capped.calls_to("contacts_list") == 3  # 25 + 25 + 10, the last one reaching total


def test_reading_stops_at_total_without_an_extra_call(monkeypatch) -> None:
    """With no cap, a collection of exactly ``limit`` items is read in one call: ``offset``
    reaches ``total``.

    Contract: iContact paging page (icontact.com/developerportal/api-documentation/vocus-advanced-users/).
    """
    with IContactSandbox(IContactData.synthetic(contacts=40, messages=2)) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_ICONTACT_DEFAULT", json.dumps(sandbox.connection()))
        hook = IContactHook(page_size=40)
        assert len(list(hook.iter_contacts(hook.resolve_folder()))) == 40
        assert sandbox.calls_to("contacts_list") == 1
