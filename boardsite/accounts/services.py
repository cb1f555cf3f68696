from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.db import IntegrityError, transaction

from boardsite.accounts.models import Profile, UsernameKey
from boardsite.accounts.usernames import (
    LOOKS_TAKEN,
    TAKEN,
    UsernameRefused,
    UsernameTaken,
    canonical_username,
    username_error,
    username_skeleton,
)
from boardsite.core.errors import Invalid, validated


def _name_taken(username: str) -> str | None:
    """The sentence refusing ``username`` because another account has it or a name that looks the same, or None."""
    User = get_user_model()
    if (
        UsernameKey.objects.filter(key=canonical_username(username)).exists()
        or User.objects.filter(username=username).exists()
    ):
        return TAKEN
    if UsernameKey.objects.filter(skeleton=username_skeleton(username)).exists():
        return LOOKS_TAKEN
    return None


def user_signup(*, username: str, password: str, display_name: str = "") -> AbstractBaseUser:
    """A new account. Invalid("That username is taken…") for a name equal to another's once canonical or that looks
    the same (also when two people sign up with look-alikes at once: the keys' unique constraints decide); Invalid
    for a name with invisible characters or a confusable mix of scripts; ValidationError (by field) for a malformed
    name, a weak password or a display name with hidden characters."""
    User = get_user_model()
    typed = username.strip()
    if error := username_error(typed):  # the sentence names the character typed, not its NFKC form
        raise Invalid(error)
    username = User.normalize_username(typed)
    if taken := _name_taken(username):
        raise Invalid(taken)
    try:
        with transaction.atomic():
            user = User(username=username)
            user.full_clean(exclude=["password"])
            validate_password(password, user)
            profile = Profile(display_name=display_name.strip())
            profile.full_clean(exclude=["user"])
            user.set_password(password)
            user.save()  # the key is written here (accounts.signals)
            profile.user = user
            profile.save()
    except UsernameTaken:
        raise Invalid(_name_taken(username) or TAKEN) from None
    except UsernameRefused as exc:
        raise Invalid(exc.message_dict["username"][0]) from None
    except IntegrityError:
        if taken := _name_taken(username):
            raise Invalid(taken) from None
        raise
    return user


def profile_get(*, user: AbstractBaseUser) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


@transaction.atomic
def profile_update(*, user: AbstractBaseUser, display_name: str, bio: str) -> Profile:
    profile = profile_get(user=user)
    profile.display_name = display_name.strip()
    profile.bio = bio.strip()
    validated(profile)
    profile.save()
    return profile
