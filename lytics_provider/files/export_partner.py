"""Partner file drops: a partner's format (layout, name, compression, trigger) over SFTP or S3.

A partner is a :data:`PartnerFormat`: a function of the run (:class:`PartnerRun`: the job's
identifier, fields, audience options and the exported audience) returning a
:class:`~lytics_provider.files.export_preset.FileDropPreset`. Its operator is a few lines::

    def acme(run: PartnerRun) -> FileDropPreset:
        return FileDropPreset(FileLayout(...), NameTemplate("acme_{slug}_{timestamp}.csv"))

    class LyticsToAcmeOperator(PartnerDropOperator):
        partner_format = staticmethod(acme)

A partner whose newest file replaces what it holds (members missing from it are removed) sets
``max_exit_fraction``: the exit guard (:mod:`lytics_provider.pipeline.exit_guard`) then stops a run
whose exits against the last committed run are over that share, before anything is uploaded.

The format is built when the task runs (membership columns are audience slugs, and the audience
may be configured by id), so the rows are rendered by ``deliver`` from the scan's snapshot. The
destination is SFTP (``sftp_conn_id`` + ``folder``) or S3 (``bucket`` + ``directory``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

from airflow.sdk import Context

from lytics_provider.files.export_layout import FileLayout
from lytics_provider.files.export_membership import AudienceExtras
from lytics_provider.files.export_naming import COMPACT_STAMP, NameTemplate
from lytics_provider.files.export_operator import FileDropExportOperator
from lytics_provider.files.export_preset import FileDropPreset
from lytics_provider.files.transports import Transport
from lytics_provider.jobs.exit_guard import ALLOW_MASS_EXIT_PARAM
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.exit_guard import DEFAULT_MIN_EXITS, ExitGuardVerdict, check_exits, enforce


@dataclass(frozen=True)
class PartnerRun:
    """What a partner format reads when the task runs.

    :param identifier: the **Identifier** field (first column).
    :param audience_membership: **Audience membership**: slugs with a membership column each.
    :param append_segment_name: **Append Segment Name**.
    :param additional_segments: **Additional Segments**.
    :param custom_join: **Custom Join** for multi-value fields.
    :param audience: the exported audience (``id``, ``slug``, ``name``).
    :param profile_fields: the **Fields to Export** (the user schema's when none were chosen);
        called only by formats that export fields.
    :param audience_name: the name of an audience slug (one API call for all, made on first use).
    :param options: the partner's own options (e.g. BlueKai's partner name and site id).
    :param chosen_fields: the fields the job chose (None when it chose none).
    """

    identifier: str
    audience_membership: tuple[str, ...]
    append_segment_name: bool
    additional_segments: bool
    custom_join: str
    audience: Mapping[str, Any]
    profile_fields: Callable[[], Sequence[str]]
    audience_name: Callable[[str], str]
    options: Mapping[str, Any] = field(default_factory=dict)
    chosen_fields: tuple[str, ...] | None = None

    @property
    def slug(self) -> str:
        """The exported audience's slug (else its id)."""
        return str(self.audience.get("slug") or self.audience.get("id"))

    def columns(self) -> tuple[str, ...]:
        """The identifier, then the other profile fields in their order."""
        return (self.identifier, *(f for f in self.profile_fields() if f != self.identifier))

    def extras(self, *, every_audience: bool = False) -> AudienceExtras:
        """The membership part of a row: the listed audiences, else the exported one (with
        ``every_audience``: else every audience of the member)."""
        every = every_audience and not self.audience_membership
        return AudienceExtras(
            audiences=() if every else (self.audience_membership or (self.slug,)),
            segment_name=str(self.audience.get("name") or self.slug) if self.append_segment_name else None,
            additional_segments=self.additional_segments,
            every_audience=every,
            join=self.custom_join,
        )


PartnerFormat = Callable[[PartnerRun], FileDropPreset]


@dataclass(frozen=True)
class PlainCsv:
    """A partner format: a CSV of the identifier and the profile fields with a header row.

    Members without the identifier (or, for ``email``, without a valid address) are rejected.
    """

    name: NameTemplate

    def __call__(self, run: PartnerRun) -> FileDropPreset:
        from lytics_provider.transfers.lytics_to_sftp import IdentifierCheck

        columns = run.columns()
        layout = FileLayout(columns, row_check=IdentifierCheck(run.identifier))
        return FileDropPreset(layout, self.name)


#: ``lytics_{slug}_{yyyymmddHHMMSS}.csv``: a CSV with a header row, the **Identifier** first (default
#: ``email``; members without a valid one go to the rejects file), then the other **Fields to
#: Export** (default every field of the user schema); multi-value fields are comma-joined, maps are
#: JSON. Every run writes the whole audience to a new file named from the run's logical date (UTC).
TIMESTAMPED_CSV = PlainCsv(NameTemplate("lytics_{slug}_{timestamp}.csv", COMPACT_STAMP, safe_parts=True))


