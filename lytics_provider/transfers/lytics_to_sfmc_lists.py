"""Salesforce Marketing Cloud "Export Lists": an audience's members kept as subscribers on a list.

The ``deliver`` task of an export DAG (``scan`` -> ``deliver`` -> ``report``) on the sync engine:
enters (and members whose mapped fields changed) are created or updated as subscribers on the
list, exits are removed from it, unsubscribed from it, or left, as ``on_exit`` says (only members
this job added). A batch is one SOAP call; each subscriber's own result decides whether it was
acknowledged or rejected, and the batch is checkpointed once the call is answered. The list must
exist: it is looked up by ``ID`` first, so a wrong ``list_id`` or wrong credentials fail the task
before anything is sent.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.hooks.sfmc import SfmcHook
from lytics_provider.hooks.sfmc_lists import EXIT_OPTIONS, SAVE_LIMIT, SfmcListDestination, find_list
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs


class LyticsToSfmcListOperator(AudienceSyncOperator):
    """Keep an audience's members as subscribers on a Marketing Cloud list; see the module docstring.

    :param job_id: the job's id.
    :param list_id: the list's ``ID``.
    :param sfmc_conn_id: the ``sfmc`` connection.
    :param subscriber_key_field: the Lytics field whose value is the ``SubscriberKey``.
    :param email_field: the Lytics field whose value is the ``EmailAddress``.
    :param field_mapping: Lytics field -> subscriber attribute, written on enter and change.
    :param on_exit: ``remove`` (from the list), ``unsubscribe`` (from the list) or ``ignore``.
    :param batch_size: subscribers per SOAP call (1 to 100).
    """

    batch_limit = SAVE_LIMIT
    template_fields = ("list_id",)

    def __init__(
        self,
        *,
        list_id: str,
        sfmc_conn_id: str = SfmcHook.default_conn_name,
        subscriber_key_field: str = "email",
        email_field: str = "email",
        field_mapping: dict[str, str] | None = None,
        on_exit: str = "remove",
        batch_size: int = SAVE_LIMIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.list_id = str(list_id)
        self.field_mapping = dict(field_mapping or {})
        self.check_batch_size(batch_size)
        if on_exit not in EXIT_OPTIONS:
            raise self.config_error(f"on_exit {on_exit!r} must be one of {list(EXIT_OPTIONS)}")

    def make_destination(self, inputs: SyncRunInputs) -> SfmcListDestination:
        hook = SfmcHook(self.sfmc_conn_id)
        found = find_list(hook, self.list_id)
        if found is None:
            raise self.config_error(
                f"Marketing Cloud has no list with ID {self.list_id!r}; fix list_id (Email Studio > "
                "Subscribers > Lists > the list's properties)"
            )
        name = found.get("ListName") or ""
        self.log.info(
            "Exporting %s to Marketing Cloud list %s (%s), on exit: %s",
            inputs.audience.get("slug"),
            self.list_id,
            name,
            self.on_exit,
        )
        return SfmcListDestination(
            None if inputs.dry_run else hook,
            self.list_id,
            name,
            self.subscriber_key_field,
            self.email_field,
            self.field_mapping,
            on_exit=self.on_exit,
            batch_size=self.batch_size,
        )
