from __future__ import annotations

from collections.abc import Iterator

from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.auth.models import AbstractBaseUser

from boardsite.accounts.emails import suppression_of, users_with_confirmed_email


class LoginForm(AuthenticationForm):
    # Django's sentence says both fields may be case-sensitive; usernames are not here (accounts.usernames).
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": (
            "That username and password do not match an account. Usernames are not case-sensitive; passwords are."
        ),
    }


class PasswordResetByConfirmedEmailForm(PasswordResetForm):
    """Django's reset form, but only to a confirmed address (``accounts.emails``): an address someone typed and never
    confirmed must not be able to take the account over. Nothing to an address SES reported bouncing or complaining
    (the same "sent" page either way)."""

    def get_users(self, email: str) -> Iterator[AbstractBaseUser]:
        if suppression_of(email):
            return
        for user in users_with_confirmed_email(email):
            if user.has_usable_password():
                yield user
