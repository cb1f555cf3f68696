"""Email addresses of accounts: asked for at sign-up or on the profile, used only once confirmed.

An address typed by a user goes to ``Profile.pending_email`` and a signed link is mailed to it (``send_mail``, so the
configured ``EMAIL_BACKEND`` delivers it). The link carries the user, the pending address and ``Profile.email_nonce``,
signed with a salt for this purpose only and valid ``EMAIL_CONFIRM_MAX_AGE`` seconds; following it (a POST from the
page the link opens: mail scanners that fetch links do not confirm anything) makes it ``user.email``. The nonce is
bumped when a link is mailed and when one is used, so a used link and every older one are refused.

A confirmed address is unique across accounts, compared in lower case (``Profile.email_key``). Asking for an address
another account has confirmed says nothing on the page (no account enumeration): the mail to that address tells its
owner instead.

Changing or adding an address asks for the password (views), and once a new one replaces a confirmed address, the
old one is told, with a signed link that puts it back for ``EMAIL_UNDO_MAX_AGE`` seconds (``email_undo``): a session
someone else holds cannot move the address, reset the password through it and leave the owner none the wiser. A
further change within that time is told to the same first address, and its link still restores it, so changing
twice does not shut the owner out. Undoing also makes the password unusable, which ends every session, and leads
straight to choosing a new one.

Every link in these mails is on ``SITE_URL`` (``core.links``), never on the request's ``Host``.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from boardsite.accounts.models import Profile
from boardsite.core.errors import Invalid
from boardsite.core.links import site_link
from boardsite.notifications.models import Suppression

log = logging.getLogger(__name__)

_SALT = "boardsite.accounts.emails.confirm"
_UNDO_SALT = "boardsite.accounts.emails.undo"
# A link older than this is refused (the user asks for a new one on the profile page).
EMAIL_CONFIRM_MAX_AGE = getattr(settings, "EMAIL_CONFIRM_MAX_AGE", 3 * 24 * 3600)
# How long the old address can take the account's address back after a change.
EMAIL_UNDO_MAX_AGE = getattr(settings, "EMAIL_UNDO_MAX_AGE", 7 * 24 * 3600)

EXPIRED = "This confirmation link has expired. Ask for a new one on your profile page."
INVALID = "This confirmation link is not valid: it was used already, a newer one was sent, or it was altered."
TAKEN = "This address already belongs to another account, so it was not added to this one."
NOT_SENT = "We could not send mail to this address just now. Please try again in a few minutes."
UNDO_INVALID = (
    "This link can no longer restore the address: it was used already, it has expired, or it was altered. If someone "
    "else has your account, write to the operators of this site."
)
UNDO_TAKEN = "That address now belongs to another account, so it cannot be put back on this one."


def email_key(address: str) -> str:
    """The form two addresses are compared by."""
    return address.strip().lower()


def clean_address(address: str) -> str:
    """The address as typed, trimmed, an international domain in its ASCII (xn--) form; ValidationError if it is not
    an email address or the mail job could not mail it. The second check is the job's own
    (``send_email.address_problem``): one rule, so no form accepts an address the mail path would then refuse
    without anyone being told."""
    from offload.functions.send_email import address_problem  # only where an address is typed

    address = ascii_domain(address.strip())
    validate_email(address)
    if len(address) > 254:
        raise ValidationError("An email address has at most 254 characters.")
    if problem := address_problem(address):
        raise ValidationError(f"This address cannot receive mail: {problem}.")
    return address


def ascii_domain(address: str) -> str:
    """``carol@bücher.example`` → ``carol@xn--bcher-kva.example`` (SES takes ASCII only). A domain label holding
    anything but letters, digits and hyphens (an invisible character, a full stop of another script) is left as it
    is, for the checks to refuse: IDNA would quietly drop or map it to another domain."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    labels = domain.split(".")
    if not all(label and all(ch.isalnum() or ch == "-" for ch in label) for label in labels):
        return address
    try:
        return f"{local}@{'.'.join(label.encode('idna').decode('ascii') for label in labels)}"
    except UnicodeError:
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


def email_request(*, user: AbstractBaseUser, address: str) -> Profile:
    """Record ``address`` as the user's pending address and mail it a confirmation link (or, if another account has
    confirmed it, a note to its owner). ValidationError for a malformed address; Invalid(NOT_SENT) when the mail
    could not be handed on (the caller's transaction then undoes the request)."""
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
        context["link"] = site_link(reverse("email-confirm", args=[make_token(profile)]))
    if suppression_of(address):
        log.info("not mailing a confirmation link to a suppressed address (user %s)", user.pk)
        return profile
    body = render_to_string("accounts/email_confirm_mail.txt", context)
    subject = "Your boardsite address" if taken else "Confirm your email address for boardsite"
    _send(subject, body, address, what="a confirmation link", user=user)
    return profile


def _send(subject: str, body: str, address: str, *, what: str, user: AbstractBaseUser) -> None:
    try:
        send_mail(subject, body, None, [address])
    except Exception:
        log.exception("could not hand %s for user %s to the mail job", what, user.pk)
        raise Invalid(NOT_SENT) from None


