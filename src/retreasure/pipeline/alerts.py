"""Failure notifications: a Microsoft Teams incoming webhook and SMTP e-mail, one message per channel.

Apprise was considered and not used: its Teams plugin builds the address from tokens onto Microsoft's own
hosts (``https://<team>.webhook.office.com/...``), so it cannot be pointed at a receiver on loopback for the
tests, and it would be a new dependency for two small channels. A Teams webhook is one JSON POST (httpx is
already the project's HTTP client) and e-mail is the standard library's smtplib.

Every text that leaves the process goes through ``redact`` first: an error may carry a credential.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx

from retreasure.log import get_logger
from retreasure.redact import redact
from retreasure.settings import AlertSettings

log = get_logger("pipeline.alerts")


@dataclass(frozen=True)
class Alert:
    """One failure, as a person reads it."""

    asset: str
    partition: str | None
    error: str
    run_id: str
    incident_id: str
    occurrences: int
    attempts: int

    @property
    def title(self) -> str:
        where = f" [{self.partition}]" if self.partition else ""
        return redact(f"retreasure: {self.asset}{where} failed")

    def facts(self) -> list[tuple[str, str]]:
        return [
            ("Asset", self.asset),
            ("Partition", self.partition or "-"),
            ("Incident", f"{self.incident_id} (occurrence {self.occurrences})"),
            ("Attempts", str(self.attempts)),
            ("Run", self.run_id),
        ]

    def text(self) -> str:
        lines = [self.title, ""] + [f"{k}: {v}" for k, v in self.facts()] + ["", "Error:", self.error]
        return redact("\n".join(lines))


def teams_payload(alert: Alert) -> dict[str, Any]:
    """A Teams message carrying an Adaptive Card: what Workflows webhooks take (Office 365 connector
    MessageCards are being retired)."""
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": alert.title, "weight": "Bolder", "size": "Medium", "color": "Attention"},
            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in alert.facts()]},
            {"type": "TextBlock", "text": redact(alert.error), "wrap": True, "fontType": "Monospace"},
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def send_teams(settings: AlertSettings, alert: Alert) -> None:
    assert settings.teams_webhook_url is not None
    response = httpx.post(
        settings.teams_webhook_url.get_secret_value(), json=teams_payload(alert), timeout=settings.timeout_s
    )
    if response.status_code >= 300:
        # The URL is the credential: never echo it, only the status.
        raise RuntimeError(f"Teams webhook answered {response.status_code}")


def send_email(settings: AlertSettings, alert: Alert) -> None:
    assert settings.smtp_host and settings.smtp_from
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(settings.smtp_to)
    message.set_content(alert.text())
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout_s) as smtp:
        smtp.ehlo()
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
        smtp.send_message(message)


SENDERS = {"teams": send_teams, "email": send_email}


def notify(settings: AlertSettings, alert: Alert) -> dict[str, str]:
    """Send ``alert`` once on every configured channel; a channel that fails is logged, never raised, so that
    an alerting outage cannot hide the failure it reports. Returns channel -> "sent" or the reason."""
    outcome: dict[str, str] = {}
    for channel in settings.channels():
        try:
            SENDERS[channel](settings, alert)
            outcome[channel] = "sent"
        except Exception as exc:
            outcome[channel] = redact(f"{type(exc).__name__}: {exc}")
            log.error(
                "alert not delivered", extra={"channel": channel, "asset": alert.asset, "error": outcome[channel]}
            )
    return outcome
