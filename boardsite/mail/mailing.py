"""Building a mail for Django's mail (``EMAIL_BACKEND``: the mail job) from a pair of templates.

Every rendered mail the site sends is built here, so each carries the same things: a text and an HTML part rendered
from ``<template>.txt`` / ``.html``, a stable message key (a retried run sends one mail: the mail job is idempotent by
it) and, when the caller gives one, a one-click unsubscribe link in the ``List-Unsubscribe`` / ``List-Unsubscribe-Post``
headers (RFC 8058). What the link unsubscribes from is the caller's business (``notifications.mailing``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from boardsite.core.links import site_link
from boardsite.mail.backends import MESSAGE_KEY_HEADER


def absolute(path: str) -> str:
    """A link for a mail: the site's public address (``SITE_URL``) and ``path``."""
    return site_link(path)


def build_mail(
    *,
    address: str,
    subject: str,
    template: str,
    context: dict[str, Any],
    message_key: str,
    unsubscribe_url: str | None = None,
) -> EmailMultiAlternatives:
    """The mail to ``address`` rendered from ``template`` (a path without its extension); ``message_key`` must be
    stable across retries."""
    context = {**context, "site_url": settings.SITE_URL.rstrip("/")}
    text = render_to_string(f"{template}.txt", context)
    html = render_to_string(f"{template}.html", context)
    headers = {MESSAGE_KEY_HEADER: message_key}
    if unsubscribe_url:
        headers = {
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            **headers,
        }
    mail = EmailMultiAlternatives(subject=subject, body=text, to=[address], headers=headers)
    mail.attach_alternative(html, "text/html")
    return mail
