"""Options of every job that sends audience changes as events, and its ``scan`` -> ``deliver`` -> ``report``.

The option names are the seed's, in snake_case: "Existing Users" (``existing_users``), "Audience
Trigger Events" (``audience_trigger_events``; the example configs of the stream and queue jobs
spell it ``events``, accepted as well) and "Fields to Trigger" (``fields_to_trigger``). They equal
the arguments of :class:`~lytics_provider.sync.event_operator.AudienceEventOperator`, so
:func:`~lytics_provider.jobs.operator_args.operator_kwargs` passes them on. A job type lists
:class:`AudienceEventFields` (or :class:`BatchedEventFields`) among its bases and builds its tasks
with :meth:`AudienceEventFields.add_event_tasks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, ConfigDict, Field, field_validator

from lytics_provider.jobs.base import AudienceExportConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.sync_tasks import add_deliver_tasks

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

EventKind = Literal["enter", "exit", "change"]


def _events_spelling_in_schema(schema: dict[str, Any]) -> None:
    """List ``events``, the other spelling of ``audience_trigger_events``, in the JSON Schema too."""
    properties = schema.get("properties", {})
    if "audience_trigger_events" in properties:
        properties["events"] = {
            **properties["audience_trigger_events"],
            "description": "Another spelling of audience_trigger_events.",
        }


class AudienceEventFields(ExitGuardFields, AudienceExportConfig):
    """Which audience changes become events, and from which run on."""

    model_config = ConfigDict(json_schema_extra=_events_spelling_in_schema)

    existing_users: bool = Field(
        default=True,
        description="Existing Users: the first run sends an enter event for every member already in the "
        "audience; off, the first run only records the audience and later runs send what changed.",
    )
    audience_trigger_events: list[EventKind] = Field(
        default_factory=lambda: ["enter", "exit"],
        min_length=1,
        validation_alias=AliasChoices("audience_trigger_events", "events"),
        description='Audience Trigger Events: the changes sent, any of "enter", "exit" and "change" '
        "(a member whose exported fields moved).",
    )
    fields_to_trigger: list[str] | None = Field(
        default=None,
        description="Fields to Trigger: a change event is sent only when one of these fields moved "
        "(default: any exported field).",
    )

    @field_validator("audience_trigger_events")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def exported_fields(self) -> list[str] | None:
        """The fields each event carries (None: every scanned field)."""
        return None

    def named_fields(self) -> list[str] | None:
        """The fields the job names for its events (None: every field of the profile)."""
        return list(self.fields) if self.fields else None

    def scan_fields(self) -> list[str] | None:
        """What the scan fetches: the named and trigger fields (None: every field)."""
        named = self.named_fields()
        if named is None:
            return None
        return list(dict.fromkeys(n.split(".")[0] for n in [*named, *(self.fields_to_trigger or [])]))

    def add_event_tasks(self, job: JobContext, operator: type, **arguments: Any) -> None:
        """``scan`` -> ``deliver`` (``operator``, with every config field it takes) -> ``report``."""
        scan_fields = self.scan_fields()
        arguments = {"export_fields": self.exported_fields(), **arguments}
        digest_fields = self.fields_to_trigger or scan_fields
        add_deliver_tasks(self, job, operator, scan_fields, digest_fields, **arguments)


class BatchedEventFields(AudienceEventFields):
    """:class:`AudienceEventFields` plus how many events go in one call."""

    batch_size: int = Field(default=100, ge=1, le=1000, description="Events per call.")


class ExportedEventFields(AudienceEventFields):
    """:class:`AudienceEventFields` plus "Export Fields", the fields each event carries."""

    export_fields: list[str] | None = Field(
        default=None,
        description="Export Fields: the user fields each event carries; default every field of the profile.",
    )

    def exported_fields(self) -> list[str] | None:
        return list(self.export_fields) if self.export_fields else None

    def named_fields(self) -> list[str] | None:
        named = self.export_fields if self.export_fields is not None else self.fields
        return list(named) if named is not None else None
