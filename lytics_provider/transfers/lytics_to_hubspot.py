"""Export Audiences to HubSpot: contacts upserted with their properties, members kept in a list.

The ``deliver`` task of the export DAG (``scan`` -> ``deliver`` -> ``report``), on the sync engine
(:class:`~lytics_provider.sync.operator.AudienceSyncOperator` and
:class:`~lytics_provider.hooks.hubspot.HubspotListDestination`):

* **enters** (every member on the first run or with ``full_refresh``) and **changes** (members
  whose exported fields moved): the contact is created or updated by email with the mapped
  properties (``batch/upsert``, 100 a call), then added to the list (one ``memberships/add`` per
  batch of ``batch_size`` members);
* **exits**: with ``on_exit: remove`` (the default) the contact is removed from the list, only when
  this job added it; the contact itself is never deleted. ``on_exit: ignore`` leaves it in the list;
* the export never writes subscription properties (``hs_email_optout``, ...): it neither
  subscribes nor unsubscribes anyone;
* members without a valid email go to ``rejects.jsonl`` with the reason; a batch is checkpointed
  once HubSpot acknowledged it, so a retried task continues with the next batch; the exit guard
  stops a run that would remove too many members; a dry run sends nothing (and creates no list);
* the record id HubSpot answers for each added contact is kept beside the job
  (:class:`~lytics_provider.sync.refs.RefStore`), so an exit needs no lookup by email.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.hooks.hubspot import (
    MEMBERSHIP_LIMIT,
    SUBSCRIPTION_PROPERTIES,
    HubspotHook,
    HubspotListDestination,
)
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.named_list import NamedListSyncOperator
from lytics_provider.sync.operator import SyncRunInputs
from lytics_provider.sync.refs import RefStore

DEFAULT_PROPERTY_MAP = {"first_name": "firstname", "last_name": "lastname"}
DEFAULT_BATCH_SIZE = 1000


class LyticsToHubspotOperator(NamedListSyncOperator):
    """Upsert an audience's members as HubSpot contacts and keep them in a list; see the module docstring.

    :param job_id: the job's id.
    :param hubspot_conn_id: the ``hubspot`` connection.
    :param list_name: the HubSpot contact list (default ``Lytics <audience>``).
    :param create_list: create a MANUAL list of that name when there is none.
    :param email_field: the Lytics field holding the email (the contact's key).
    :param id_field: the Lytics field holding the HubSpot record id (saves a lookup on exit).
    :param property_map: Lytics field -> HubSpot contact property, written on enter and change.
    :param on_exit: ``remove`` (from the list, only members the job added) or ``ignore``.
    :param batch_size: members per acknowledged batch (upserts of 100 plus one list call).
    """

    service = "HubSpot"
    list_noun = "contact list"
    batch_limit = MEMBERSHIP_LIMIT
    default_property_map = DEFAULT_PROPERTY_MAP
    forbidden_properties_error = (
        "property_map writes {blocked}: subscription properties are never written by an export; "
        "remove them from property_map"
    )

    def __init__(
        self,
        *,
        hubspot_conn_id: str = HubspotHook.default_conn_name,
        id_field: str | None = "hubspot_id",
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.check_batch_size(batch_size)

    def forbidden_property(self, target: str) -> bool:
        return target in SUBSCRIPTION_PROPERTIES

    def make_destination(self, inputs: SyncRunInputs) -> HubspotListDestination:
        return self.named_list_destination(
            inputs,
            HubspotListDestination,
            HubspotHook(self.hubspot_conn_id),
            self._static_list_id,
            dry_run=inputs.dry_run,
            refs=RefStore(self.job_id),
        )

    def _static_list_id(self, name: str, found: dict[str, Any]) -> str:
        """The list's id; an active (DYNAMIC) list is refused."""
        if found.get("processingType") == "DYNAMIC":
            raise self.config_error(
                f"HubSpot list {name!r} is an active (DYNAMIC) list, whose members HubSpot chooses; "
                "use a static (MANUAL) list"
            )
        return str(found["listId"])
