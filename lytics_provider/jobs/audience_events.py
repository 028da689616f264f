"""Config fields of the jobs that send audience changes as events (Segment, GA4, webhooks).

The option names are the seed's ("Existing Users", "Audience Trigger Events", "Fields to
Trigger") in snake_case; they reach :class:`~lytics_provider.sync.event_operator.AudienceEventOperator`
under its argument names (see :meth:`AudienceEventFields.event_kwargs`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from lytics_provider.jobs.base import StrictModel

EventKind = Literal["enter", "exit", "change"]


class AudienceEventFields(StrictModel):
    """Which audience changes become events, and from which run on."""

    existing_users: bool = Field(
        default=True,
        description="Existing Users: the first run sends an enter event for every member already in the "
        "audience; false records the audience as it is and sends only later changes.",
    )
    audience_trigger_events: list[EventKind] = Field(
        default_factory=lambda: ["enter", "exit"],
        min_length=1,
        description='Audience Trigger Events: the changes sent, any of "enter", "exit" and "change" '
        "(a member whose exported fields moved).",
    )
    fields_to_trigger: list[str] | None = Field(
        default=None,
        description="Fields to Trigger: a change event is sent only when one of these fields moved; "
        "default any exported field.",
    )

    def event_kwargs(self) -> dict[str, Any]:
        """The event options as the event operator's arguments."""
        return {
            "events": list(self.audience_trigger_events),
            "trigger_fields": list(self.fields_to_trigger) if self.fields_to_trigger else None,
            "existing_users": self.existing_users,
        }
