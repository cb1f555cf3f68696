from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from boardsite.accounts.models import Profile
from boardsite.core.errors import Invalid


@transaction.atomic
def user_signup(*, username: str, password: str, display_name: str = "") -> AbstractBaseUser:
    User = get_user_model()
    username = username.strip()
    if User.objects.filter(username__iexact=username).exists():
        raise Invalid("That username is taken.")
    user = User(username=username)
    user.full_clean(exclude=["password"])
    validate_password(password, user)
    user.set_password(password)
    user.save()
    Profile.objects.create(user=user, display_name=display_name.strip())
    return user


def profile_get(*, user: AbstractBaseUser) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


@transaction.atomic
def profile_update(*, user: AbstractBaseUser, display_name: str, bio: str) -> Profile:
    profile = profile_get(user=user)
    profile.display_name = display_name.strip()
    profile.bio = bio.strip()
    profile.full_clean()
    profile.save()
    return profile
