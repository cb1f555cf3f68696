"""A notification mail: ``mail.mailing.build_mail`` with what every notification mail carries besides, a signed
one-click unsubscribe link for its kind (in the body and the headers) and a link to the preferences page, rendered
from ``notifications/mail/<template>.txt`` / ``.html``.

The unsubscribe token and the pages it points to are notifications' own, so this part stays here, above mail.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from boardsite.mail import mailing
from boardsite.mail.mailing import absolute
from boardsite.notifications.services import unsubscribe_token

__all__ = ["absolute", "build_mail", "preferences_url", "unsubscribe_url"]


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
    }
    return mailing.build_mail(
        address=address,
        subject=subject,
        template=f"notifications/mail/{template}",
        context=context,
        message_key=message_key,
        unsubscribe_url=unsubscribe,
    )
