"""Deliver one alert to one destination: a JSON webhook, a Slack-compatible webhook, or SMTP.

Each delivery has a short timeout; a failure raises :class:`AlertDeliveryError`
with a one-line, redacted reason (the caller logs it and carries on).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

import httpx

from reverse_etl.alerts.message import Alert
from reverse_etl.project.operate import (
    AlertDestinationConfig,
    EmailAlertConfig,
    SlackAlertConfig,
    WebhookAlertConfig,
)
from reverse_etl.redact import redact

log = logging.getLogger("reverse_etl.alerts")

USER_AGENT = "reverse-etl-alerts"


class AlertDeliveryError(Exception):
    """An alert could not be delivered (the message is redacted and one line)."""


def describe(destination: AlertDestinationConfig) -> str:
    """A secret-free name for a destination (logs, run notes): ``webhook at hooks.example.com``."""
    if isinstance(destination, EmailAlertConfig):
        return f"email via {destination.host}:{destination.port}"
    host = httpx.URL(destination.url.get_secret_value()).host or "?"
    return f"{'Slack webhook' if destination.type == 'slack' else 'webhook'} at {host}"


def send_alert(alert: Alert, destination: AlertDestinationConfig, timeout: float = 5.0) -> None:
    """Deliver ``alert`` to ``destination`` or raise :class:`AlertDeliveryError`."""
    try:
        if isinstance(destination, EmailAlertConfig):
            _send_email(alert, destination, timeout)
        else:
            _post(alert, destination, timeout)
    except AlertDeliveryError:
        raise
    except (httpx.HTTPError, smtplib.SMTPException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AlertDeliveryError(redact(f"{describe(destination)}: {type(exc).__name__}: {first}")) from None


def _post(alert: Alert, destination: WebhookAlertConfig | SlackAlertConfig, timeout: float) -> None:
    if isinstance(destination, SlackAlertConfig):
        # Slack's incoming webhooks take mrkdwn text; the title in bold, the rest as lines.
        body: dict[str, object] = {"text": "\n".join([f"*{alert.title}*", *alert.lines()])}
        headers = {}
    else:
        body = alert.to_json()
        headers = {k: v.get_secret_value() for k, v in destination.headers.items()}
    response = httpx.post(destination.url.get_secret_value(), json=body, timeout=timeout,
                          headers={"User-Agent": USER_AGENT, **headers}, follow_redirects=False)
    if response.status_code >= 300:
        raise AlertDeliveryError(redact(f"{describe(destination)} answered HTTP {response.status_code}"))


def _send_email(alert: Alert, destination: EmailAlertConfig, timeout: float) -> None:
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = destination.from_
    message["To"] = ", ".join(destination.to)
    message.set_content(alert.text() + "\n")
    smtp_class = smtplib.SMTP_SSL if destination.security == "ssl" else smtplib.SMTP
    with smtp_class(destination.host, destination.port, timeout=timeout) as smtp:
        if destination.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if destination.username:
            password = destination.password.get_secret_value() if destination.password else ""
            smtp.login(destination.username, password)
        smtp.send_message(message)


def send_everywhere(alert: Alert, destinations: list[AlertDestinationConfig], timeout: float) -> list[str]:
    """Deliver ``alert`` to each destination; returns one line per destination it missed.

    Each miss is logged as a warning; none raises.
    """
    missed = []
    for destination in destinations:
        try:
            send_alert(alert, destination, timeout)
        except AlertDeliveryError as exc:
            line = f"alert for sync {alert.sync!r} ({alert.kind}) not delivered: {exc}"
            log.warning("%s", line)
            missed.append(line)
    return missed
