"""The Dotdigital job operators: Export Contacts / Export Multiple Audiences, Export Modified
Contacts and Remove Contacts, each a delivery operator that names its address books and actions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lytics_provider.hooks.dotdigital import DotdigitalHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.dotdigital_delivery import _DotdigitalDeliveryOperator
from lytics_provider.operators.dotdigital_options import DotdigitalConfigError
from lytics_provider.operators.dotdigital_status import status_field_entries
from lytics_provider.sync.identifiers import lookup_field, normalize_email
from lytics_provider.sync.refs import RefStore


def _named_books(
    hook: DotdigitalHook, names: Sequence[str], create: bool, dry_run: bool, job_id: str, account_id: str
) -> dict[str, str]:
    """Resolve address books by id or name (case-insensitive); create missing ones when allowed."""
    existing = hook.list_address_books()
    by_id = {str(b["id"]): str(b["name"]) for b in existing}
    by_name = {str(b["name"]).lower(): str(b["id"]) for b in existing}
    resolved: dict[str, str] = {}
    for name in names:
        if name in by_id:
            resolved[name] = by_id[name]
        elif name.lower() in by_name:
            resolved[by_name[name.lower()]] = name
        elif create and dry_run:
            resolved[f"new:{name}"] = name
        elif create:
            book = hook.create_address_book(name)
            resolved[str(book["id"])] = str(book["name"])
        else:
            raise DotdigitalConfigError(
                f"Address book {name!r} does not exist in Dotdigital account {account_id} (job {job_id!r}). "
                "Set create_address_book: true to create it, or name an existing address book in "
                "address_book_name (audiences[].address_book for Export Multiple Audiences)."
            )
    return resolved


class DotdigitalExportContactsOperator(_DotdigitalDeliveryOperator):
    """Export Contacts / Export Multiple Audiences: keep address books in step with an audience.

    Entering members are added (one bulk import per book, or one call each with
    ``trigger_join_actions``); on exit they are removed (default), unsubscribed or ignored. With
    ``address_book_status_field`` each member's own map (``"{account}_{book}": "syncing"``) names
    its books and ``address_book_name`` / ``create_address_book`` are ignored; after the run each
    such entry holds the contact's status (written to ``dotmailer_export_status``), and an entry
    this job wrote keeps its book a target until it is taken out of the map.

    :param address_book_name: Address Book Name (or id); default "Lytics " + audience name.
    :param create_address_book: create the address book when it does not exist.
    :param address_book_status_field: Address Book Status Field, a map field keyed
        ``"{account}_{book}"``.
    :param on_exit: ``remove`` (default), ``unsubscribe`` or ``ignore``.
    """

    template_fields: Sequence[str] = ("address_book_name",)

    def __init__(
        self,
        *,
        address_book_name: str | None = None,
        create_address_book: bool = False,
        address_book_status_field: str | None = None,
        on_exit: str = "remove",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_exit not in ("remove", "unsubscribe", "ignore"):
            raise DotdigitalConfigError(f"on_exit {on_exit!r} is not one of remove, unsubscribe, ignore")
        keep_arguments(self, locals())
        self._status_entries: RefStore | None = None

    def exit_action(self) -> str:
        return self.on_exit

    def resolve_books(self, hook: DotdigitalHook, audience: dict[str, Any], dry_run: bool) -> dict[str, str]:
        if self.address_book_status_field:
            return {str(b["id"]): str(b["name"]) for b in hook.list_address_books()}
        default = f"Lytics {audience.get('name') or audience.get('slug') or ''}".strip()
        name = self.address_book_name or default
        return _named_books(hook, [name], self.create_address_book, dry_run, self.job_id, self.account_id)

    def targets(self, record: dict[str, Any], books: dict[str, str]) -> list[str]:
        if not self.address_book_status_field:
            return list(books)
        status = lookup_field(record, self.address_book_status_field)
        if not isinstance(status, dict):
            return []
        email = normalize_email(lookup_field(record, self.options.email_field))
        found = []
        for key, value in status.items():
            account, _, book = str(key).partition("_")
            if account != self.account_id or book not in books:
                continue
            if str(value).lower() == "syncing" or self._entries().find(book, [email]):
                found.append(book)
        return sorted(found)

    def _entries(self) -> RefStore:
        if self._status_entries is None:
            self._status_entries = status_field_entries(self.job_id)
        return self._status_entries

    def release(self) -> None:
        if self._status_entries is not None:
            self._status_entries.close()
            self._status_entries = None


class DotdigitalExportModifiedContactsOperator(_DotdigitalDeliveryOperator):
    """Export Modified Contacts: keep contacts' data fields up to date (account-wide bulk import)."""

    def resolve_books(self, hook: DotdigitalHook, audience: dict[str, Any], dry_run: bool) -> dict[str, str]:
        if not self.options.map_fields:
            raise DotdigitalConfigError(
                f"job {self.job_id!r}: Export Modified Contacts needs map_fields (Lytics field -> data field)"
            )
        return {"account": "All contacts"}


class DotdigitalRemoveContactsOperator(_DotdigitalDeliveryOperator):
    """Remove Contacts: remove or unsubscribe members who enter; optionally resubscribe on exit.

    Without ``address_book_name`` the contacts are unsubscribed from the whole account.
    """

    enter_kinds = ("enter",)
    template_fields: Sequence[str] = ("address_book_name",)

    def __init__(
        self,
        *,
        address_book_name: str | None = None,
        on_enter: str = "unsubscribe",
        resubscribe_on_exit: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_enter not in ("remove", "unsubscribe"):
            raise DotdigitalConfigError(f"on_enter {on_enter!r} is not one of remove, unsubscribe")
        if on_enter == "remove" and not address_book_name:
            raise DotdigitalConfigError(
                "on_enter: remove needs address_book_name (removal is from one address book)"
            )
        keep_arguments(self, locals())

    def enter_action(self) -> str:
        return self.on_enter

    def exit_action(self) -> str:
        return "resubscribe" if self.resubscribe_on_exit else "ignore"

    def resolve_books(self, hook: DotdigitalHook, audience: dict[str, Any], dry_run: bool) -> dict[str, str]:
        if not self.address_book_name:
            return {"account": "All contacts"}
        return _named_books(hook, [self.address_book_name], False, dry_run, self.job_id, self.account_id)
