from __future__ import annotations

from collections.abc import Iterator

from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.urls import reverse

from boardsite.accounts.emails import normalize_address, suppression_of, users_with_confirmed_email
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

    def clean_email(self) -> str:
        # As sign-up and the profile keep it (bücher.example as xn--bcher-kva.example), never refused here: the
        # answer is the same for any address.
        return normalize_address(self.cleaned_data["email"])

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


class StalePassword(Exception):
    """The account changed between the request's start and the new password's save (an address put back, the
    password changed in another browser): saving would write back what the request read."""


class _SavesOnlyThePassword:
    """Saves the new password alone (not the whole user as read when the request began: an address put back
    meanwhile would be written over), and only if the stored password is still the one the request checked."""

    def set_password_and_save(
        self, user: AbstractBaseUser, password_field_name: str = "new_password1", commit: bool = True
    ) -> AbstractBaseUser:
        with transaction.atomic():
            stored = get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("password", flat=True)
            if stored.first() != user.password:
                raise StalePassword
            user.set_password(self.cleaned_data[password_field_name])
            if commit:
                user.save(update_fields=["password"])
        return user


class PasswordChangeForm(_SavesOnlyThePassword, auth_forms.PasswordChangeForm):
    pass


class SetPasswordForm(_SavesOnlyThePassword, auth_forms.SetPasswordForm):
    pass
