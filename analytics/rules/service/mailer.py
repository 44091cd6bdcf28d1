"""Email actions through the configured SMTP server (stdlib ``smtplib``, in a thread).

One connection per message: rules send few e-mails, and a long-lived SMTP session would
need keep-alive handling for little gain. The password comes from the environment only
(``config.py``) and never reaches a log line.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from .config import Config


class MailError(Exception):
    """The message was not accepted (no server configured, refused, unreachable)."""


def build_message(action: dict[str, Any], default_from: str) -> EmailMessage:
    """The message of a rendered email action (``actions.py``: to, from, subject, body)."""
    message = EmailMessage()
    message["From"] = action.get("from") or default_from
    message["To"] = ", ".join(action["to"])
    message["Subject"] = action.get("subject", "")
    message.set_content(action.get("body", ""))
    return message


class Mailer:
    def __init__(self, config: Config) -> None:
        self.config = config

    def _send(self, message: EmailMessage, timeout: float) -> None:
        c = self.config
        try:
            smtp: smtplib.SMTP
            if c.smtp_tls:
                smtp = smtplib.SMTP_SSL(c.smtp_host, c.smtp_port, timeout=timeout, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(c.smtp_host, c.smtp_port, timeout=timeout)
            with smtp:
                if c.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.smtp_user:
                    smtp.login(c.smtp_user, c.smtp_password.value)
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            # the exception's text may quote the server, never our password
            raise MailError(f"SMTP {c.smtp_host}:{c.smtp_port}: {type(exc).__name__}: {exc}") from None

    async def send(self, action: dict[str, Any], timeout: float) -> None:
        if not self.config.smtp_host:
            raise MailError("no SMTP server configured (-smtpHost)")
        if not action.get("to"):
            raise MailError("the email action has no recipient")
        message = build_message(action, self.config.smtp_from)
        await asyncio.to_thread(self._send, message, timeout)
