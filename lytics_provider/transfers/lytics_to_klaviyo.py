"""Export Audiences to Klaviyo: members imported as profiles in bulk jobs that add them to a list.

The ``deliver`` task of the export DAG (``scan`` -> ``deliver`` -> ``report``), on the sync engine
(:class:`~lytics_provider.sync.operator.AudienceSyncOperator` and
:class:`~lytics_provider.hooks.klaviyo.KlaviyoListDestination`):

* **enters** (every member on the first run or with ``full_refresh``) and **changes** (members
  whose exported fields moved): profiles upserted by email with the mapped attributes through Bulk
  Import Profiles jobs (up to 10,000 profiles / 5 MB a job) that also add them to the list; the
  task waits for each job (``poll_interval``) and reads its import errors into the rejects;
* **exits**: with ``on_exit: remove`` (the default) the profile is removed from the list, only
  when this job added it; removing never unsubscribes and no profile is deleted. ``ignore``
  leaves it there;
* consent is never sent: the export never subscribes, unsubscribes or resubscribes anyone;
* a job's id is saved in the run's plan before the wait, so a retried task waits for the job it
  started; each batch is checkpointed once its job completed. Members without a valid email go to
  ``rejects.jsonl``; the exit guard applies; a dry run sends nothing (and creates no list).
"""

from __future__ import annotations

from typing import Any

from lytics_provider.hooks.klaviyo import JOB_LIMIT, KlaviyoHook, KlaviyoListDestination
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.named_list import NamedListSyncOperator
from lytics_provider.sync.operator import SyncRunInputs

DEFAULT_PROPERTY_MAP = {"first_name": "first_name", "last_name": "last_name"}
CONSENT_ATTRIBUTES = frozenset({"subscriptions", "consent", "properties.$consent"})


class LyticsToKlaviyoOperator(NamedListSyncOperator):
    """Import an audience's members as Klaviyo profiles in a list; see the module docstring.

    :param job_id: the job's id.
    :param klaviyo_conn_id: the ``klaviyo`` connection.
    :param list_name: the Klaviyo list (default ``Lytics <audience>``).
    :param create_list: create the list when there is none.
    :param email_field: the Lytics field holding the email (the profile's key).
    :param id_field: the Lytics field holding the Klaviyo profile id (saves a lookup on exit).
    :param property_map: Lytics field -> profile attribute (``first_name``, ``phone_number``, ...)
        or ``properties.<name>`` for a custom property.
    :param on_exit: ``remove`` (from the list, only members the job added) or ``ignore``.
    :param batch_size: members per acknowledged batch (one bulk job up to 10,000).
    :param poll_interval: seconds between two reads of a bulk job's status.
    """

    service = "Klaviyo"
    batch_limit = JOB_LIMIT
    default_property_map = DEFAULT_PROPERTY_MAP
    forbidden_properties_error = "property_map writes consent ({blocked}); an export never sends consent"

    def __init__(
        self,
        *,
        klaviyo_conn_id: str = KlaviyoHook.default_conn_name,
        id_field: str | None = "klaviyo_id",
        batch_size: int = JOB_LIMIT,
        poll_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.check_batch_size(batch_size)

    def forbidden_property(self, target: str) -> bool:
        return target in CONSENT_ATTRIBUTES or target.startswith("subscriptions")

    def make_destination(self, inputs: SyncRunInputs) -> KlaviyoListDestination:
        return self.named_list_destination(
            inputs,
            KlaviyoListDestination,
            KlaviyoHook(self.klaviyo_conn_id),
            lambda name, found: found,
            poll_interval=self.poll_interval,
        )
