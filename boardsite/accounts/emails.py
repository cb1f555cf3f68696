"""Email addresses of accounts: asked for at sign-up or on the profile, used only once confirmed.

An address typed by a user goes to ``Profile.pending_email`` and a signed link is mailed to it (``send_mail``, so the
configured ``EMAIL_BACKEND`` delivers it). The link carries the user, the pending address and ``Profile.email_nonce``,
signed with a salt for this purpose only and valid ``EMAIL_CONFIRM_MAX_AGE`` seconds; following it (a POST from the
page the link opens: mail scanners that fetch links do not confirm anything) makes it ``user.email``. The nonce is
bumped when a link is mailed and when one is used, so a used link and every older one are refused.

A confirmed address is unique across accounts, compared in lower case (``Profile.email_key``). Asking for an address
another account has confirmed says nothing on the page (no account enumeration): the mail to that address tells its
owner instead.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from boardsite.accounts.models import Profile
from boardsite.core.errors import Invalid
from boardsite.notifications.models import Suppression

log = logging.getLogger(__name__)

_SALT = "boardsite.accounts.emails.confirm"
# A link older than this is refused (the user asks for a new one on the profile page).
EMAIL_CONFIRM_MAX_AGE = getattr(settings, "EMAIL_CONFIRM_MAX_AGE", 3 * 24 * 3600)

EXPIRED = "This confirmation link has expired. Ask for a new one on your profile page."
INVALID = "This confirmation link is not valid: it was used already, a newer one was sent, or it was altered."
TAKEN = "This address already belongs to another account, so it was not added to this one."


def email_key(address: str) -> str:
    """The form two addresses are compared by."""
    return address.strip().lower()


def clean_address(address: str) -> str:
    """The address as typed, trimmed; ValidationError if it is not an email address."""
    address = address.strip()
    validate_email(address)
    if "=?" in address:
        # Valid by the letter of RFC 5322, but an encoded word in an address is how headers are smuggled into mail.
        raise ValidationError("This address cannot be used for mail: it contains “=?”.")
    if len(address) > 254:
        raise ValidationError("An email address has at most 254 characters.")
    return address


def suppression_of(address: str | None) -> Suppression | None:
    """Why SES told us to stop mailing ``address`` (a permanent bounce or a complaint), or None.

    Mail to a suppressed address is skipped quietly, whatever it is (confirmation, password reset, notification):
    the pages answer as if it went, so they reveal nothing about the address; its owner sees why on the profile."""
    if not address:
        return None
    return Suppression.objects.filter(address_key=email_key(address)).first()


def confirmed_email(user: AbstractBaseUser) -> str | None:
    """The user's confirmed address, or None (no address, or one set without confirmation, e.g. in the admin)."""
    address = getattr(user, "email", "") or ""
    profile = Profile.objects.filter(user=user).only("email_key").first()
    if not address or profile is None or profile.email_key != email_key(address):
        return None
    return address


def users_with_confirmed_email(address: str) -> list[AbstractBaseUser]:
    """Active accounts whose confirmed address is ``address`` (at most one)."""
    key = email_key(address)
    users = get_user_model().objects.filter(profile__email_key=key, is_active=True)
    return [u for u in users if email_key(u.email or "") == key]


def make_token(profile: Profile) -> str:
    payload = {"u": profile.user_id, "e": profile.pending_email, "n": profile.email_nonce}
    return signing.TimestampSigner(salt=_SALT).sign_object(payload, compress=True)


def read_token(token: str) -> dict:
    """The link's payload; Invalid(EXPIRED) or Invalid(INVALID)."""
    try:
        payload = signing.TimestampSigner(salt=_SALT).unsign_object(token, max_age=EMAIL_CONFIRM_MAX_AGE)
    except signing.SignatureExpired:
        raise Invalid(EXPIRED) from None
    except signing.BadSignature:
        raise Invalid(INVALID) from None
    if not isinstance(payload, dict) or not {"u", "e", "n"} <= payload.keys():
        raise Invalid(INVALID)
    return payload


def check_token(token: str) -> str:
    """The address a link would confirm, without confirming it; Invalid as ``email_confirm`` would refuse it."""
    payload = read_token(token)
    profile = Profile.objects.filter(user_id=payload["u"]).first()
    if profile is None or profile.email_nonce != payload["n"] or profile.pending_email != payload["e"]:
        raise Invalid(INVALID)
    return payload["e"]


def email_request(*, user: AbstractBaseUser, address: str, request: HttpRequest | None = None) -> Profile:
    """Record ``address`` as the user's pending address and mail it a confirmation link (or, if another account has
    confirmed it, a note to its owner). ValidationError for a malformed address."""
    address = clean_address(address)
    with transaction.atomic():
        profile, _ = Profile.objects.select_for_update().get_or_create(user=user)
        if profile.email_key == email_key(address) and user.email == address:
            profile.pending_email = ""  # asking again for the confirmed address: nothing to confirm
            profile.save(update_fields=["pending_email"])
            return profile
        profile.pending_email = address
        profile.email_nonce += 1
        profile.save(update_fields=["pending_email", "email_nonce"])
    taken = Profile.objects.filter(email_key=email_key(address)).exclude(user=user).exists()
    context = {"user": user, "address": address, "taken": taken, "hours": EMAIL_CONFIRM_MAX_AGE // 3600}
    if not taken:
        context["link"] = _absolute(request, reverse("email-confirm", args=[make_token(profile)]))
    if suppression_of(address):
        log.info("not mailing a confirmation link to a suppressed address (user %s)", user.pk)
        return profile
    body = render_to_string("accounts/email_confirm_mail.txt", context)
    subject = "Your boardsite address" if taken else "Confirm your email address for boardsite"
    send_mail(subject, body, None, [address])
    return profile


def email_confirm(*, token: str) -> AbstractBaseUser:
    """Make the link's pending address the user's address. Invalid if expired, altered, used or superseded, or if
    another account confirmed that address meanwhile."""
    payload = read_token(token)
    try:
        with transaction.atomic():
            profile = Profile.objects.select_for_update().select_related("user").filter(user_id=payload["u"]).first()
            if profile is None or profile.email_nonce != payload["n"] or profile.pending_email != payload["e"]:
                raise Invalid(INVALID)
            if Profile.objects.filter(email_key=email_key(payload["e"])).exclude(pk=profile.pk).exists():
                raise Invalid(TAKEN)
            user = profile.user
            user.email = payload["e"]
            user.save(update_fields=["email"])
            profile.email_key = email_key(payload["e"])
            profile.email_confirmed_at = timezone.now()
            profile.pending_email = ""
            profile.email_nonce += 1  # this link, used, is refused from now on
            profile.save(update_fields=["email_key", "email_confirmed_at", "pending_email", "email_nonce"])
    except IntegrityError:  # another account confirmed the same address at the same moment
        raise Invalid(TAKEN) from None
    return user


def _absolute(request: HttpRequest | None, path: str) -> str:
    if request is not None:
        return request.build_absolute_uri(path)
    base = getattr(settings, "SITE_URL", "") or "http://localhost:8000"
    return base.rstrip("/") + path