def email_confirm(*, token: str) -> AbstractBaseUser:
    """Make the link's pending address the user's address. Invalid if expired, altered, used or superseded, or if
    another account confirmed that address meanwhile. When it replaces a confirmed address, that address is told and
    may take the account back for ``EMAIL_UNDO_MAX_AGE`` (``email_undo``); a further change within that time is told
    to the same first address, whose link keeps working."""
    payload = read_token(token)
    now = timezone.now()
    try:
        with transaction.atomic():
            profile = Profile.objects.select_for_update().select_related("user").filter(user_id=payload["u"]).first()
            if profile is None or profile.email_nonce != payload["n"] or profile.pending_email != payload["e"]:
                raise Invalid(INVALID)
            if Profile.objects.filter(email_key=email_key(payload["e"])).exclude(pk=profile.pk).exists():
                raise Invalid(TAKEN)
            user = profile.user
            old = user.email if user.email and profile.email_key == email_key(user.email) else None
            user.email = payload["e"]
            user.save(update_fields=["email"])
            profile.email_key = email_key(payload["e"])
            profile.email_confirmed_at = now
            profile.pending_email = ""
            profile.email_nonce += 1  # this link, used, is refused from now on
            fields = ["email_key", "email_confirmed_at", "pending_email", "email_nonce"]
            if old and email_key(old) != email_key(payload["e"]) and not _undo_open(profile, now):
                profile.undo_email, profile.undo_until = old, now + timedelta(seconds=EMAIL_UNDO_MAX_AGE)
                profile.undo_ref = secrets.token_urlsafe(16)
                fields += ["undo_email", "undo_until", "undo_ref"]
            profile.save(update_fields=fields)
    except IntegrityError:  # another account confirmed the same address at the same moment
        raise Invalid(TAKEN) from None
    if old and email_key(old) != email_key(payload["e"]) and _undo_open(profile, now):
        _mail_change_notice(user, profile, new=payload["e"])
    return user


def _undo_open(profile: Profile, now: datetime) -> bool:
    return bool(profile.undo_ref and profile.undo_until and profile.undo_until > now)


def _mail_change_notice(user: AbstractBaseUser, profile: Profile, *, new: str) -> None:
    """Tell the address that may undo (the first one replaced in the window), with its link. Best effort: the change
    is made and confirmed. The link names no address: only the account and a random reference."""
    if suppression_of(profile.undo_email):
        return
    token = signing.TimestampSigner(salt=_UNDO_SALT).sign_object({"u": user.pk, "r": profile.undo_ref})
    days = max(1, round((profile.undo_until - timezone.now()).total_seconds() / 86400))
    context = {"user": user, "new": masked(new), "link": site_link(reverse("email-undo", args=[token])), "days": days}
    body = render_to_string("accounts/email_changed_mail.txt", context)
    try:
        _send(
            "Your boardsite address was changed", body, profile.undo_email, what="an address-change notice", user=user
        )
    except Invalid:
        pass  # logged; the owner still has the profile page


def masked(address: str) -> str:
    """``a***@example.org``: enough for the owner to recognise, not the whole new address for whoever reads the old
    mailbox."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def _undo_payload(token: str) -> dict:
    try:
        payload = signing.TimestampSigner(salt=_UNDO_SALT).unsign_object(token)
    except signing.BadSignature:
        raise Invalid(UNDO_INVALID) from None
    if not isinstance(payload, dict) or not {"u", "r"} <= payload.keys():
        raise Invalid(UNDO_INVALID)
    return payload


def _undo_usable(profile: Profile | None, ref: object) -> bool:
    # The link's own lifetime is the window's: undo_until decides.
    return (
        profile is not None
        and _undo_open(profile, timezone.now())
        and secrets.compare_digest(str(ref), profile.undo_ref)
    )


def read_undo_token(token: str) -> Profile:
    """The profile an undo link may still restore; Invalid(UNDO_INVALID) otherwise."""
    payload = _undo_payload(token)
    profile = Profile.objects.filter(user_id=payload["u"]).select_related("user").first()
    if not _undo_usable(profile, payload["r"]):
        raise Invalid(UNDO_INVALID)
    return profile


def email_undo(*, token: str) -> str:
    """Put the first replaced address back (confirmed), make the password unusable (which ends every session) and
    return the path of the page where the owner chooses a new one. Invalid when the link cannot be used."""
    payload = _undo_payload(token)
    try:
        with transaction.atomic():
            profile = Profile.objects.select_for_update().select_related("user").filter(user_id=payload["u"]).first()
            if not _undo_usable(profile, payload["r"]):
                raise Invalid(UNDO_INVALID)
            user, old = profile.user, profile.undo_email
            if Profile.objects.filter(email_key=email_key(old)).exclude(pk=profile.pk).exists():
                raise Invalid(UNDO_TAKEN)
            user.email = old
            user.set_unusable_password()
            user.save(update_fields=["email", "password"])
            profile.email_key = email_key(old)
            profile.email_confirmed_at = timezone.now()
            profile.pending_email = ""
            profile.email_nonce += 1  # every confirmation link still out there is refused too
            profile.undo_email, profile.undo_until, profile.undo_ref = "", None, ""  # used: refused from now on
            fields = ["email_key", "email_confirmed_at", "pending_email", "email_nonce"]
            profile.save(update_fields=[*fields, "undo_email", "undo_until", "undo_ref"])
    except IntegrityError:
        raise Invalid(UNDO_TAKEN) from None
    log.warning("user %s took their address back after a change they did not make", user.pk)
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("password-reset-confirm", args=[uid, default_token_generator.make_token(user)])


def password_changed_notice(user: AbstractBaseUser) -> None:
    """Tell the confirmed address that the password was changed (best effort)."""
    address = confirmed_email(user)
    if not address or suppression_of(address):
        return
    context = {"user": user, "reset": site_link(reverse("password-reset"))}
    body = render_to_string("accounts/password_changed_mail.txt", context)
    try:
        _send("Your boardsite password was changed", body, address, what="a password-change notice", user=user)
    except Invalid:
        pass
