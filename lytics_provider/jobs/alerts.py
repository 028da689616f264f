"""The ``alerts:`` block any job config may carry, and how it is added to the job's DAG.

Options are the seed's alert jobs ("Slack Alerts", "Microsoft Teams Alerts", "Email Alerts"):
the Slack Webhook URL and the Microsoft Teams Webhook URL are credentials, so the block names
the Airflow connections that hold them; Email Address is a comma-separated list; Event Types
are this job's events (``failure``, ``rejects``, ``report``). Alert Subject Type and Event
Subject IDs need no option: the subject is the job the block sits in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from lytics_provider.notifications.alerts import AlertChannels

AlertEvent = Literal["failure", "rejects", "report"]
ALERTS_TASK_ID = "alerts"


class AlertsConfig(BaseModel):
    """Where a job's alerts go and which events send one (unknown keys refused, like every job option)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True)

    slack_webhook_conn_id: str | None = Field(
        default=None,
        min_length=1,
        description="Slack Webhook URL: the Airflow slackwebhook connection holding it (its token or "
        "the whole URL in Password).",
    )
    microsoft_teams_webhook_conn_id: str | None = Field(
        default=None,
        min_length=1,
        description="Microsoft Teams Webhook URL: the Airflow http connection holding it (the whole URL "
        "in Host, or the host in Host and the rest in Password).",
    )
    email_address: str | list[str] | None = Field(
        default=None,
        description="Email Address: recipients, a list or one comma-separated string.",
    )
    smtp_conn_id: str = Field(
        default="smtp_default", min_length=1, description="SMTP connection of the e-mails."
    )
    from_email: str | None = Field(
        default=None, description="Sender of the e-mails; default the SMTP connection's."
    )
    event_types: list[AlertEvent] = Field(
        default_factory=lambda: ["failure", "rejects"],
        min_length=1,
        description='Event Types: "failure" (a task failed), "rejects" (more rejected rows than '
        'rejects_threshold), "report" (every run\'s report).',
    )
    rejects_threshold: int = Field(
        default=0, ge=0, description="The rejects alert fires when a run rejects more rows than this."
    )

    @field_validator("email_address")
    @classmethod
    def _check_addresses(cls, value: str | list[str] | None) -> list[str] | None:
        """A comma-separated string (the seed's form) or a list, as a list of addresses."""
        if value is None:
            return None
        addresses = [a.strip() for a in (value.split(",") if isinstance(value, str) else value) if a.strip()]
        bad = [a for a in addresses if "@" not in a or " " in a]
        if bad:
            raise ValueError(f"email_address holds {bad}, which are not e-mail addresses")
        return addresses

    @model_validator(mode="after")
    def _one_channel(self) -> AlertsConfig:
        if not (self.slack_webhook_conn_id or self.microsoft_teams_webhook_conn_id or self.email_address):
            raise ValueError(
                "alerts needs at least one of slack_webhook_conn_id, microsoft_teams_webhook_conn_id, "
                "email_address"
            )
        return self

    def channels(self) -> AlertChannels:
        from lytics_provider.notifications.alerts import AlertChannels

        return AlertChannels(
            slack_webhook_conn_id=self.slack_webhook_conn_id,
            microsoft_teams_webhook_conn_id=self.microsoft_teams_webhook_conn_id,
            email_address=tuple(self.email_address or ()),
            smtp_conn_id=self.smtp_conn_id,
            from_email=self.from_email,
        )


def failure_callbacks(alerts: AlertsConfig | None) -> list[object]:
    """The ``on_failure_callback`` list of the job's tasks (empty without a ``failure`` event type)."""
    if alerts is None or "failure" not in alerts.event_types:
        return []
    from lytics_provider.operators.alerts import TaskFailureAlert

    return [TaskFailureAlert(alerts.channels())]


def add_alerts_task(dag: DAG, alerts: AlertsConfig | None) -> None:
    """Add the ``alerts`` task after the DAG's last tasks when rejects or report alerts are asked for."""
    if alerts is None or not {"rejects", "report"} & set(alerts.event_types):
        return
    from lytics_provider.operators.alerts import RunAlertsOperator

    leaves = [task for task in dag.tasks if not task.downstream_task_ids]
    task = RunAlertsOperator(
        task_id=ALERTS_TASK_ID,
        channels=alerts.channels(),
        event_types=[e for e in alerts.event_types if e != "failure"],
        rejects_threshold=alerts.rejects_threshold,
        report_task_ids=[t.task_id for t in leaves],
        dag=dag,
    )
    for leaf in leaves:
        leaf >> task
