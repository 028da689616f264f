"""Job alerts through Airflow's official notifiers: Slack, Microsoft Teams and e-mail.

The seed's "Slack Alerts", "Microsoft Teams Alerts" and "Email Alerts" map to
:class:`~airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier`,
:class:`~airflow.providers.http.notifications.http.HttpNotifier` (a Teams Workflows / Incoming
Webhook takes a JSON post) and :class:`~airflow.providers.smtp.notifications.smtp.SmtpNotifier`.
One :class:`JobAlert` (what happened) goes to every channel of an ``alerts:`` block; a channel
that fails does not stop the others, and :func:`send_alert` reports which failed.

Secrets: webhook URLs carry their credential in the URL, so they live in Airflow connections
(never in a job config), are registered with Airflow's secrets masker, and are also masked in
the HTTP libraries' own debug logs. Alert texts are built from the job, task and run names and
the error's type and text, each passed through the masker.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

try:
    from airflow.providers.http.notifications.http import HttpNotifier
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "alerts: blocks need the http, slack and smtp providers: install airflow-provider-lytics[alerts]"
    ) from exc
from airflow.sdk import BaseHook
from airflow.sdk.bases.notifier import BaseNotifier

from lytics_provider.pipeline.log_redaction import HTTP_LOGGERS, hide_in_http_logs

log = logging.getLogger(__name__)
WEBHOOK_LOGGERS = ("slack_sdk.webhook.client", "slack_sdk.webhook.async_client")


@dataclass(frozen=True)
class JobAlert:
    """One alert: a title and the lines under it (plain text; each channel formats it)."""

    title: str
    lines: tuple[str, ...] = ()
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        facts = [f"{key}: {value}" for key, value in self.facts.items()]
        return "\n".join([self.title, *self.lines, *facts])


def mask(text: str) -> str:
    """``text`` with every secret Airflow's masker knows replaced."""
    try:
        from airflow.sdk.log import redact

        return str(redact(text))
    except Exception:  # the masker is not configured outside a task: nothing registered to hide
        return text


def register_secrets(*values: str | None) -> None:
    """Hide ``values`` in task logs (Airflow's masker) and in the HTTP libraries' debug logs."""
    secrets = [v for v in values if v]
    if not secrets:
        return
    try:
        from airflow.sdk.log import mask_secret

        for value in secrets:
            mask_secret(value)
    except Exception:  # pragma: no cover - masker unavailable: the logging filter still applies
        log.debug("Airflow's secrets masker is not available")
    hide_in_http_logs(*secrets, loggers=(*HTTP_LOGGERS, *WEBHOOK_LOGGERS))


class SlackAlertNotifier(SlackWebhookNotifier):
    """``SlackWebhookNotifier`` that registers the webhook token as a secret and logs no URL.

    :param slack_webhook_conn_id: a ``slackwebhook`` connection (the Slack Webhook URL, or its token,
        in Password).
    :param text: the message.
    """

    def notify(self, context: Any) -> None:
        conn = BaseHook.get_connection(self.slack_webhook_conn_id)
        register_secrets(conn.password)
        self.hook.send(text=self.text, blocks=self.blocks, attachments=self.attachments)


class TeamsAlertNotifier(HttpNotifier):
    """``HttpNotifier`` posting an Adaptive Card message to a Microsoft Teams webhook.

    The connection (an ``http`` connection) holds the Microsoft Teams Webhook URL: the whole URL in
    Host, or the scheme and host in Host and the rest of the URL (path and query, which hold the
    credential) in Password.

    :param http_conn_id: the connection holding the webhook URL.
    :param alert: the alert to post.
    """

    def __init__(self, *, http_conn_id: str, alert: JobAlert, **kwargs: Any) -> None:
        super().__init__(http_conn_id=http_conn_id, json=teams_card(alert), **kwargs)

    def notify(self, context: Any) -> None:
        conn = BaseHook.get_connection(self.http_conn_id)
        register_secrets(conn.host, conn.password)
        endpoint = conn.password or self.endpoint
        self.hook.run(endpoint=endpoint, json=self.json, headers={"Content-Type": "application/json"})


def teams_card(alert: JobAlert) -> dict[str, Any]:
    """The message a Teams webhook takes: one Adaptive Card with the title, lines and facts."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": alert.title, "weight": "Bolder", "wrap": True}
    ]
    body.extend({"type": "TextBlock", "text": line, "wrap": True} for line in alert.lines)
    if alert.facts:
        body.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in alert.facts.items()]})
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                },
            }
        ],
    }


def email_html(alert: JobAlert) -> str:
    """The alert as a small HTML e-mail body (every value escaped)."""
    lines = "".join(f"<p>{html.escape(line)}</p>" for line in alert.lines)
    facts = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in alert.facts.items()
    )
    return f"<h3>{html.escape(alert.title)}</h3>{lines}<table>{facts}</table>"


@dataclass(frozen=True)
class AlertChannels:
    """Where one job's alerts go (an ``alerts:`` block's channels).

    :param slack_webhook_conn_id: ``slackwebhook`` connection (Slack Webhook URL).
    :param microsoft_teams_webhook_conn_id: ``http`` connection (Microsoft Teams Webhook URL).
    :param email_address: recipients.
    :param smtp_conn_id: ``smtp`` connection of the e-mails.
    :param from_email: sender (default: the SMTP connection's).
    """

    slack_webhook_conn_id: str | None = None
    microsoft_teams_webhook_conn_id: str | None = None
    email_address: tuple[str, ...] = ()
    smtp_conn_id: str = "smtp_default"
    from_email: str | None = None

    def notifiers(self, alert: JobAlert) -> list[tuple[str, BaseNotifier]]:
        """``(channel, notifier)`` for each configured channel, carrying ``alert``."""
        found: list[tuple[str, BaseNotifier]] = []
        if self.slack_webhook_conn_id:
            found.append(
                (
                    "slack",
                    SlackAlertNotifier(slack_webhook_conn_id=self.slack_webhook_conn_id, text=alert.text),
                )
            )
        if self.microsoft_teams_webhook_conn_id:
            found.append(
                (
                    "microsoft_teams",
                    TeamsAlertNotifier(http_conn_id=self.microsoft_teams_webhook_conn_id, alert=alert),
                )
            )
        if self.email_address:
            found.append(
                (
                    "email",
                    SmtpNotifier(
                        to=list(self.email_address),
                        from_email=self.from_email,
                        subject=alert.title,
                        html_content=email_html(alert),
                        smtp_conn_id=self.smtp_conn_id,
                    ),
                )
            )
        return found


def send_alert(channels: AlertChannels, alert: JobAlert, context: Any) -> dict[str, str | None]:
    """Send ``alert`` to every channel; ``channel -> None`` when sent, else the (masked) error.

    The notifiers' ``notify`` is called directly: the alert text is final and must not be rendered
    as a Jinja template (an error text may hold braces).
    """
    results: dict[str, str | None] = {}
    for channel, notifier in channels.notifiers(alert):
        try:
            notifier.notify(context)
        except Exception as exc:
            results[channel] = mask(f"{type(exc).__name__}: {exc}")[:500]
            log.warning("The %s alert was not sent: %s", channel, results[channel])
        else:
            results[channel] = None
    return results


def failed(results: dict[str, str | None]) -> list[str]:
    return [channel for channel, error in results.items() if error]


def join_lines(parts: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(p for p in parts if p)


def error_text(exc: BaseException | None, limit: int = 400) -> str | None:
    """The error's type and first line(s), masked; None without an error."""
    if exc is None:
        return None
    text = mask(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= limit else text[: limit - 1] + "…"
