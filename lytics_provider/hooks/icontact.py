"""Hook for the iContact API 2.x (``https://app.icontact.com/icp``).

Every call carries the four iContact headers (``API-Version``, ``API-AppId``, ``API-Username``,
``API-Password``). Collections are read with ``limit``/``offset`` until ``total`` is reached (or
an empty page). A page shorter than ``limit`` does not end the read: iContact publishes no
maximum page size, so a server that caps ``limit`` would otherwise stop the read after one page.
503 ("high traffic / maintenance") and dropped connections are retried with backoff by
:class:`~lytics_provider.pipeline.http.HttpClient`; 401/403 fail at once. iContact error bodies
are ``{"errors": ["..."]}``; their text (never a credential) ends up in the error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lytics_provider.hooks.list_lookup import by_id_or_name, list_choices
from lytics_provider.hooks.rest import JSON_HEADERS, RestHook
from lytics_provider.hooks.rest_auth import HeaderCredentials
from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.hooks.rest_paging import OffsetPaging

DEFAULT_API_URL = "https://app.icontact.com/icp"
DEFAULT_API_VERSION = "2.2"
# The Lytics Application ID that iContact users enable under "external login".
LYTICS_APP_ID = "lqx6zVy4N9ElnUQ10SEOHGnrsiKUMaYI"
DEFAULT_PAGE_SIZE = 500
ACTIVITY_COLLECTIONS = ("bounces", "opens", "clicks", "unsubscribes")


@error_reader
def icontact_error(body: dict[str, Any]) -> str | None:
    """The text of an iContact error body (``{"errors": [...]}``)."""
    errors = body.get("errors") or body.get("warnings")
    if isinstance(errors, list):
        return "; ".join(str(e) for e in errors)
    return str(body["message"]) if body.get("message") else None


@dataclass(frozen=True)
class Folder:
    """An account and client folder: the prefix of every contact, list and message path."""

    account_id: str
    client_folder_id: str

    @property
    def path(self) -> str:
        return f"/a/{self.account_id}/c/{self.client_folder_id}"


@dataclass
class WriteResult:
    """What a collection POST answered: the items written and iContact's warnings."""

    items: list[dict[str, Any]]
    warnings: list[str]


