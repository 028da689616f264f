"""Partner file-drop job types: LiveRamp, BlueKai, Taboola, Lotame, Amazon Marketing Cloud, Omeda,
Selligent and Adobe Campaign.

Each builds ``scan`` → ``deliver`` → ``report`` with its partner's operator
(:mod:`lytics_provider.files.export_partner`). Option names are the Lytics job forms':
**Identifier**, **Audience membership**, **Append Segment Name**, **Additional Segments**,
**Fields to Export**, **Custom Join**, **Continuous Export** and **File Export Frequency** (the
last two are the schedule's ``keep_updated`` and ``frequency`` under the forms' names).
Operators are imported inside ``add_tasks`` so reading configs stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from lytics_provider.jobs.base import AudienceExportConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.one_task import build_task

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

MEMBERSHIP_FIELD = "segments"
_NAME_PART = r"^[A-Za-z0-9_-]+$"
FORM_NAMES = {
    "continuous_export": "keep_updated",
    "file_export_frequency": "frequency",
    "fields_to_export": "fields",
}


class PartnerDropJob(AudienceExportConfig):
    """Options every partner drop shares, and its tasks."""

    operator: ClassVar[str]
    """Dotted path of the ``deliver`` operator."""
    scan_extra: ClassVar[tuple[str, ...]] = (MEMBERSHIP_FIELD,)
    """Fields the format reads besides the identifier and the fields to export."""

    continuous_export: bool | None = Field(
        default=None, description="Continuous Export: export the audience repeatedly (same as keep_updated)."
    )
    file_export_frequency: str | None = Field(
        default=None,
        description="File Export Frequency: how often a continuous export makes a new file "
        "(same as frequency).",
    )
    fields_to_export: list[str] | None = Field(
        default=None, description="Fields to Export: Lytics fields, in column order (same as fields)."
    )

    @model_validator(mode="before")
    @classmethod
    def _form_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for form_name, field_name in FORM_NAMES.items():
            value = data.get(form_name)
            if value is None:
                continue
            if data.get(field_name) is not None and data[field_name] != value:
                raise ValueError(f"{form_name} and {field_name} are the same option; give only {form_name}")
            data[field_name] = value
        return data

    def scan_field_list(self) -> list[str] | None:
        """The fields the scan fetches (None: every field, when no fields were chosen)."""
        if self.fields is None:
            return None
        identifier = getattr(self, "identifier", None)
        return list(dict.fromkeys([*([identifier] if identifier else []), *self.fields, *self.scan_extra]))

    def add_tasks(self, job: JobContext) -> None:
        deliver = build_task(self, self.operator, job, "deliver")
        self.add_scan_deliver_report(job, deliver, fields=self.scan_field_list())


class AudienceOptions(PartnerDropJob):
    """LiveRamp's and BlueKai's audience options."""

    identifier: str = Field(
        default="email",
        min_length=1,
        description="Identifier: the field in the first column; a unique identifier, also exported.",
    )
    audience_membership: list[str] = Field(
        default_factory=list,
        description="Audience membership: audience slugs to include as membership (default: the exported "
        "audience; BlueKai: every audience of the member).",
    )
    append_segment_name: bool = Field(
        default=False, description="Append Segment Name: add a segment_name field with the audience name."
    )
    additional_segments: bool = Field(
        default=False,
        description="Additional Segments: add a segments field with every audience the user is a member of.",
    )
    custom_join: str = Field(
        default="&",
        min_length=1,
        description='Custom Join: joins the values of multi-value fields (default "&").',
    )


class SftpDrop(PartnerDropJob):
    """An SFTP destination."""

    sftp_conn_id: str = Field(min_length=1, description="Airflow SFTP connection of the server.")
    folder: str = Field(default="", description="Remote folder; empty for the login directory.")


class S3Drop(PartnerDropJob):
    """An S3 destination."""

    bucket: str = Field(min_length=1, description="S3 bucket the file is written to.")
    directory: str = Field(default="", description="Directory (key prefix) inside the bucket.")
    aws_conn_id: str = Field(default="aws_default", description="Airflow AWS connection (keys or IAM role).")


class SftpOrS3Drop(PartnerDropJob):
    """SFTP (``sftp_conn_id`` + ``folder``) or S3 (``bucket`` + ``directory``)."""

    sftp_conn_id: str | None = Field(default=None, description="Airflow SFTP connection (SFTP drops).")
    folder: str = Field(default="", description="Remote folder (SFTP drops); empty for the login directory.")
    bucket: str | None = Field(default=None, description="S3 bucket (S3 drops).")
    directory: str = Field(default="", description="Directory (key prefix) inside the bucket (S3 drops).")
    aws_conn_id: str = Field(default="aws_default", description="Airflow AWS connection (S3 drops).")

    @model_validator(mode="after")
    def _one_destination(self) -> SftpOrS3Drop:
        if bool(self.sftp_conn_id) == bool(self.bucket):
            raise ValueError(
                "give sftp_conn_id (and folder) for SFTP or bucket (and directory) for S3, "
                + ("not both" if self.sftp_conn_id else "one of them")
            )
        return self


# -- LiveRamp ------------------------------------------------------------------------------------


class LiveRampS3ExportJob(AudienceOptions, S3Drop):
    """LiveRamp Export Audiences (S3): a LiveRamp CSV with membership columns in a bucket."""

    type: Literal["liveramp_s3_export"]
    operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_liveramp.LiveRampExportOperator"


class LiveRampSftpExportJob(AudienceOptions, SftpDrop):
    """LiveRamp Export Audiences (SFTP): a LiveRamp CSV with membership columns on SFTP."""

    type: Literal["liveramp_sftp_export"]
    operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_liveramp.LiveRampExportOperator"


class LiveRampEUExportJob(AudienceOptions, SftpDrop):
    """LiveRamp Export Audiences (EU Format): Customer ID, mapped fields and the audience column."""

    type: Literal["liveramp_eu_export"]
    operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_liveramp.LiveRampEUExportOperator"
    field_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Lytics field -> LiveRamp EU column; none by default (Customer ID holds the identifier).",
    )
    audience_label: Literal["name", "slug"] = Field(
        default="name", description="Audience column: the Lytics audience name or slug."
    )

    @model_validator(mode="after")
    def _check_mapping(self) -> LiveRampEUExportJob:
        if self.fields is not None:
            raise ValueError(
                "the EU format takes its columns from field_mapping; remove fields / fields_to_export"
            )
        headers = ["Customer ID", *self.field_mapping.values(), "Segment"]
        repeated = sorted({h for h in headers if headers.count(h) > 1})
        if repeated:
            raise ValueError(f"LiveRamp EU column(s) {', '.join(repeated)} appear twice")
        return self

    def scan_field_list(self) -> list[str] | None:
        return list(dict.fromkeys([self.identifier, *self.field_mapping, MEMBERSHIP_FIELD]))


class LiveRampIdentifierExportJob(AudienceOptions, SftpOrS3Drop):
    """LiveRamp Export Identifier: identifier and audience name, one line per audience."""

    type: Literal["liveramp_identifier_export"]
    operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_liveramp.LiveRampIdentifierExportOperator"

    def scan_field_list(self) -> list[str] | None:
        return [self.identifier, MEMBERSHIP_FIELD]


# -- BlueKai -------------------------------------------------------------------------------------


class BlueKaiExportJob(AudienceOptions, SftpDrop):
    """BlueKai Export Audiences: ``Partner_SiteID_YYYY-MM-DD.gz`` (TSV, no header), then its trigger."""

    type: Literal["bluekai_export"]
    operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_bluekai.BlueKaiExportOperator"
    partner_name: str = Field(
        pattern=_NAME_PART,
        description="Partner name: the name BlueKai knows the account by (names the file).",
    )
    site_id: str = Field(pattern=_NAME_PART, description="Site ID of the BlueKai container (names the file).")

    @model_validator(mode="after")
    def _one_file_a_day(self) -> BlueKaiExportJob:
        if self.is_sub_daily:
            raise ValueError(
                f"BlueKai files are named by date (Partner_SiteID_YYYY-MM-DD.gz), so a {self.frequency!r} "
                "export would overwrite the day's file; use daily, weekly or monthly"
            )
        return self


# -- Taboola, Lotame, Amazon Marketing Cloud -----------------------------------------------------


class TaboolaExportJob(S3Drop):
    """Taboola S3 CSV Export: membership of the users with a Taboola ID (no fields)."""

    type: Literal["taboola_export"]
    operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_taboola.TaboolaExportOperator"
    audience_membership: list[str] = Field(
        default_factory=list,
        description="Audience slugs (set up in Taboola) sent besides the exported audience.",
    )

    @model_validator(mode="after")
    def _membership_only(self) -> TaboolaExportJob:
        if self.fields is not None:
            raise ValueError(
                "the Taboola export is for audience membership only; remove fields / fields_to_export"
            )
        return self

    def scan_field_list(self) -> list[str] | None:
        return ["taboola_ids", MEMBERSHIP_FIELD]


class LotameExportJob(SftpOrS3Drop):
    """Export Audiences to Lotame: identifier and membership columns, on S3 or SFTP."""

    type: Literal["lotame_export"]
    operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_lotame.LotameExportOperator"
    identifier: str = Field(
        default="_uid",
        min_length=1,
        description="Identifier: first column; default _uid, the Lytics cookie id shared by the cookie "
        "exchange.",
    )
    audience_membership: list[str] = Field(
        default_factory=list,
        description="Audience membership: audience slugs with a 1/blank column each (default: the exported "
        "one).",
    )

    def scan_field_list(self) -> list[str] | None:
        return list(dict.fromkeys([self.identifier, *(self.fields or ()), MEMBERSHIP_FIELD]))


class AmazonMarketingCloudExportJob(ExitGuardFields, S3Drop):
    """Amazon Marketing Cloud: Advertiser Data Upload: hashed match keys of the current members.

    Each file replaces the last, so exits are removed; the exit guard stops a run that would
    remove more than ``max_exit_fraction`` of the previous audience.
    """

    type: Literal["amazon_marketing_cloud_export"]
    operator: ClassVar[str] = (
        "lytics_provider.transfers.lytics_to_amazon_marketing_cloud.AmazonMarketingCloudExportOperator"
    )
    identifiers: dict[str, str] = Field(
        default_factory=lambda: {"email": "email"},
        min_length=1,
        description="Identifiers: match key (email, phone, first_name, last_name, address, city, state, "
        "postal_code) -> Lytics field. At least one.",
    )
    country: str = Field(
        default="US",
        pattern=r"^[A-Za-z]{2}$",
        description="Country the identifiers are normalised for (ISO code); one country per audience when "
        "address, phone or postal_code are sent.",
    )

    @model_validator(mode="after")
    def _check_identifiers(self) -> AmazonMarketingCloudExportJob:
        from lytics_provider.sync.identifiers import CALLING_CODES, MATCH_KEYS

        unknown = sorted(set(self.identifiers) - set(MATCH_KEYS))
        if unknown:
            raise ValueError(f"unknown identifier(s) {', '.join(unknown)}; use {', '.join(MATCH_KEYS)}")
        if "phone" in self.identifiers and self.country.upper() not in CALLING_CODES:
            raise ValueError(
                f"phone numbers cannot be normalised for country {self.country!r}; use one of "
                + ", ".join(CALLING_CODES)
            )
        if self.fields is not None:
            raise ValueError("Amazon Marketing Cloud takes its columns from identifiers; remove fields")
        return self

    def scan_field_list(self) -> list[str] | None:
        return list(dict.fromkeys(self.identifiers.values()))


# -- Omeda, Selligent, Adobe Campaign: a CSV of the identifier and fields on SFTP ------------------


class PlainCsvJob(SftpDrop):
    """A CSV with a header row: the identifier, then the fields to export."""

    identifier: str = Field(
        default="email",
        min_length=1,
        description="Identifier: the first column; members without it are rejected.",
    )


class OmedaExportJob(PlainCsvJob):
    """Omeda SFTP Export: ``"DATE AND TIME EXPORTED".csv``."""

    type: Literal["omeda_export"]
    operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_omeda.OmedaExportOperator"


class SelligentExportJob(PlainCsvJob):
    """Export to Selligent (SFTP Export) for a Message Studio recurring FTP import."""

    type: Literal["selligent_export"]
    operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_selligent.SelligentExportOperator"


class AdobeCampaignExportJob(PlainCsvJob):
    """Adobe Campaign: an hourly or daily CSV on the SFTP location Adobe Campaign imports from."""

    type: Literal["adobe_campaign_export"]
    operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_adobe_campaign.AdobeCampaignExportOperator"

    @model_validator(mode="after")
    def _hourly_or_daily(self) -> AdobeCampaignExportJob:
        if self.frequency not in ("hourly", "daily"):
            raise ValueError(f"Adobe Campaign takes an hourly or daily CSV export, not {self.frequency!r}")
        return self
