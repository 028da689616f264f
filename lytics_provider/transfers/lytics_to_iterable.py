"""Export a scanned Lytics audience to an Iterable list ("Export Audiences").

The ``deliver`` task of the export DAG (``scan`` -> ``deliver`` -> ``report``): the list is the
one given by ``list_id``, else the one named ``list_name`` (created when missing). Members who
entered are subscribed through ``/api/lists/subscribe`` (members without an email by userId with
``preferUserId`` when ``prefer_user_id``), members who left are unsubscribed from the list through
``/api/lists/unsubscribe``, only when this job subscribed them. Subscribers Iterable names in
``invalidEmails`` / ``invalidUserIds`` / ``notFound...`` land in ``rejects.jsonl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lytics_provider.hooks.iterable import DEFAULT_BATCH_SIZE, IterableHook, IterableListDestination
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs


class LyticsToIterableListOperator(AudienceSyncOperator):
    """Subscribe the audience to an Iterable list and unsubscribe those who leave.

    :param iterable_conn_id: the ``iterable`` connection.
    :param list_id: the existing list's id.
    :param list_name: the list's name (used when ``list_id`` is unset).
    :param create_list: create the list named ``list_name`` when the project has none.
    :param email_field: member field holding the email.
    :param user_id_field: member field holding the Iterable userId.
    :param prefer_user_id: subscribe members without an email by userId (``preferUserId``).
    :param fields: member fields sent as the subscribers' ``dataFields``.
    :param fields_to_trigger: Fields to Trigger: a subscribed member is sent again when one moved.
    :param batch_size: subscribers per request.
    :param kwargs: :class:`~lytics_provider.sync.operator.AudienceSyncOperator`'s arguments.
    """

    template_fields = ("list_name",)

    def __init__(
        self,
        *,
        iterable_conn_id: str = IterableHook.default_conn_name,
        list_id: int | None = None,
        list_name: str | None = None,
        create_list: bool = True,
        email_field: str | None = "email",
        user_id_field: str | None = None,
        prefer_user_id: bool = False,
        fields: Sequence[str] | None = None,
        fields_to_trigger: Sequence[str] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def make_destination(self, inputs: SyncRunInputs) -> IterableListDestination:
        hook = IterableHook(self.iterable_conn_id)
        if inputs.dry_run and self.list_id is None:
            known = {item.get("name"): item.get("id") for item in hook.lists()}
            list_id = int(known.get(self.list_name) or 0)  # a dry run creates nothing
            name = str(self.list_name)
        else:
            list_id, name = hook.resolve_list(self.list_id, self.list_name, self.create_list)
        self.log.info("Iterable list %s (%s)", list_id, name)
        return IterableListDestination(
            hook=hook,
            list_id=list_id,
            email_field=self.email_field,
            user_id_field=self.user_id_field,
            prefer_user_id=self.prefer_user_id,
            export_fields=list(self.fields or ()),
            batch_size=self.batch_size,
            trigger_fields=self.fields_to_trigger,
        )
