"""Log-in by canonical name: ``CONTRIB1``, ``Contrib1`` and a fullwidth ``CONTRIB1`` all find ``contrib1``'s account."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest

from boardsite.accounts.models import FormerUsername
from boardsite.accounts.signals import FORMER_NAME_ATTRIBUTE
from boardsite.accounts.usernames import canonical_username, user_find


class UsernameKeyBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> AbstractBaseUser | None:
        User = get_user_model()
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None:
            return None
        # The name's holder first; then people whose look-alike name was changed (migration 0003), with their own
        # password: each can still log in with the name they knew.
        holder = user_find(name=username)
        candidates: list[tuple[AbstractBaseUser, str | None]] = [(holder, None)] if holder else []
        formers = FormerUsername.objects.filter(key=canonical_username(username.strip())).select_related("user")
        candidates += [
            (f.user, f.name) for f in formers.order_by("renamed_at", "pk") if f.user_id != (holder and holder.pk)
        ]
        if not candidates:
            User().set_password(password)  # as ModelBackend: take as long as for a real account
            return None
        for user, former_name in candidates:
            if user.check_password(password) and self.user_can_authenticate(user):
                if former_name is not None:
                    setattr(user, FORMER_NAME_ATTRIBUTE, former_name)
                return user
        return None
