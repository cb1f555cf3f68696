from __future__ import annotations

from collections.abc import Iterator

from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.auth.models import AbstractBaseUser
from django.urls import reverse

from boardsite.accounts.emails import suppression_of, users_with_confirmed_email
from boardsite.core.links import site_link


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
        # Unusable passwords included: here only an address taken back after a change someone else made leaves one
        # (``emails.email_undo``), and its owner must be able to choose a new password by mail.
        if suppression_of(email):
            return
        yield from users_with_confirmed_email(email)

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict,
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        # The link on SITE_URL, never on the Host the request named (Django's own uses the request's domain).
        context["reset_url"] = site_link(
            reverse("password-reset-confirm", kwargs={"uidb64": context["uid"], "token": context["token"]})
        )
        super().send_mail(
            subject_template_name, email_template_name, context, from_email, to_email, html_email_template_name
        )
