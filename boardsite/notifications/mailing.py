"""Rendering a notification mail and handing it to Django's mail (``EMAIL_BACKEND``: the ``send_email`` job).

Every notification mail is built here, so each carries the same things: a text and an HTML part rendered from
``notifications/mail/<template>.txt`` / ``.html``, a signed one-click unsubscribe link for its kind in the body and in
the ``List-Unsubscribe`` / ``List-Unsubscribe-Post`` headers (RFC 8058), a link to the preferences page, and a stable
message key, so a retried run sends one mail (send_email is idempotent by it).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from boardsite.core.links import site_link
from boardsite.notifications.backends import MESSAGE_KEY_HEADER
from boardsite.notifications.services import unsubscribe_token


def absolute(path: str) -> str:
    """A link for a mail: the site's public address (``SITE_URL``) and ``path``."""
    return site_link(path)


def unsubscribe_url(user: AbstractBaseUser, kind: str) -> str:
    return absolute(reverse("unsubscribe", args=[unsubscribe_token(user, kind)]))


def preferences_url() -> str:
    return absolute(reverse("notification-preferences"))


def build_mail(
    *,
    user: AbstractBaseUser,
    address: str,
    kind: str,
    subject: str,
    template: str,
    context: dict[str, Any],
    message_key: str,
) -> EmailMultiAlternatives:
    """The mail of one notification (or digest) to ``address``; ``message_key`` must be stable across retries."""
    unsubscribe = unsubscribe_url(user, kind)
    context = {
        **context,
        "user": user,
        "kind": kind,
        "unsubscribe_url": unsubscribe,
        "preferences_url": preferences_url(),
        "site_url": settings.SITE_URL.rstrip("/"),
    }
    text = render_to_string(f"notifications/mail/{template}.txt", context)
    html = render_to_string(f"notifications/mail/{template}.html", context)
    mail = EmailMultiAlternatives(
        subject=subject,
        body=text,
        to=[address],
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            MESSAGE_KEY_HEADER: message_key,
        },
    )
    mail.attach_alternative(html, "text/html")
    return mail
