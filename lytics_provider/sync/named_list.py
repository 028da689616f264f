"""The list an audience is kept in at a marketing service: named by the job, found or created.

A sync operator that keeps the audience's members, keyed by email, in a list of the service's own
subclasses :class:`ListSyncOperator` (``email_field``, ``on_exit``, the service's batch limit and
the run's first log line). :class:`NamedListSyncOperator` adds ``list_name`` and ``create_list``
and finds (or creates) the list in :meth:`~NamedListSyncOperator.named_list`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs

Found = TypeVar("Found")
Made = TypeVar("Made")
#: The options a named-list sync passes on to its destination under the same names.
MEMBER_OPTIONS = ("email_field", "property_map", "on_exit", "batch_size", "id_field")


def list_name_for(list_name: str | None, audience: dict[str, Any]) -> str:
    """The list to use: ``list_name``, else ``Lytics <audience name or slug>``."""
    if list_name:
        return list_name
    return f"Lytics {audience.get('name') or audience.get('slug') or audience.get('id') or 'audience'}"


class ListSyncOperator(AudienceSyncOperator):
    """An audience sync of members keyed by email into a list of the service's own.

    Subclasses set :attr:`service`, :attr:`list_noun` and ``batch_limit``, and check their
    ``batch_size`` with ``check_batch_size``.

    :param email_field: the Lytics field holding the member's email (the service's key).
    :param on_exit: ``remove`` (from the list, only members the job added) or ``ignore``.
    """

    #: the service's name in messages, e.g. ``HubSpot``
    service: ClassVar[str]
    #: what the service calls a list, in messages
    list_noun: ClassVar[str] = "list"
    batch_size: int

    def __init__(self, *, email_field: str = "email", on_exit: str = "remove", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if on_exit not in ("remove", "ignore"):
            raise self.config_error(f"on_exit {on_exit!r} must be remove or ignore")
        self.email_field = email_field
        self.on_exit = on_exit

    def log_export(self, inputs: SyncRunInputs, label: Any, detail: Any) -> None:
        """Log where the run exports the audience to: the list's ``label`` and, in brackets, ``detail``."""
        self.log.info(
            "Exporting %s to %s %s %s (%s)",
            inputs.audience.get("slug"),
            self.service,
            self.list_noun,
            label,
            detail,
        )

    def resolved_list_destination(
        self,
        inputs: SyncRunInputs,
        make: Callable[..., Made],
        hook: Any,
        ref: Any,
        mapping: dict[str, str],
        **extra: Any,
    ) -> Made:
        """The destination ``make`` builds for the list ``ref`` (an id or exact name), logged.

        The destination takes ``(hook, list_id, email_field, mapping, on_exit=, batch_size=)``; a
        dry run gives it no hook, so it sends nothing.

        :param inputs: the run.
        :param make: the destination class.
        :param hook: the service's hook; its ``resolve_list`` looks the list up by id or exact name.
        :param ref: the configured list.
        :param mapping: Lytics field -> the service's field.
        :param extra: the destination's own further arguments.
        """
        found = hook.resolve_list(str(ref))
        self.log_export(inputs, found.get("id"), found.get("name"))
        return make(
            None if inputs.dry_run else hook,
            str(found["id"]),
            self.email_field,
            mapping,
            on_exit=self.on_exit,
            batch_size=self.batch_size,
            **extra,
        )


class NamedListSyncOperator(ListSyncOperator):
    """An audience sync into a list named ``list_name`` (default ``Lytics <audience>``).

    Subclasses set :attr:`default_property_map` and, for properties an export never writes,
    :meth:`forbidden_property` and :attr:`forbidden_properties_error`.

    :param list_name: the list (default ``Lytics <audience>``).
    :param create_list: create the list when there is none.
    :param property_map: Lytics field -> the service's property, written on enter and change
        (default :attr:`default_property_map`).
    """

    #: the property map when none is configured
    default_property_map: ClassVar[dict[str, str]] = {}
    #: the error for a ``property_map`` naming a forbidden property, with ``{blocked}``
    forbidden_properties_error: ClassVar[str] = "property_map writes {blocked}, which an export never writes"

    template_fields = ("list_name",)
    list_name: str | None
    create_list: bool
    id_field: str | None
    property_map: dict[str, str]

    def __init__(
        self,
        *,
        list_name: str | None = None,
        create_list: bool = True,
        property_map: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.list_name = list_name
        self.create_list = create_list
        mapped = dict(self.default_property_map if property_map is None else property_map)
        blocked = sorted({target for target in mapped.values() if self.forbidden_property(target)})
        if blocked:
            raise self.config_error(self.forbidden_properties_error.format(blocked=blocked))
        self.property_map = mapped

    def forbidden_property(self, target: str) -> bool:
        """True for a service property an export never writes (``property_map`` may not name it)."""
        return False

    def member_arguments(self) -> dict[str, Any]:
        """The list destination's arguments that come from the operator's options (:data:`MEMBER_OPTIONS`)."""
        return {name: getattr(self, name) for name in MEMBER_OPTIONS}

    def named_list_destination(
        self,
        inputs: SyncRunInputs,
        make: Callable[..., Made],
        hook: Any,
        list_id_of: Callable[[str, Any], str],
        **extra: Any,
    ) -> Made:
        """The destination ``make`` builds for the named list (found or created), logged.

        The destination takes ``(hook, list_id, list_name, **member_arguments())``; the list id is
        ``(new list)`` on a dry run that would create the list.

        :param inputs: the run.
        :param make: the destination class.
        :param hook: the service's hook, with ``find_list`` and ``create_list`` by name.
        :param list_id_of: the id of a list found or created (``(name, list)``); it may refuse the list.
        :param extra: the destination's own further arguments.
        """
        name, found = self.named_list(inputs, hook.find_list, hook.create_list)
        list_id = "(new list)" if found is None else list_id_of(name, found)
        self.log_export(inputs, name, list_id)
        return make(hook, list_id, name, **self.member_arguments(), **extra)

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
