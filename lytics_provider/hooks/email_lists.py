"""Audience-sync adapters for one list at a marketing service, its members keyed by email."""

from __future__ import annotations

from typing import Any

from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.email_list import EmailListMembers


class EmailListDestination(EmailListMembers, SyncDestination):
    """Members kept in one list, keyed by email; exits removed from the list when ``on_exit`` is
    ``remove`` (only members the job added), else left.

    The destination keeps ``email_field``, ``id_field``, ``list_id`` and ``on_exit``.
    """

    tracked_exit_actions = ("remove",)
    on_exit: str

    def exit_action(self) -> str:
        return "remove" if self.on_exit == "remove" else "ignore"


class NamedListDestination(EmailListDestination):
    """A list found or created by name, its members carrying mapped properties.

    :param hook: the service's hook.
    :param list_id: the list's id.
    :param list_name: the list's name (shown in the run report).
    :param email_field: the profile field of the member's email.
    :param property_map: Lytics field -> the service's property.
    :param on_exit: ``remove`` takes exits out of the list; anything else leaves them.
    :param batch_size: members per batch (default :attr:`default_batch_size`).
    :param id_field: the profile field of the member's id at the service, if any.
    """

    default_batch_size = 1000

    def __init__(
        self,
        hook: Any,
        list_id: str,
        list_name: str,
        email_field: str,
        property_map: dict[str, str],
        on_exit: str,
        batch_size: int | None = None,
        id_field: str | None = None,
    ) -> None:
        self.hook = hook
        self.list_id = list_id
        self.list_name = list_name
        self.email_field = email_field
        self.property_map = property_map
        self.on_exit = on_exit
        self.batch_size = batch_size or self.default_batch_size
        self.id_field = id_field

    def describe(self) -> dict[str, Any]:
        return {"list": {"id": self.list_id, "name": self.list_name}, "on_exit": self.on_exit}
