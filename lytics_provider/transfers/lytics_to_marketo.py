"""Export Audiences to Marketo: members created or updated as leads and kept in a static list.

The ``deliver`` task of the export DAG (``scan`` -> ``deliver`` -> ``report``) on the sync engine:

* **enters** (every member on the first run or with ``full_refresh``) and **changes** (members whose
  mapped lead fields moved): one ``createOrUpdate`` on ``email`` with the mapped Marketo Lead
  Fields per batch of up to 300, then one call adding the accepted leads to the static list. A lead
  Marketo skips (an invalid value, an unknown field) is a reject with Marketo's reason;
* **exits**: with ``on_exit: remove`` (the default) the lead leaves the static list, only when this
  job added it (its lead id was saved then); the lead itself is never deleted. ``ignore`` leaves it;
* members without a valid email are rejects; each batch is checkpointed once Marketo acknowledged
  it; the exit guard stops a mass removal; a dry run sends nothing;
* every task of the connection shares one budget of 100 calls per 20 seconds, so Marketo's rate
  limit (606) is not met; the daily quota (607) fails the task with the reset time.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.hooks.marketo import BATCH_LIMIT, MarketoHook, MarketoListDestination
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.named_list import ListSyncOperator
from lytics_provider.sync.operator import SyncRunInputs
from lytics_provider.sync.refs import RefStore


class LyticsToMarketoOperator(ListSyncOperator):
    """Upsert an audience's members as Marketo leads and keep them in a static list.

    :param job_id: the job's id.
    :param static_list: the Marketo static list (id or exact name).
    :param marketo_conn_id: the ``marketo`` connection.
    :param email_field: the Lytics field holding the lead's email.
    :param lead_fields: Lytics field -> Marketo Lead Field (REST API name).
    :param on_exit: ``remove`` (from the list, only leads the job added) or ``ignore``.
    :param batch_size: leads per batch (1 to 300; one lead call and one list call each).
    """

    template_fields = ("static_list",)
    service = "Marketo"
    list_noun = "static list"
    batch_limit = BATCH_LIMIT

    def __init__(
        self,
        *,
        static_list: str,
        marketo_conn_id: str = MarketoHook.default_conn_name,
        lead_fields: dict[str, str] | None = None,
        batch_size: int = BATCH_LIMIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.lead_fields = dict(lead_fields or {})
        self.check_batch_size(batch_size)
        if "email" in self.lead_fields.values():
            raise self.config_error("lead_fields writes email; it comes from email_field, remove it")

    def make_destination(self, inputs: SyncRunInputs) -> MarketoListDestination:
        return self.resolved_list_destination(
            inputs,
            MarketoListDestination,
            MarketoHook(self.marketo_conn_id),
            self.static_list,
            self.lead_fields,
            refs=RefStore(self.job_id),
        )
