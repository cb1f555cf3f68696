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
someone else holds cannot move the address, reset the password through it and leave the owner none the wiser. Every
replaced address keeps that right for its own days, and each later change is told to all of them: neither a second
change nor an intruder's use of a later link shuts an earlier address out (using a link ends its own right and every
later one). Undoing also makes the password unusable, which ends every session, and leads straight to choosing a
new one.

Every link in these mails is on ``SITE_URL`` (``core.links``), never on the request's ``Host``.
"""

from __future__ import annotations

import logging
import secrets
import unicodedata
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from boardsite.accounts.models import AddressUndo, Profile
from boardsite.core.errors import Invalid
from boardsite.core.links import site_link
from boardsite.mail.models import Suppression
from boardsite.mail.services import suppression_get

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
    """The address as typed, normalised (``normalize_address``); ValidationError if it is not an email address or
    the mail job could not mail it. The second check is the job's own (``offload.mailformat.address_problem``): one
    rule, so no form accepts an address the mail path would then refuse without anyone being told."""
    from offload.mailformat import address_problem  # only where an address is typed

    address = normalize_address(address)
    validate_email(address)
    if len(address) > 254:
        raise ValidationError("An email address has at most 254 characters.")
    if problem := domain_problem(address) or address_problem(address):
        raise ValidationError(f"This address cannot receive mail: {problem}.")
    return address


_OTHER_FULL_STOPS = "\u3002\uff0e\uff61"  # IDNA would read these as "." and so name another domain than typed


def normalize_address(address: str) -> str:
    """Trimmed, in Unicode's composed form, an international domain in its ASCII form by IDNA 2008 as registries
    and browsers have it (``straße.de`` is ``xn--strae-oqa.de``, never ``strasse.de``, which another may own), with
    no mapping: a domain holding anything IDNA 2008 does not allow (an invisible character, a soft hyphen, a
    full-width letter, a full stop of another script, each of which a mapping would quietly drop or turn into another
    domain) is left as typed, for ``domain_problem`` to refuse. Every form that takes an address uses this, the
    password reset's too."""
    import idna  # only where an address is typed

    address = unicodedata.normalize("NFC", address.strip())
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii() or any(dot in domain for dot in _OTHER_FULL_STOPS):
        return address
    try:
        return f"{local}@{idna.encode(_lower(domain)).decode('ascii')}"
    except idna.IDNAError:
        return address


def _lower(text: str) -> str:
    # Character by character: str.lower() writes a capital Σ before a digit or hyphen as the final ς, another name.
    return "".join(ch.lower() for ch in text)


def domain_problem(address: str) -> str | None:
    """Why the domain of a normalised address is no name a registry could hold, naming what is wrong: a character
    IDNA 2008 refuses, a full stop of another script, or an ``xn--`` label that decodes to nothing valid."""
    import idna

    domain = address.rpartition("@")[2]
    for dot in _OTHER_FULL_STOPS:
        if dot in domain:
            return f"its domain has U+{ord(dot):04X}, a full stop of another script: type “.”"
    try:
        if not domain.isascii():
            idna.encode(_lower(domain))
        elif "xn--" in domain.lower():
            idna.decode(domain)
    except idna.IDNAError as exc:
        if not domain.isascii():
            return f"its domain is no international name ({exc})"
        return "its domain has an xn-- part that is not a valid international name"
    return None


