"""Audience exports that write each member's key field and mapped fields to the destination.

A job type names its key field option, its mapping option and its operator; the scan reads
the key field, the mapped fields and the job's ``fields``, and only a change of the key or a
mapped field makes a member "changed" (Brevo, Marketo, Marketing Cloud).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from lytics_provider.jobs.base import AudienceExportConfig
from lytics_provider.jobs.one_task import import_operator
from lytics_provider.jobs.sync_tasks import add_deliver_tasks, field_roots

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext


class MappedFieldsExport(AudienceExportConfig):
    """``scan`` -> ``deliver`` (``deliver_operator``) -> ``report`` of the key and mapped fields."""

    deliver_operator: ClassVar[str]
    """Dotted path of the ``deliver`` operator."""
    key_field_option: ClassVar[str]
    """The option naming the Lytics field that keys a member at the destination."""
    mapping_option: ClassVar[str]
    """The option mapping Lytics fields to the destination's."""

    def key_fields(self) -> list[str]:
        """The fields a member is sent under: the key field (a destination may add others it needs)."""
        return [getattr(self, self.key_field_option)]

    def identifier_fields(self) -> list[str]:
        """The key fields key members after ``_uid``."""
        return self.key_fields()

    def deliver_arguments(self) -> dict[str, Any]:
        """``deliver`` arguments that are not config fields of the same name (default none)."""
        return {}

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        mapped = field_roots([*self.key_fields(), *getattr(self, self.mapping_option)])
        fields = list(dict.fromkeys([*mapped, *(self.fields or [])]))
        operator = import_operator(self.deliver_operator)
        add_deliver_tasks(self, job, operator, fields, mapped, **self.deliver_arguments())