class IContactHook(RestHook):
    """Talk to iContact with the credentials of an ``icontact`` connection.

    Connection: Login = API username (the iContact login email), Password = API password (the
    application password set under "external login"), Host = API URL (optional), extras
    ``app_id`` (default: the Lytics Application ID), ``account_id``, ``client_folder_id`` and
    ``api_version`` (default 2.2).

    :param icontact_conn_id: the ``icontact`` connection (default ``icontact_default``).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    :param page_size: ``limit`` of each collection page (default 500).
    """

    conn_type = "icontact"
    hook_name = "iContact"
    default_host = DEFAULT_API_URL
    auth = HeaderCredentials("API-Username", "API-Password")
    credentials_hint = (
        "needs the iContact API username in Login and the API (application) password in Password."
    )
    credentials_fix = (
        "the iContact API username in Login, the API (application) password in Password, and that the "
        "application is approved for this account."
    )
    default_headers = JSON_HEADERS
    paging = OffsetPaging(page_size=DEFAULT_PAGE_SIZE)
    error_text = staticmethod(icontact_error)
    check_path = "/a/"

    def __init__(self, *args: Any, page_size: int = DEFAULT_PAGE_SIZE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.page_size = page_size

    def connection_headers(self) -> dict[str, str]:
        """``API-Version`` and ``API-AppId`` from the extras."""
        return {
            "API-Version": str(self.extra.get("api_version") or DEFAULT_API_VERSION),
            "API-AppId": str(self.extra.get("app_id") or LYTICS_APP_ID),
        }

    def check_call(self) -> str:
        """List the accounts the API user can reach."""
        return f"{len(self.list_accounts())} account(s) for this API user"

    # -- account and folder --------------------------------------------------------------------
    def list_accounts(self) -> list[dict[str, Any]]:
        """``GET /a/``."""
        return list(self.get_conn().json("GET", "/a/").get("accounts") or [])

    def list_client_folders(self, account_id: str) -> list[dict[str, Any]]:
        """``GET /a/{accountId}/c/``."""
        return list(self.get_conn().json("GET", f"/a/{account_id}/c/").get("clientfolders") or [])

    def resolve_folder(self, account_id: str | None = None, client_folder_id: str | None = None) -> Folder:
        """The account and client folder to use: given, else the connection's, else the only one.

        An account or folder that does not exist raises ``ValueError`` naming the ones available.
        """
        self.get_conn()
        account_id = str(account_id or self.extra.get("account_id") or "") or None
        client_folder_id = str(client_folder_id or self.extra.get("client_folder_id") or "") or None
        accounts = self.list_accounts()
        ids = [str(a.get("accountId")) for a in accounts]
        if account_id is None:
            enabled = [str(a.get("accountId")) for a in accounts if str(a.get("enabled", 1)) == "1"]
            if not enabled:
                raise ValueError("the iContact user has no enabled account")
            account_id = enabled[0]
        elif account_id not in ids:
            raise ValueError(f"iContact account {account_id!r} not found; accounts of this user: {ids}")
        folders = [str(f.get("clientFolderId")) for f in self.list_client_folders(account_id)]
        if client_folder_id is None:
            if not folders:
                raise ValueError(f"iContact account {account_id} has no client folder")
            client_folder_id = folders[0]
        elif client_folder_id not in folders:
            raise ValueError(
                f"iContact client folder {client_folder_id!r} not found in account {account_id}; "
                f"client folders: {folders}"
            )
        return Folder(account_id, client_folder_id)

    # -- paging --------------------------------------------------------------------------------
    def iter_collection(
        self, path: str, key: str, params: dict[str, Any] | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a collection, page by page (``limit``/``offset`` until ``total``, or until an
        empty page when the answer has no ``total``)."""
        return self.paginate(path, params, items_key=key, page_size=page_size or self.page_size)

    # -- contacts ------------------------------------------------------------------------------
    def iter_contacts(
        self, folder: Folder, status: str = "total", page_size: int | None = None, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        """Contacts of a folder; ``status=total`` includes contacts on no list."""
        params = {"status": status, **filters}
        return self.iter_collection(f"{folder.path}/contacts", "contacts", params, page_size)

    def upsert_contacts(self, folder: Folder, contacts: Sequence[dict[str, Any]]) -> WriteResult:
        """Create or update contacts in one collection ``POST`` (an existing email is updated)."""
        if not contacts:
            return WriteResult([], [])
        body = self.get_conn().json("POST", f"{folder.path}/contacts", json=list(contacts))
        return WriteResult(list(body.get("contacts") or []), [str(w) for w in body.get("warnings") or []])

    # -- lists and subscriptions ---------------------------------------------------------------
    def list_lists(self, folder: Folder) -> list[dict[str, Any]]:
        """Every list of the folder."""
        return list(self.iter_collection(f"{folder.path}/lists", "lists"))

    def resolve_list(self, folder: Folder, list_ref: str) -> dict[str, Any]:
        """A list by id or by name; ``ValueError`` naming the lists there are when none matches."""
        lists = self.list_lists(folder)
        found, problem = by_id_or_name(lists, list_ref, "listId")
        if found is not None:
            return found
        raise ValueError(
            f"destination list {list_ref!r} {problem} in iContact "
            f"account {folder.account_id}, client folder {folder.client_folder_id}; lists: "
            f"{list_choices(lists, 'listId') or 'none'}"
        )

    def iter_subscriptions(self, folder: Folder, **filters: Any) -> Iterator[dict[str, Any]]:
        """Subscriptions of the folder, filtered (``listId``, ``contactId``, ``status``)."""
        return self.iter_collection(f"{folder.path}/subscriptions", "subscriptions", filters)

    def subscribe(
        self, folder: Folder, list_id: str, contact_ids: Sequence[str], status: str = "normal"
    ) -> WriteResult:
        """Subscribe contacts to a list in one collection ``POST``."""
        if not contact_ids:
            return WriteResult([], [])
        rows = [{"contactId": cid, "listId": list_id, "status": status} for cid in contact_ids]
        body = self.get_conn().json("POST", f"{folder.path}/subscriptions", json=rows)
        return WriteResult(
            list(body.get("subscriptions") or []), [str(w) for w in body.get("warnings") or []]
        )

    # -- messages and activity -----------------------------------------------------------------
    def iter_messages(self, folder: Folder, **filters: Any) -> Iterator[dict[str, Any]]:
        """Messages of the folder (with ``htmlBody``)."""
        return self.iter_collection(f"{folder.path}/messages", "messages", filters)

    def iter_activity(self, folder: Folder, message_id: str, collection: str) -> Iterator[dict[str, Any]]:
        """A message's ``bounces``, ``opens``, ``clicks`` or ``unsubscribes``."""
        if collection not in ACTIVITY_COLLECTIONS:
            raise ValueError(f"unknown activity collection {collection!r}")
        return self.iter_collection(f"{folder.path}/messages/{message_id}/{collection}", collection)
