"""Salesforce Marketing Cloud "Export Lists": audience members kept as subscribers on one list.

Built on the SOAP ``Subscriber`` object and its ``Lists`` (``SubscriberList``: ``ID`` of the list,
``Status``, ``Action`` ``Create`` / ``Update`` / ``Delete`` / ``Upsert``):

* enter (and a change of a mapped field): ``Create`` with ``SaveOption`` ``UpdateAdd`` of the
  subscriber (``SubscriberKey``, ``EmailAddress``, mapped ``Attributes``) with the list and
  ``Action`` ``Upsert``. No ``Status`` is sent, so a subscriber who unsubscribed from the list
  stays unsubscribed (an export never resubscribes anyone);
* exit, as ``on_exit`` says: ``remove`` sends ``Update`` with ``Action`` ``Delete`` (off the list),
  ``unsubscribe`` sends ``Update`` with ``Action`` ``Update`` and ``Status`` ``Unsubscribed`` (on
  the list, unsubscribed from it alone), ``ignore`` sends nothing. Exits go only to members this
  job added (the engine's ledger).

Each object of a call has its own result; an ``Error`` one becomes a reject with Marketing Cloud's
``StatusMessage``, the others are acknowledged with the batch.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

from lytics_provider.hooks.sfmc import (
    REJECTED,
    SOAP_NS,
    XSI_TYPE,
    SfmcHook,
    SfmcMembers,
    ValueFilter,
    add,
    key_of,
)
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.identifiers import is_email, scalar_text
from lytics_provider.sync.plan import Outcome, Work

SAVE_LIMIT = 100
"""Subscribers per SOAP ``Create`` / ``Update`` call."""
EXIT_OPTIONS = ("remove", "unsubscribe", "ignore")
EXIT_LIST_CHANGES = {"remove": ("Delete", None), "unsubscribe": ("Update", "Unsubscribed")}
"""``SubscriberList`` ``Action`` and ``Status`` of each exit option that changes the list."""
DONE = {"add": "added", "remove": "removed", "unsubscribe": "unsubscribed"}


def find_list(hook: SfmcHook, list_id: str) -> dict[str, str] | None:
    """The list of ``ID`` ``list_id`` (``ID``, ``ListName``), by a SOAP ``Retrieve`` of ``List``; None
    when there is none."""
    for results, _ in hook.retrieve_pages("List", ("ID", "ListName"), ValueFilter("ID", "equals", list_id)):
        if results:
            return results[0]
    return None


def subscriber_object(
    key: str,
    list_id: str,
    list_action: str,
    list_status: str | None = None,
    email: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> ET.Element:
    """A ``Subscriber`` (``Objects``) naming one list and what to do with the subscriber on it.

    :param key: the ``SubscriberKey``.
    :param list_id: the list's ``ID``.
    :param list_action: the ``SubscriberList`` ``Action``.
    :param list_status: the ``SubscriberList`` ``Status``; None leaves it as it is.
    :param email: the ``EmailAddress``.
    :param attributes: profile attributes by name.
    """
    obj = ET.Element(f"{{{SOAP_NS}}}Objects")
    obj.set(XSI_TYPE, "Subscriber")
    if email:
        add(obj, "EmailAddress", email)
    for name, value in (attributes or {}).items():
        attribute = add(obj, "Attributes")
        add(attribute, "Name", name)
        add(attribute, "Value", scalar_text(value))
    add(obj, "SubscriberKey", key)
    lists = add(obj, "Lists")
    add(lists, "ID", list_id)
    if list_status:
        add(lists, "Status", list_status)
    add(lists, "Action", list_action)
    return obj


class SfmcListDestination(SfmcMembers, SyncDestination):
    """Members kept as subscribers on one list; see the module docstring.

    :param hook: the Marketing Cloud hook (None in a dry run: nothing is sent).
    :param list_id: the list's ``ID``.
    :param list_name: the list's name (run report).
    :param subscriber_key_field: the profile field of the ``SubscriberKey``.
    :param email_field: the profile field of the ``EmailAddress``.
    :param field_mapping: Lytics field -> subscriber attribute.
    :param on_exit: ``remove``, ``unsubscribe`` or ``ignore``.
    :param batch_size: subscribers per call (at most :data:`SAVE_LIMIT`).
    """

    enter_kinds = ("enter", "change")
    tracked_exit_actions = ("remove", "unsubscribe")
    reject_status = REJECTED
    key_name = "subscriber key"

    def __init__(
        self,
        hook: SfmcHook | None,
        list_id: str,
        list_name: str,
        subscriber_key_field: str,
        email_field: str,
        field_mapping: Mapping[str, str],
        on_exit: str = "remove",
        batch_size: int = SAVE_LIMIT,
    ) -> None:
        self.hook = hook
        self.list_id = list_id
        self.list_name = list_name
        self.subscriber_key_field = subscriber_key_field
        self.email_field = email_field
        self.field_mapping = dict(field_mapping)
        self.on_exit = on_exit
        self.batch_size = batch_size

    def key_field(self) -> str:
        return self.subscriber_key_field

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        email = key_of(record, self.email_field)
        if not is_email(email):
            return f"{self.email_field!r} is not a valid email address (the subscriber's EmailAddress)"
        return super().invalid_reason(ident, record)

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"email": key_of(record, self.email_field), "attributes": super().payload(record)}

    def targets(self, record: dict[str, Any]) -> list[str]:
        return [self.list_id]

    def exit_action(self) -> str:
        return self.on_exit if self.on_exit in EXIT_LIST_CHANGES else "ignore"

    def describe(self) -> dict[str, Any]:
        return {"list": {"id": self.list_id, "name": self.list_name}, "on_exit": self.on_exit}

    def describe_after(self) -> dict[str, Any]:
        return {"sfmc_calls": self.hook.calls if self.hook else 0}

    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        """``Create`` (``UpdateAdd``) of the subscribers with the list upserted."""
        objects = []
        for work in rows:
            fields = work.fields()
            objects.append(
                subscriber_object(work.ident, target, "Upsert", None, fields["email"], fields["attributes"])
            )
        return self._save("add", "Create", target, rows, objects)

    def remove(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        return self._exit("remove", target, rows)

    def unsubscribe(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        return self._exit("unsubscribe", target, rows)

    def _exit(self, kind: str, target: str, rows: list[Work]) -> list[Outcome]:
        action, status = EXIT_LIST_CHANGES[kind]
        objects = [subscriber_object(w.ident, target, action, status) for w in rows]
        return self._save(kind, "Update", target, rows, objects)

    def _save(
        self, kind: str, method: str, target: str, rows: list[Work], objects: list[ET.Element]
    ) -> list[Outcome]:
        """One call for the batch; each row's outcome from its own result."""
        assert self.hook is not None
        results = self.hook.save_objects(method, objects, update_add=method == "Create")
        outcomes: list[Outcome] = []
        for work, result in zip(rows, results, strict=True):
            if result.get("StatusCode") == "OK":
                outcomes.append((work.ident, target, kind, work.uid, DONE[kind], None, None))
                continue
            code = f" (ErrorCode {result['ErrorCode']})" if result.get("ErrorCode") else ""
            reason = f"Marketing Cloud refused the subscriber: {result.get('StatusMessage') or 'Error'}{code}"
            outcomes.append((work.ident, target, kind, work.uid, REJECTED, None, reason))
        return outcomes