class PartnerDropOperator(FileDropExportOperator):
    """Deliver the scanned audience in a partner's format, to SFTP or S3.

    Subclasses set :attr:`partner_format`. Give ``sftp_conn_id`` (and ``folder``) for SFTP, or
    ``bucket`` (and ``directory``, ``aws_conn_id``) for S3.

    :param identifier: the **Identifier** field, first in every row.
    :param audience_membership: **Audience membership**: audience slugs with a column each
        (default: the exported audience).
    :param append_segment_name: **Append Segment Name**: a ``segment_name`` field with the audience name.
    :param additional_segments: **Additional Segments**: a ``segments`` field with every audience
        of the member.
    :param custom_join: **Custom Join**: joins the values of multi-value fields.
    :param sftp_conn_id: Airflow SFTP connection (SFTP drops).
    :param folder: remote folder (SFTP drops); empty for the login directory.
    :param bucket: S3 bucket (S3 drops).
    :param directory: key prefix inside the bucket (S3 drops).
    :param aws_conn_id: Airflow AWS connection (S3 drops).
    :param partner_options: the partner's own options, read by its format.
    :param max_exit_fraction: turns the exit guard on: a run whose exits are more than this share
        of the previous audience stops before uploading (the run param ``allow_mass_exit`` lets
        one run through); None (default) for partners whose files add only.
    :param exit_guard_min_exits: the guard acts only from this many exits.
    """

    partner_format: ClassVar[PartnerFormat]
    template_fields: Sequence[str] = ("fields", "folder", "bucket", "directory")

    def __init__(
        self,
        *,
        identifier: str = "email",
        audience_membership: Sequence[str] = (),
        append_segment_name: bool = False,
        additional_segments: bool = False,
        custom_join: str = "&",
        sftp_conn_id: str | None = None,
        folder: str = "",
        bucket: str | None = None,
        directory: str = "",
        aws_conn_id: str | None = "aws_default",
        partner_options: Mapping[str, Any] | None = None,
        max_exit_fraction: float | None = None,
        exit_guard_min_exits: int = DEFAULT_MIN_EXITS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        if self._transport is None and bool(sftp_conn_id) == bool(bucket):
            raise ValueError(
                f"{type(self).__name__} {self.task_id!r}: give sftp_conn_id (SFTP) or bucket (S3), not "
                + ("both" if sftp_conn_id else "neither")
            )
        if not custom_join:
            raise ValueError("custom_join must not be empty; the default is '&'")
        self.audience_membership = list(audience_membership)
        self.partner_options = dict(partner_options or {})

    def transport(self) -> Transport:
        if self._transport is not None:
            return self._transport
        if self.bucket:
            from lytics_provider.files.transports.s3 import S3Transport

            return S3Transport(self.bucket, self.directory, self.aws_conn_id)
        from lytics_provider.files.transports.sftp import SftpTransport

        return SftpTransport(str(self.sftp_conn_id), self.folder)

    def static_layout(self) -> FileLayout | None:
        """Known only at run time (the audience's slug and name are part of it)."""
        return None

    def partner_run(self) -> PartnerRun:
        """The run as the partner format sees it."""
        names: dict[str, str] = {}

        @cache
        def load_names() -> None:
            from lytics_provider.hooks.lytics import LyticsHook

            for segment in LyticsHook(self.lytics_conn_id).list_segments(sizes=False):
                if segment.get("slug_name") or segment.get("slug"):
                    slug = str(segment.get("slug_name") or segment.get("slug"))
                    names[slug] = str(segment.get("name") or slug)

        def audience_name(slug: str) -> str:
            if slug == self.audience.get("slug"):
                return str(self.audience.get("name") or slug)
            load_names()
            return names.get(slug, slug)

        return PartnerRun(
            identifier=self.identifier,
            audience_membership=tuple(self.audience_membership),
            append_segment_name=self.append_segment_name,
            additional_segments=self.additional_segments,
            custom_join=self.custom_join,
            audience=dict(self.audience),
            profile_fields=self.field_names,
            audience_name=audience_name,
            options=self.partner_options,
            chosen_fields=tuple(self.fields) if self.fields else None,
        )

    def _use_partner_format(self) -> None:
        self.preset = type(self).partner_format(self.partner_run())

    def exit_guard(self, context: Context) -> ExitGuardVerdict | None:
        """The exit guard's verdict on this run (None: guard off, first run or full refresh)."""
        if self.max_exit_fraction is None:
            return None
        from lytics_provider.pipeline.snapshot import count_changes
        from lytics_provider.pipeline.state_store import baseline_snapshot

        params = context.get("params") or {}
        previous = None if as_bool(params.get("full_refresh")) else baseline_snapshot(self.job_id)
        if previous is None:
            return None
        counts = count_changes(self.snapshot_path, previous)
        return check_exits(
            counts.exits,
            counts.exits + counts.changes + counts.unchanged,
            self.max_exit_fraction,
            self.exit_guard_min_exits,
            as_bool(params.get(ALLOW_MASS_EXIT_PARAM)),
        )

    def plan(self, context: Context) -> dict[str, Any]:
        self._use_partner_format()
        verdict = self.exit_guard(context)
        if verdict is not None and verdict.blocked:
            self.log.warning("Dry run: %s", verdict.message(self.job_id))
        report = super().plan(context)
        return report if verdict is None else {**report, "exit_guard": verdict.as_report()}

    def deliver(self, context: Context) -> dict[str, Any]:
        self._use_partner_format()
        verdict = self.exit_guard(context)
        if verdict is not None:
            enforce(verdict, self.job_id)
        report = super().deliver(context)
        return report if verdict is None else {**report, "exit_guard": verdict.as_report()}
