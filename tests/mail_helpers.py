"""Reading the mail the local SES (moto) accepted, and the site's mail backend that sends through the send_email job."""

from __future__ import annotations

import email
from email import policy

import requests

BACKEND = "boardsite.mail.backends.JobEmailBackend"


def sent_mail(endpoint: str) -> list[email.message.EmailMessage]:
    """What the local SES accepted, parsed (moto keeps every raw message; /moto-api/data.json shows them)."""
    raw = requests.get(f"{endpoint}/moto-api/data.json", timeout=10).json()["ses"]["RawMessage"]
    return [email.message_from_string(m["raw_data"], policy=policy.default) for m in raw]


def parts(msg: email.message.EmailMessage) -> dict[str, str]:
    """Each leaf part's content by its content type (``text/plain``, ``text/html``)."""
    return {part.get_content_type(): part.get_content() for part in msg.walk() if not part.is_multipart()}
