"""Export Users to Brevo: audience members imported as contacts of a Brevo list.

The ``deliver`` task of the export DAG (``scan`` -> ``deliver`` -> ``report``) on the sync engine:

* **enters** (every member on the first run: the seed's default "add users who already exist in
  the selected segment") and **changes** (members whose mapped fields moved): one
  ``/v3/contacts/import`` per batch into the list, with the mapped Brevo attributes; existing
  contacts are updated and never blanked; the import's 202 acknowledges the batch (its process id
  is in the run report);
* **exits**: with ``on_exit: remove`` (the default) the contact leaves the list, only when this job
  added it; contacts are never deleted or blocklisted. ``ignore`` leaves them;
* members without a valid email go to ``rejects.jsonl``; the exit guard stops a mass removal; a dry
  run sends nothing; every task of the connection shares the 10-calls-a-second budget.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.hooks.brevo import IMPORT_LIMIT, BrevoHook, BrevoListDestination
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.named_list import ListSyncOperator
from lytics_provider.sync.operator import SyncRunInputs


class LyticsToBrevoOperator(ListSyncOperator):
    """Import an audience's members into a Brevo list; see the module docstring.

    :param job_id: the job's id.
    :param list: the Brevo list (id or exact name).
    :param brevo_conn_id: the ``brevo`` connection.
    :param email_field: the Lytics field holding the contact's email.
    :param field_mapping: Lytics field -> Brevo attribute.
    :param on_exit: ``remove`` (from the list, only contacts the job added) or ``ignore``.
    :param batch_size: contacts per import (1 to 5,000).
    """

    template_fields = ("list",)
    service = "Brevo"
    batch_limit = IMPORT_LIMIT

    def __init__(
        self,
        *,
        list: str,
        brevo_conn_id: str = BrevoHook.default_conn_name,
        field_mapping: dict[str, str] | None = None,
        batch_size: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.field_mapping = dict(field_mapping or {})
        self.check_batch_size(batch_size)

    def make_destination(self, inputs: SyncRunInputs) -> BrevoListDestination:
        return self.resolved_list_destination(
            inputs, BrevoListDestination, BrevoHook(self.brevo_conn_id), self.list, self.field_mapping
        )
