"""``/dev/mail/``: the mail the local SES (moto) accepted, for development only.

moto keeps every message SES accepted and shows them at ``<endpoint>/moto-api/data.json`` (/work/shared/DESIGN.md):
this page reads that, parses each raw MIME message with the email package and lists them newest first: from, to,
subject, date, every header (``List-Unsubscribe`` included), the text part, and the HTML part as escaped source only
(a mail's HTML never runs in the site's origin, and the page needs no CSP exception).

It exists only with ``DEBUG`` on and for staff; anyone else, and everyone in production, gets a 404 (not a 403: the
page's existence is not revealed). In production there is no local SES to read anyway.
"""

from __future__ import annotations

import email
import json
import logging
import urllib.request
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

log = logging.getLogger(__name__)

FETCH_SECONDS = 5


@dataclass
class LocalMail:
    message_id: str
    sender: str
    to: str
    subject: str
    date: Any  # datetime or None (a message without a Date header)
    headers: list[tuple[str, str]]
    text: str
    html: str


class LocalSESUnavailable(RuntimeError):
    """No local AWS configured, or it did not answer: the page says which."""


def _body(msg: EmailMessage, content_type: str) -> str:
    for part in msg.walk():
        if part.is_multipart() or part.get_content_type() != content_type:
            continue
        if part.get_content_disposition() == "attachment":
            continue
        try:
            return str(part.get_content())
        except (LookupError, ValueError):  # an unknown charset: show what can be decoded
            payload = part.get_payload(decode=True) or b""
            return payload.decode("utf-8", "replace")
    return ""


def parse(raw: dict[str, Any]) -> LocalMail:
    """One of moto's RawMessage entries (``raw_data``, ``destinations``, ``id``) as the page shows it."""
    # moto keeps the raw message as text decoded from UTF-8. Parsed back from bytes, so 8-bit parts are decoded with
    # their declared charset (from a str, the parser turns every non-ASCII byte of an 8-bit part into U+FFFD).
    data = (raw.get("raw_data") or "").encode("utf-8", "surrogateescape")
    msg = email.message_from_bytes(data, policy=policy.default)
    try:
        date = parsedate_to_datetime(msg["Date"]) if msg["Date"] else None
    except (TypeError, ValueError):
        date = None
    destinations = raw.get("destinations") or []
    return LocalMail(
        message_id=str(raw.get("id") or ""),
        sender=str(msg["From"] or raw.get("source") or ""),
        to=str(msg["To"] or ", ".join(map(str, destinations))),
        subject=str(msg["Subject"] or ""),
        date=date,
        headers=[(name, str(value)) for name, value in msg.items()],
        text=_body(msg, "text/plain"),
        html=_body(msg, "text/html"),
    )


def local_mail(endpoint: str | None = None) -> list[LocalMail]:
    """Every message the local SES accepted, newest first."""
    endpoint = endpoint or settings.AWS_ENDPOINT_URL
    if not endpoint:
        raise LocalSESUnavailable("AWS_ENDPOINT_URL is not set: there is no local SES to read (run `make run`).")
    try:
        # The standard library, not requests: the web zip ships only requirements.txt, and this module is imported
        # with the URLs in production too (where the view is a 404 and never fetches).
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/moto-api/data.json", timeout=FETCH_SECONDS) as reply:
            raw = json.load(reply).get("ses", {}).get("RawMessage", [])
    except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
        raise LocalSESUnavailable(f"The local AWS at {endpoint} did not answer: {exc}") from exc
    # moto lists them in the order they were accepted.
    return [parse(item) for item in reversed(raw) if isinstance(item, dict)]


def mail_page(request: HttpRequest) -> HttpResponse:
    if not (settings.DEBUG and request.user.is_authenticated and request.user.is_staff):
        raise Http404  # not 403: nobody but local staff learns the page exists
    context: dict[str, Any] = {"endpoint": settings.AWS_ENDPOINT_URL}
    try:
        context["mails"] = local_mail()
    except LocalSESUnavailable as exc:
        context["error"] = str(exc)
    return render(request, "mail/devmail.html", context)
