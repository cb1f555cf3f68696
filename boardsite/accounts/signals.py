"""Keep each user's ``UsernameKey`` in step with their name, whatever path saves the user (our sign-up,
``create_user``, ``createsuperuser``, the ``demo`` command, the admin); tell people who log in with a former name."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest

from boardsite.accounts.emails import confirmed_email
from boardsite.accounts.models import Profile, UsernameKey
from boardsite.accounts.usernames import (
    UsernameRefused,
    UsernameTaken,
    canonical_username,
    username_error,
    username_skeleton,
)

FORMER_NAME_ATTRIBUTE = "_boardsite_former_name"  # set by the backend on a user that logged in with a former name


def _updates_username(kwargs: dict[str, Any]) -> bool:
    update_fields = kwargs.get("update_fields")
    return update_fields is None or "username" in update_fields


def check_username_key(sender: type, instance: AbstractBaseUser, **kwargs: Any) -> None:
    """pre_save: refuse a new name with invisible characters or a confusable mix of scripts, and a name that compares
    equal to another account's or looks the same, before anything is written."""
    if not _updates_username(kwargs):
        return  # e.g. last_login on every log-in
    name = instance.get_username()
    stored = sender.objects.filter(pk=instance.pk).values_list(sender.USERNAME_FIELD, flat=True).first()
    if name != stored and (error := username_error(name)):
        raise UsernameRefused(error)
    same = Q(key=canonical_username(name)) | Q(skeleton=username_skeleton(name))
    if UsernameKey.objects.filter(same).exclude(user_id=instance.pk).exists():
        raise UsernameTaken(name)


def sync_username_key(sender: type, instance: AbstractBaseUser, created: bool, **kwargs: Any) -> None:
    """post_save: write the keys; their unique constraints are the final judge when look-alikes are saved at once."""
    if not created and not _updates_username(kwargs):
        return
    name = instance.get_username()
    keys = {"key": canonical_username(name), "skeleton": username_skeleton(name)}
    try:
        with transaction.atomic():
            UsernameKey.objects.update_or_create(user=instance, defaults=keys)
    except IntegrityError:
        if created:
            # In autocommit (createsuperuser) the user row is already committed: take it back, never keyless.
            instance.delete()
        raise UsernameTaken(instance.get_username()) from None


def tell_former_name(sender: type, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any) -> None:
    """user_logged_in: someone who logged in with a name that was changed learns their username."""
    former = getattr(user, FORMER_NAME_ATTRIBUTE, None)
    if former is None or request is None:
        return
    messages.info(
        request,
        f"Your username is now “{user.get_username()}”. “{former}” looked the same as the name of an account made "
        "before yours, so it was changed; your boards and photos are unchanged. Log in with the new name from now on.",
        fail_silently=True,
    )


def prompt_for_email(sender: type, request: HttpRequest | None, user: AbstractBaseUser, **kwargs: Any) -> None:
    """user_logged_in: someone without a confirmed address (accounts from before addresses were asked) is asked to
    add one; the log-in itself goes on as always."""
    if request is None or confirmed_email(user) or Profile.objects.filter(user=user).exclude(pending_email="").exists():
        return
    messages.info(
        request,
        "Add an email address on your profile: without one you cannot reset a forgotten password or get notifications.",
        fail_silently=True,  # a request without the messages middleware (force_login) still logs in
    )
