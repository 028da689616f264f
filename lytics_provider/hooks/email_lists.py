"""Audience-sync adapters for one list at a marketing service, its members keyed by email."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lytics_provider.hooks.field_mapping import mapped_values
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.email_list import EmailListMembers
from lytics_provider.sync.identifiers import scalar_text


class EmailListDestination(EmailListMembers, SyncDestination):
    """Members kept in one list, keyed by email and carrying their mapped fields; exits removed
    from the list when ``on_exit`` is ``remove`` (only members the job added), else left.

    :param hook: the service's hook (None in a dry run, where nothing is sent).
    :param list_id: the list's id.
    :param email_field: the profile field of the member's email.
    :param field_map: Lytics field -> the service's field.
    :param on_exit: ``remove`` takes exits out of the list; anything else leaves them.
    :param batch_size: members per batch (default :attr:`default_batch_size`).
    """

    tracked_exit_actions = ("remove",)
    id_field: str | None = None
    """Members are keyed by email alone unless the destination names an id field."""
    default_batch_size = 1000
    value_separator = ","
    """Joins the items of a list value (``;`` for the multi-select fields of some services)."""
    item_text: Callable[[Any], str] = staticmethod(scalar_text)
    """One item of a list value as text."""

    def __init__(
        self,
        hook: Any,
        list_id: str,
        email_field: str,
        field_map: Mapping[str, str],
        on_exit: str = "remove",
        batch_size: int | None = None,
    ) -> None:
        self.hook = hook
        self.list_id = list_id
        self.email_field = email_field
        self.field_map = dict(field_map)
        self.on_exit = on_exit
        self.batch_size = batch_size or self.default_batch_size

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        return mapped_values(record, self.field_map, self.value_separator, type(self).item_text)

    def exit_action(self) -> str:
        return "remove" if self.on_exit == "remove" else "ignore"


class NamedListDestination(EmailListDestination):
    """A list found or created by name (shown in the run report), its members optionally keyed by an
    id field as well.

    :param hook: the service's hook.
    :param list_id: the list's id.
    :param list_name: the list's name.
    :param email_field: the profile field of the member's email.
    :param property_map: Lytics field -> the service's property.
    :param on_exit: ``remove`` takes exits out of the list; anything else leaves them.
    :param batch_size: members per batch (default :attr:`default_batch_size`).
    :param id_field: the profile field of the member's id at the service, if any.
    """

    def __init__(
        self,
        hook: Any,
        list_id: str,
        list_name: str,
        email_field: str,
        property_map: Mapping[str, str],
        on_exit: str,
        batch_size: int | None = None,
        id_field: str | None = None,
    ) -> None:
        super().__init__(hook, list_id, email_field, property_map, on_exit, batch_size)
        self.list_name = list_name
        self.id_field = id_field

    def describe(self) -> dict[str, Any]:
        return {"list": {"id": self.list_id, "name": self.list_name}, "on_exit": self.on_exit}
