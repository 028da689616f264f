"""Exports to Salesforce Marketing Cloud: audience members into a data extension, or into a journey.

Both are the ``deliver`` task of an export DAG (``scan`` -> ``deliver`` -> ``report``) on the sync
engine (plan from the diff with the last committed run, a checkpoint per acknowledged batch, bad
rows into ``rejects.jsonl``, a dry run sends nothing):

* :class:`LyticsToSfmcDataExtensionOperator` ("Export Audience To Existing Data Extension" and
  "... To New Data Extension"): enters and members whose mapped fields changed are upserted as
  rows keyed by the subscriber key column (rowset calls of up to 50 rows). With
  ``create_data_extension`` the data extension is created first (SOAP ``Create``: the subscriber
  key column as primary key, one Text column per mapped field); a retry finds the one it created.
  Exits leave the rows in place;
* :class:`SfmcTriggerJourneyOperator` ("Trigger Journey"): each member who enters the audience is
  sent as one journey entry event (``ContactKey`` from a Lytics field, ``EventDefinitionKey``, the
  mapped fields as ``Data``), one call and one checkpoint per event (Marketing Cloud does not
  de-duplicate entry events, so an acknowledged one is never sent again); exits send nothing.
  With ``existing_users`` off the first run only records the audience.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.hooks.sfmc import (
    FIELD_TYPES,
    ROWSET_LIMIT,
    SfmcDataExtensionDestination,
    SfmcHook,
    SfmcJourneyDestination,
    is_email_field,
)
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.pipeline.workarea import JobState
from lytics_provider.sync.event_operator import AudienceEventOperator
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs

CREATED_STATE = "sfmc_created_data_extension"


class LyticsToSfmcDataExtensionOperator(AudienceSyncOperator):
    """Upsert an audience's members as rows of a data extension; see the module docstring.

    :param job_id: the job's id.
    :param data_extension_key: the data extension's external key (CustomerKey).
    :param sfmc_conn_id: the ``sfmc`` connection.
    :param subscriber_key_field: the Lytics field whose value is the Marketing Cloud subscriber key.
    :param subscriber_key_column: the data extension's primary key column that holds it.
    :param field_mapping: Lytics field -> data extension column.
    :param create_data_extension: create the data extension (Export Audience To New Data Extension).
    :param data_extension_name: the new data extension's name (default its key).
    :param column_types: FieldType of new columns by column name (default Text; the subscriber key
        column is EmailAddress when the key field holds an email).
    :param batch_size: rows per rowset call (1 to 50).
    """

    batch_limit = ROWSET_LIMIT
    template_fields = ("data_extension_key", "data_extension_name")

    def __init__(
        self,
        *,
        data_extension_key: str,
        sfmc_conn_id: str = SfmcHook.default_conn_name,
        subscriber_key_field: str = "email",
        subscriber_key_column: str = "SubscriberKey",
        field_mapping: dict[str, str] | None = None,
        create_data_extension: bool = False,
        data_extension_name: str | None = None,
        column_types: dict[str, str] | None = None,
        batch_size: int = ROWSET_LIMIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.field_mapping = dict(field_mapping or {})
        self.column_types = dict(column_types or {})
        self.check_batch_size(batch_size)
        if subscriber_key_column in self.field_mapping.values():
            raise self.config_error(
                f"field_mapping writes the subscriber key column {subscriber_key_column!r}; it is filled "
                "from subscriber_key_field, remove it from field_mapping"
            )
        unknown = sorted({t for t in self.column_types.values() if t not in FIELD_TYPES})
        if unknown:
            raise self.config_error(
                f"column_types {unknown} are not Marketing Cloud field types {list(FIELD_TYPES)}"
            )

    def make_destination(self, inputs: SyncRunInputs) -> SfmcDataExtensionDestination:
        hook = None if inputs.dry_run else SfmcHook(self.sfmc_conn_id)
        created = False
        if self.create_data_extension and hook is not None:
            created = self._create(hook)
        self.log.info(
            "Exporting %s to data extension %s (subscriber key %s <- %s)",
            inputs.audience.get("slug"),
            self.data_extension_key,
            self.subscriber_key_column,
            self.subscriber_key_field,
        )
        return SfmcDataExtensionDestination(
            hook,
            self.data_extension_key,
            self.subscriber_key_field,
            self.subscriber_key_column,
            self.field_mapping,
            batch_size=self.batch_size,
            created=created,
        )

    def _create(self, hook: SfmcHook) -> bool:
        """Create the data extension; a key that exists is fine only when this job created it."""
        state = JobState(self.job_id)
        key_type = "EmailAddress" if is_email_field(self.subscriber_key_field) else "Text"
        columns = [
            (self.subscriber_key_column, self.column_types.get(self.subscriber_key_column, key_type), True)
        ]
        columns += [
            (c, self.column_types.get(c, "Text"), False) for c in dict.fromkeys(self.field_mapping.values())
        ]
        ok, message = hook.create_data_extension(
            self.data_extension_key, self.data_extension_name or self.data_extension_key, columns
        )
        if ok:
            state.update(**{CREATED_STATE: self.data_extension_key})
            self.log.info("Created data extension %s", self.data_extension_key)
            return True
        if state.get(CREATED_STATE) == self.data_extension_key and "exist" in message.lower():
            return False
        raise self.config_error(
            f"Marketing Cloud did not create data extension {self.data_extension_key!r}: {message}. Choose "
            "another data_extension_key, or export to the existing one with sfmc_export_data_extension"
        )


class SfmcTriggerJourneyOperator(AudienceEventOperator):
    """Send members who enter the audience into a journey as entry events; see the module docstring.

    :param event_definition_key: the journey entry source's EventDefinitionKey.
    :param sfmc_conn_id: the ``sfmc`` connection.
    :param contact_key_field: the Lytics field sent as ``ContactKey``.
    :param field_mapping: Lytics field -> journey data field (``Data``).
    :param kwargs: :class:`~lytics_provider.sync.event_operator.AudienceEventOperator`'s arguments.
    """

    template_fields = ("event_definition_key",)

    def __init__(
        self,
        *,
        event_definition_key: str,
        sfmc_conn_id: str = SfmcHook.default_conn_name,
        contact_key_field: str = "email",
        field_mapping: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("audience_trigger_events", ["enter"])
        super().__init__(**kwargs)
        self.event_definition_key = event_definition_key
        self.sfmc_conn_id = sfmc_conn_id
        self.contact_key_field = contact_key_field
        self.field_mapping = dict(field_mapping or {})

    def make_destination(self, inputs: SyncRunInputs) -> SfmcJourneyDestination:
        hook = None if inputs.dry_run else SfmcHook(self.sfmc_conn_id)
        # Marketing Cloud takes one entry event per call and does not de-duplicate them: each call
        # is its own checkpoint, so a retry never sends an acknowledged event again.
        return SfmcJourneyDestination(
            hook,
            self.event_definition_key,
            self.contact_key_field,
            self.field_mapping,
            **{**self.event_arguments(inputs), "batch_size": 1},
        )
