"""Dotdigital (dotmailer) job types: Import Contacts & Activity, Export Contacts, Export Multiple
Audiences, Export Modified Contacts and Remove Contacts.

Exports build ``scan`` -> ``deliver`` -> ``report`` (one chain per audience for Export Multiple
Audiences); the import builds one ``import`` task. Every Dotdigital task of a DAG shares the
connection's call budget (2,000 calls per rolling hour by default), and may also be put in an
Airflow pool with ``pool``. Operators are imported inside ``add_tasks``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from lytics_provider.jobs.api_import import ChangesImportJob
from lytics_provider.jobs.base import AudienceExportConfig, JobConfig, SharedScanFields, StrictModel
from lytics_provider.jobs.deferrable_wait import DeferrableWaitFields
from lytics_provider.jobs.exit_guard import ALLOW_MASS_EXIT_PARAM, ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.member_identity import (
    check_identity_fields,
    identity_fields_field,
    resolve_identity,
)
from lytics_provider.jobs.one_task import build_task
from lytics_provider.jobs.sync_tasks import add_scan_chain, field_roots

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

_OPERATORS = "lytics_provider.operators.dotdigital"
_DATA_FIELD = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
OptInType = Literal["Unknown", "Single", "Double", "VerifiedDouble"]
EmailType = Literal["Html", "PlainText"]


def _check_data_fields(mapping: dict[str, str]) -> dict[str, str]:
    for source, target in mapping.items():
        if not _DATA_FIELD.match(target):
            raise ValueError(
                f"Dotdigital data field {target!r} (mapped from {source!r}) must be 1-20 letters, digits, "
                "'-' or '_', e.g. FIRSTNAME"
            )
    return mapping


class _DotdigitalConnection(StrictModel):
    dotdigital_conn_id: str = connection_field("dotdigital_default", "Dotdigital connection (API user).")
    pool: str | None = Field(
        default=None,
        description="Airflow pool for the Dotdigital task, to serialise jobs sharing an API user.",
    )

    def pool_argument(self) -> dict[str, Any]:
        """``pool`` of the Dotdigital task when one is set (else Airflow's default pool)."""
        return {"pool": self.pool} if self.pool else {}


class _DotdigitalExportFields(AudienceExportConfig, DeferrableWaitFields, _DotdigitalConnection):
    email_field: str = Field(
        default="email", min_length=1, description="Email Field: Lytics field with the email."
    )
    id_field: str = Field(
        default="dm_contact_id",
        min_length=1,
        description="ID Field: Lytics field with the Dotdigital contact id (removes contacts in bulk); "
        'may be a map of one contact id per account ("<account id>": contact id) when users come '
        "from several accounts.",
    )
    map_fields: dict[str, str] = Field(
        default_factory=dict,
        description="Map Fields: Lytics field -> Dotdigital data field; arrays and maps are dropped.",
    )
    opt_in_type: OptInType = Field(default="Unknown", description="Opt-in Type of added contacts.")
    email_type: EmailType = Field(default="Html", description="Email Type of added contacts.")
    trigger_join_actions: bool = Field(
        default=False,
        description="Trigger Join Actions: add contacts one call at a time so address-book join actions "
        "fire (significantly increases API usage).",
    )
    resubscribe: bool = Field(
        default=False, description="Resubscribe unsubscribed contacts (with a challenge)."
    )
    resubscribe_with_no_challenge: bool = Field(
        default=False, description="Resubscribe With No Challenge: resubscribe without a confirmation email."
    )
    sync_status: bool = Field(
        default=False, description="Sync Status: write each contact's status to dotmailer_export_status."
    )

    @field_validator("map_fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_data_fields(value)

    def _scan_fields(self, *extra: str | None) -> list[str]:
        return field_roots([self.email_field, self.id_field, *extra, *self.map_fields])

    def identifier_fields(self) -> list[str]:
        return [self.email_field]

    def _add_tasks(self, job: JobContext, operator: str, *extra_fields: str | None) -> None:
        """``scan`` -> ``deliver`` (``operator``, a class of ``operators.dotdigital``) -> ``report``; a
        change of the scanned fields makes a member changed."""
        deliver = build_task(self, f"{_OPERATORS}.{operator}", job, "deliver", **self.pool_argument())
        scan_fields = self._scan_fields(*extra_fields)
        self.add_scan_deliver_report(job, deliver, fields=scan_fields, digest_fields=scan_fields)


class DotdigitalExportContactsJob(ExitGuardFields, _DotdigitalExportFields):
    """Export Contacts: an audience to a Dotdigital address book (add; remove or unsubscribe on exit)."""

    type: Literal["dotdigital_export_contacts"]
    address_book_name: str | None = Field(
        default=None,
        max_length=128,
        description='Address Book Name (or id); default "Lytics " + audience name.',
    )
    create_address_book: bool = Field(default=False, description="Create Address Book if it does not exist.")
    address_book_status_field: str | None = Field(
        default=None,
        description='Address Book Status Field: a map keyed "<account id>_<address book id>"; books whose '
        'value is "syncing" are updated, and each entry is then written back with the contact\'s status '
        "(an entry this job wrote keeps its book until it is taken out of the map). When set, Address "
        "Book Name and Create Address Book are ignored.",
    )
    on_exit: Literal["remove", "unsubscribe", "ignore"] = Field(
        default="remove",
        description="On exit: remove from the address book (default), unsubscribe (Unsubscribe on exit; "
        "significantly increases API usage) or ignore.",
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        self._add_tasks(job, "DotdigitalExportContactsOperator", self.address_book_status_field)


class AudienceBook(StrictModel):
    """One audience and the existing address book it is exported to."""

    audience: str = Field(min_length=1, description="Audience (segment) slug or id.")
    address_book: str = Field(min_length=1, max_length=128, description="Address book name or id.")


class DotdigitalExportMultipleAudiencesJob(
    ExitGuardFields, JobConfig, DeferrableWaitFields, _DotdigitalConnection, SharedScanFields
):
    """Export Multiple Audiences: several audiences, each to an existing address book."""

    type: Literal["dotdigital_export_multiple_audiences"]
    audiences: list[AudienceBook] = Field(min_length=1, description="Audiences and their address books.")
    map_audiences: dict[str, str] = Field(
        default_factory=dict,
        description="Map Audiences: Lytics field -> Dotdigital data field (no arrays or maps).",
    )
    email_field: str = Field(default="email", min_length=1, description="Email Field.")
    id_field: str = Field(
        default="dm_contact_id",
        min_length=1,
        description='ID Field (Dotdigital contact id); "This may be a map field if importing users from '
        'multiple accounts": a map ("<account id>": contact id) is read at this connection\'s account.',
    )
    one_time: bool = Field(default=False, description="One Time: export once (same as keep_updated: false).")
    create_address_book: bool = Field(
        default=False, description="Create an address book that does not exist."
    )
    on_exit: Literal["remove", "unsubscribe", "ignore"] = Field(default="remove", description="On exit.")
    trigger_join_actions: bool = Field(default=False, description="Trigger Join Actions.")
    resubscribe: bool = Field(default=False, description="Resubscribe.")
    resubscribe_with_no_challenge: bool = Field(default=False, description="Resubscribe With No Challenge.")
    sync_status: bool = Field(default=False, description="Sync Status (dotmailer_export_status).")
    opt_in_type: OptInType = Field(default="Unknown", description="Opt-in Type.")
    email_type: EmailType = Field(default="Html", description="Email Type.")
    user_limit: int | None = Field(
        default=None, ge=1, description="Export at most this many users per audience."
    )
    identity_fields: list[str] | None = identity_fields_field()

    _check_identity_fields = field_validator("identity_fields")(check_identity_fields)

    @field_validator("map_audiences")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_data_fields(value)

    @model_validator(mode="after")
    def _one_time(self) -> DotdigitalExportMultipleAudiencesJob:
        if self.one_time and self.keep_updated:
            raise ValueError("one_time and keep_updated contradict each other; set only one of them")
        slugs = [a.audience for a in self.audiences]
        if len(set(slugs)) != len(slugs):
            raise ValueError("an audience is listed twice in audiences; list each audience once")
        return self

    def add_tasks(self, job: JobContext) -> None:
        """One ``scan_<n>`` -> ``deliver_<n>`` -> ``report_<n>`` chain per audience."""
        scan_fields = field_roots([self.email_field, self.id_field, *self.map_audiences])
        identity = resolve_identity(self.identity_fields, [self.email_field])
        for number, item in enumerate(self.audiences, 1):
            job_id = f"{job.job_id}__{item.audience}"
            deliver = build_task(
                self,
                f"{_OPERATORS}.DotdigitalExportContactsOperator",
                job,
                f"deliver_{number}",
                job_id=job_id,
                scan_task_id=f"scan_{number}",
                address_book_name=item.address_book,
                map_fields=dict(self.map_audiences),
                **self.pool_argument(),
            )
            add_scan_chain(
                job,
                deliver,
                lytics_conn_id=self.lytics_conn_id,
                audience=item.audience,
                job_id=job_id,
                suffix=f"_{number}",
                fields=scan_fields,
                digest_fields=scan_fields,
                user_limit=self.user_limit,
                identity_fields=identity,
            )

    def params(self) -> dict[str, Any]:
        return {"full_refresh": False, "dry_run": False, ALLOW_MASS_EXIT_PARAM: False}


class DotdigitalExportModifiedContactsJob(_DotdigitalExportFields):
    """Export Modified Contacts: keep contacts' data fields up to date in Dotdigital."""

    type: Literal["dotdigital_export_modified_contacts"]
    map_fields: dict[str, str] = Field(
        min_length=1, description="Map Fields: Lytics field -> Dotdigital data field to keep up to date."
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` (account-wide bulk import of entered and changed members) -> ``report``."""
        self._add_tasks(job, "DotdigitalExportModifiedContactsOperator")


class DotdigitalRemoveContactsJob(ExitGuardFields, _DotdigitalExportFields):
    """Remove Contacts: remove or unsubscribe members who enter; optionally resubscribe on exit."""

    type: Literal["dotdigital_remove_contacts"]
    address_book_name: str | None = Field(
        default=None,
        description="Address book (name or id); without it contacts are unsubscribed account-wide.",
    )
    on_enter: Literal["remove", "unsubscribe"] = Field(
        default="unsubscribe", description="What to do with a member who enters: remove or unsubscribe."
    )
    resubscribe_on_exit: bool = Field(
        default=False, description="Resubscribe members who exit (useful for an opted-out audience)."
    )

    @model_validator(mode="after")
    def _book_for_remove(self) -> DotdigitalRemoveContactsJob:
        if self.on_enter == "remove" and not self.address_book_name:
            raise ValueError("on_enter: remove needs address_book_name; removal is from one address book")
        return self

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        self._add_tasks(job, "DotdigitalRemoveContactsOperator")


class DotdigitalImportContactsActivityJob(ChangesImportJob, _DotdigitalConnection):
    """Import Contacts & Activity into dotmailer_contacts and dotmailer_activity (sends, opens, clicks)."""

    type: Literal["dotdigital_import_contacts_activity"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.dotdigital_to_lytics.DotdigitalToLyticsOperator"
    initial_since: str = Field(
        default="2000-01-01T00:00:00",
        pattern=r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2})?$",
        description="First run reads changes since this UTC date-time; later runs continue from the last.",
    )
    include_activity: bool = Field(default=True, description="Import sends, opens and clicks too.")

    def task_arguments(self) -> dict[str, Any]:
        """The pool; the watermark moves only after Lytics acknowledged."""
        return self.pool_argument()