def suppression_of(address: str | None) -> Suppression | None:
    """Why SES told us to stop mailing ``address`` (a permanent bounce or a complaint), or None.

    Mail to a suppressed address is skipped quietly, whatever it is (confirmation, password reset, notification):
    the pages answer as if it went, so they reveal nothing about the address; its owner sees why on the profile."""
    return suppression_get(address=address)


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
    another account confirmed that address meanwhile. When it replaces a confirmed address, that address gets the
    right to take the account back for ``EMAIL_UNDO_MAX_AGE`` (an ``AddressUndo``), and it and every address that
    still holds such a right are told, each with its own link (``email_undo``)."""
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
            profile.save(update_fields=["email_key", "email_confirmed_at", "pending_email", "email_nonce"])
            if old and email_key(old) != email_key(payload["e"]):
                AddressUndo.objects.create(
                    user=user,
                    address=old,
                    ref=secrets.token_urlsafe(16),
                    expires_at=now + timedelta(seconds=EMAIL_UNDO_MAX_AGE),
                )
    except IntegrityError:  # another account confirmed the same address at the same moment
        raise Invalid(TAKEN) from None
    if old and email_key(old) != email_key(payload["e"]):
        told = set()
        for undo in _open_undos(user).order_by("-created_at"):
            if email_key(undo.address) not in told:
                told.add(email_key(undo.address))
                _mail_change_notice(user, undo, new=payload["e"])
    return user


def _open_undos(user: AbstractBaseUser) -> QuerySet[AddressUndo]:
    return AddressUndo.objects.filter(user=user, used_at__isnull=True, expires_at__gt=timezone.now())


def _mail_change_notice(user: AbstractBaseUser, undo: AddressUndo, *, new: str) -> None:
    """Tell an address that may take the account back, with its link. Best effort: the change is made and
    confirmed. The link names no address: only the account and a random reference."""
    if suppression_of(undo.address):
        return
    token = signing.TimestampSigner(salt=_UNDO_SALT).sign_object({"u": user.pk, "r": undo.ref})
    context = {"user": user, "new": masked(new), "link": site_link(reverse("email-undo", args=[token]))}
    context["until"] = undo.expires_at
    body = render_to_string("accounts/email_changed_mail.txt", context)
    try:
        subject, what = "Your boardsite address was changed", "an address-change notice"
        _send(subject, body, undo.address, what=what, user=user)
    except Invalid:
        pass  # logged; the owner still has the profile page


def _mail_taken_back_notice(user: AbstractBaseUser, address: str, *, restored: str) -> None:
    """Tell ``address`` that an undo link put ``restored`` back on the account (best effort)."""
    if suppression_of(address):
        return
    body = render_to_string("accounts/email_taken_back_mail.txt", {"user": user, "restored": masked(restored)})
    try:
        _send("Your boardsite account's address was put back", body, address, what="a taken-back notice", user=user)
    except Invalid:
        pass


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
    if not isinstance(payload, dict) or not {"u", "r"} <= payload.keys() or not isinstance(payload["r"], str):
        raise Invalid(UNDO_INVALID)
    return payload


def read_undo_token(token: str) -> AddressUndo:
    """The right an undo link carries, if it can still be used (its own lifetime is ``expires_at``);
    Invalid(UNDO_INVALID) otherwise."""
    payload = _undo_payload(token)
    undo = _open_undos(payload["u"]).select_related("user").filter(ref=payload["r"]).first()
    if undo is None:
        raise Invalid(UNDO_INVALID)
    return undo


def email_undo(*, token: str) -> str:
    """Put the link's address back (confirmed), end its right and every later one (an earlier address keeps its
    own), make the password unusable (which ends every session) and return the path of the page where the owner
    chooses a new one. Invalid when the link cannot be used."""
    payload = _undo_payload(token)
    now = timezone.now()
    try:
        with transaction.atomic():
            profile = Profile.objects.select_for_update().select_related("user").filter(user_id=payload["u"]).first()
            undo = _open_undos(payload["u"]).filter(ref=payload["r"]).first() if profile else None
            if undo is None:
                raise Invalid(UNDO_INVALID)
            if Profile.objects.filter(email_key=email_key(undo.address)).exclude(pk=profile.pk).exists():
                raise Invalid(UNDO_TAKEN)
            user = profile.user
            replaced = user.email if user.email and profile.email_key == email_key(user.email) else None
            user.email = undo.address
            user.set_unusable_password()
            user.save(update_fields=["email", "password"])
            profile.email_key = email_key(undo.address)
            profile.email_confirmed_at = now
            profile.pending_email = ""
            profile.email_nonce += 1  # every confirmation link still out there is refused too
            profile.save(update_fields=["email_key", "email_confirmed_at", "pending_email", "email_nonce"])
            _open_undos(user).filter(created_at__gte=undo.created_at).update(used_at=now)
    except IntegrityError:
        raise Invalid(UNDO_TAKEN) from None
    log.warning("user %s: an undo link put a replaced address back and ended every session", user.pk)
    # Nobody loses the account silently: the address pushed out, and every one still holding a right, are told.
    told = {email_key(undo.address)}
    others = [a for a in [replaced, *(u.address for u in _open_undos(user))] if a]
    for address in others:
        if email_key(address) not in told:
            told.add(email_key(address))
            _mail_taken_back_notice(user, address, restored=undo.address)
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


def email_set_confirmed(*, user: AbstractBaseUser, address: str) -> None:
    """Make ``address`` the user's confirmed address without a confirmation mail: for callers that hold proof of the
    mailbox already (a new account made through an invitation link mailed to that address). Invalid(TAKEN) if another
    account has confirmed it (the caller's transaction then undoes what it made)."""
    address = clean_address(address)
    try:
        with transaction.atomic():
            if Profile.objects.filter(email_key=email_key(address)).exclude(user=user).exists():
                raise Invalid(TAKEN)
            profile, _ = Profile.objects.select_for_update().get_or_create(user=user)
            user.email = address
            user.save(update_fields=["email"])
            profile.email_key = email_key(address)
            profile.email_confirmed_at = timezone.now()
            profile.pending_email = ""
            profile.email_nonce += 1  # any confirmation link out there for another address is refused
            profile.save(update_fields=["email_key", "email_confirmed_at", "pending_email", "email_nonce"])
    except IntegrityError:  # confirmed by another account at the same moment
        raise Invalid(TAKEN) from None
