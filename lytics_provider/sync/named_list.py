"""The list an audience is kept in at a marketing service: named by the job, found or created.

A sync operator that keeps the audience in a list of the service's own (HubSpot, Klaviyo)
subclasses :class:`NamedListSyncOperator`, which has ``list_name`` and ``create_list`` and finds
(or creates) the list in :meth:`~NamedListSyncOperator.named_list`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs

Found = TypeVar("Found")


def list_name_for(list_name: str | None, audience: dict[str, Any]) -> str:
    """The list to use: ``list_name``, else ``Lytics <audience name or slug>``."""
    if list_name:
        return list_name
    return f"Lytics {audience.get('name') or audience.get('slug') or audience.get('id') or 'audience'}"


class NamedListSyncOperator(AudienceSyncOperator):
    """An audience sync into a list named ``list_name`` (default ``Lytics <audience>``).

    Subclasses set :attr:`service` and :attr:`list_noun`, and keep ``list_name`` and
    ``create_list`` as attributes.
    """

    #: the service's name in messages, e.g. ``HubSpot``
    service: ClassVar[str]
    #: what the service calls a list, in messages
    list_noun: ClassVar[str] = "list"
    list_name: str | None
    create_list: bool

    def named_list(
        self, inputs: SyncRunInputs, find: Callable[[str], Found | None], create: Callable[[str], Found]
    ) -> tuple[str, Found | None]:
        """The list's name and the list found (or created); None on a dry run that would create it.

        :param inputs: the run (its audience names the default list; a dry run creates nothing).
        :param find: looks a list up by name.
        :param create: creates a list of that name.
        """
        name = list_name_for(self.list_name, inputs.audience)
        found = find(name)
        if found is None and not self.create_list:
            raise self.config_error(
                f"{self.service} has no {self.list_noun} named {name!r}; create it, fix list_name or set "
                "create_list: true"
            )
        if found is None and inputs.dry_run:
            self.log.info("Dry run: the list %r would be created", name)
            return name, None
        return name, found if found is not None else create(name)
