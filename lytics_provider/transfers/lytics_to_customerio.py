"""Export a scanned Lytics audience to Customer.io as people ("Export Users").

The ``deliver`` task of the export DAG (``scan`` -> ``deliver`` -> ``report``): each member who
entered (or whose exported fields moved) is created or updated as a person through the Track
API's ``POST /api/v2/batch`` (``identify``), with the selected fields and the Extra Attributes as
attributes. Exits send nothing: the documented job only creates and updates people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lytics_provider.hooks.customerio import CustomerIOHook, CustomerIOPeopleDestination
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs


class LyticsToCustomerIOOperator(AudienceSyncOperator):
    """Create or update Customer.io people from the scanned audience.

    :param customerio_conn_id: the ``customerio`` connection (Site ID, API Key, region).
    :param id_field: member field sent as the person's ``id``.
    :param email_field: member field sent as ``email`` (the identifier when there is no id).
    :param fields: member fields sent as attributes under their own names.
    :param extra_attributes: Extra Attributes: Customer.io attribute name -> member field.
    :param fields_to_trigger: a member already sent is sent again only when one of these moved.
    :param batch_size: members per checkpoint.
    :param kwargs: :class:`~lytics_provider.sync.operator.AudienceSyncOperator`'s arguments.
    """

    def __init__(
        self,
        *,
        customerio_conn_id: str = CustomerIOHook.default_conn_name,
        id_field: str | None = None,
        email_field: str | None = "email",
        fields: Sequence[str] | None = None,
        extra_attributes: Mapping[str, str] | None = None,
        fields_to_trigger: Sequence[str] | None = None,
        batch_size: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def make_destination(self, inputs: SyncRunInputs) -> CustomerIOPeopleDestination:
        return CustomerIOPeopleDestination(
            hook=CustomerIOHook(self.customerio_conn_id),
            id_field=self.id_field,
            email_field=self.email_field,
            export_fields=list(self.fields or ()),
            extra_attributes=dict(self.extra_attributes or {}),
            batch_size=self.batch_size,
            trigger_fields=self.fields_to_trigger,
        )
