from __future__ import annotations

import logging
import time

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.views.decorators.http import require_POST

from boardsite.accounts import emails, tokens
from boardsite.accounts.forms import (
    LoginForm,
    PasswordChangeForm,
    PasswordResetByConfirmedEmailForm,
    SetPasswordForm,
    StalePassword,
)
from boardsite.accounts.models import Avatar
from boardsite.accounts.services import profile_get, profile_update, user_signup
from boardsite.accounts.throttle import (
    mail_request_wait,
    mail_throttled_message,
    reauth_throttled_message,
    reauth_wait,
    remember_device,
    retry_after,
    signup_throttled_message,
    signup_wait,
    unlock_account,
)
from boardsite.core.errors import Invalid, NotFound
from boardsite.core.text import VisibleText

BACKEND = "boardsite.accounts.backends.UsernameKeyBackend"
log = logging.getLogger(__name__)


class SignupForm(forms.Form):
    username = forms.CharField(max_length=150)
    # Required, but the account works at once: the address is used only once its link is followed (the profile
    # prompts until then), so sign-up never depends on mail getting through.
    email = forms.EmailField(
        max_length=254,
        help_text="We send a link to confirm it. Needed to reset a forgotten password and to receive notifications.",
    )
    display_name = forms.CharField(max_length=80, required=False, validators=[VisibleText("display name")])
    password = forms.CharField(widget=forms.PasswordInput)
    password_again = forms.CharField(widget=forms.PasswordInput)

    def clean_email(self) -> str:
        return emails.clean_address(self.cleaned_data["email"])

    def clean(self) -> dict:
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class ProfileForm(forms.Form):
    display_name = forms.CharField(max_length=80, required=False, validators=[VisibleText("display name")])
    bio = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=2000,
        required=False,
        validators=[VisibleText("bio", multiline=True)],
    )


class EmailForm(forms.Form):
    email = forms.EmailField(max_length=254, label="New email address")
    # A session alone (someone else's browser) must not move or add the address: the way to a password reset.
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        required=False,
        label="Your password",
    )

    def clean_email(self) -> str:
        return emails.clean_address(self.cleaned_data["email"])


def _add_errors(form: forms.Form, exc: ValidationError) -> None:
    if not hasattr(exc, "error_dict"):
        form.add_error("password", exc)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


class LoginView(auth_views.LoginView):
    """Django's log-in page; a successful log-in makes this browser a known device of the account
    (``throttle.remember_device``: someone else's failures no longer lock it out)."""

    authentication_form = LoginForm

    def form_valid(self, form: LoginForm) -> HttpResponse:
        response = super().form_valid(form)
        return remember_device(response, request=self.request, username=form.cleaned_data["username"])


def signup(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and (wait := signup_wait(request)):
        # Never the passwords.
        typed = {field: request.POST.get(field, "") for field in ("username", "email", "display_name")}
        context = {"form": SignupForm(initial=typed), "throttled": signup_throttled_message(wait)}
        return retry_after(render(request, "accounts/signup.html", context, status=429), wait)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        address = form.cleaned_data["email"]
        try:
            # One transaction: an account whose confirmation could not be handed on is not left behind.
            with transaction.atomic():
                user = user_signup(
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password"],
                    display_name=form.cleaned_data["display_name"],
                )
                emails.email_request(user=user, address=address)
        except Invalid as exc:
            form.add_error("email" if exc.message == emails.NOT_SENT else "username", exc.message)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            login(request, user, backend=BACKEND)
            messages.info(request, f"We sent a link to {address}: follow it to confirm your address.")
            return remember_device(redirect("home"), request=request, username=user.get_username())
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    current = profile_get(user=request.user)
    form = ProfileForm(request.POST or None, initial={"display_name": current.display_name, "bio": current.bio})
    if request.method == "POST" and form.is_valid():
        try:
            profile_update(user=request.user, **form.cleaned_data)
        except Invalid as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("profile")
    context = {"form": form, "profile": current, "email_form": EmailForm(), **_email_context(request.user)}
    # The picture's state (an upload in flight, the last refusal's reason); uploads go to boardsite.avatars' views.
    context["avatar_row"] = Avatar.objects.filter(user=request.user).first()
    context["avatar_max_mb"] = settings.AVATAR_MAX_BYTES // (1024 * 1024)
    return render(request, "accounts/profile.html", context)


def _email_context(user: object) -> dict:
    confirmed = emails.confirmed_email(user)
    # Only the person's own confirmed address: its suppression is theirs to know (and to fix by changing it).
    return {
        "confirmed_email": confirmed,
        "suppression": emails.suppression_of(confirmed),
        # Every render of the profile page lists the person's access tokens and the form for a new one.
        "tokens": tokens.tokens_of(user),
        "token_form": TokenForm(),
        "now": timezone.now(),
    }


class TokenForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="The machine or script that will use it.")
    scopes = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {what}") for name, what in tokens.SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        initial=["read", "upload"],
    )
    days = forms.TypedChoiceField(
        label="Expires after", choices=tokens.expiry_choices(), coerce=int, initial=tokens.DEFAULT_DAYS
    )


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    """Make an access token and show it, once: only its digest is kept (``accounts.tokens``)."""
    form = TokenForm(request.POST)
    current = profile_get(user=request.user)
    context = {"form": ProfileForm(initial={"display_name": current.display_name, "bio": current.bio})}
    context |= {"profile": current, "email_form": EmailForm(), **_email_context(request.user)}
    if form.is_valid():
        try:
            row, token = tokens.token_create(user=request.user, **form.cleaned_data)
        except Invalid as exc:
            form.add_error(None, exc.message)
        else:
            context |= {"tokens": tokens.tokens_of(request.user), "new_token": token, "new_token_row": row}
            return render(request, "accounts/profile.html", context, status=201)
    context["token_form"] = form
    return render(request, "accounts/profile.html", context, status=400)


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        row = tokens.token_revoke(user=request.user, token_id=pk)
    except NotFound as exc:
        raise Http404(exc.message) from None
    messages.info(request, f"The token “{row.name}” is revoked: it no longer works.")
    return redirect(reverse("profile") + "#tokens")


@login_required
@require_POST
def email_change(request: HttpRequest) -> HttpResponse:
    """Ask for a new address: it is mailed a confirmation link and used only once that link is followed. Adding or
    changing an address needs the current password (``REAUTH_RATE`` attempts per session): through the address, a
    session alone could otherwise take the account."""
    form = EmailForm(request.POST)
    current = profile_get(user=request.user)
    context = {"form": ProfileForm(initial={"display_name": current.display_name, "bio": current.bio})}
    context |= {"profile": current, "email_form": form, **_email_context(request.user)}
    if not form.is_valid():
        return render(request, "accounts/profile.html", context, status=400)
    # Counted before the password is checked: requests sent at once cannot all be checked before one is counted.
    if wait := reauth_wait(request):
        context["throttled"] = reauth_throttled_message(wait)
        return retry_after(render(request, "accounts/profile.html", context, status=429), wait)
    if not request.user.check_password(form.cleaned_data["password"]):
        form.add_error("password", "That is not your password." if form.cleaned_data["password"] else "Required.")
        return render(request, "accounts/profile.html", context, status=400)
    address = form.cleaned_data["email"]
    if wait := mail_request_wait(request, group="accounts.email", targets=[f"user:{request.user.pk}", address]):
        context["throttled"] = mail_throttled_message(wait)
        return retry_after(render(request, "accounts/profile.html", context, status=429), wait)
    try:
        emails.email_request(user=request.user, address=address)
    except Invalid as exc:
        form.add_error("email", exc.message)
        return render(request, "accounts/profile.html", context, status=503)
    messages.info(request, f"We sent a link to {address}: follow it to confirm your address.")
    return redirect("profile")


def email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what will be confirmed and a button (mail scanners that fetch links confirm nothing); POST confirms.
    No log-in needed: the signed link names the account."""
    try:
        address = emails.check_token(token)
    except Invalid as exc:
        return render(request, "accounts/email_confirm.html", {"error": exc.message}, status=400)
    if request.method == "POST":
        try:
            emails.email_confirm(token=token)
        except Invalid as exc:
            return render(request, "accounts/email_confirm.html", {"error": exc.message}, status=400)
        messages.success(request, f"Your email address is now {address}.")
        return redirect("profile" if request.user.is_authenticated else "login")
    return render(request, "accounts/email_confirm.html", {"address": address})


def email_undo(request: HttpRequest, token: str) -> HttpResponse:
    """The old address's link after an address change: GET shows what it will do, POST puts the address back, ends
    every session (the password becomes unusable) and goes on to choosing a new password. No log-in needed."""
    try:
        undo = emails.read_undo_token(token)
    except Invalid as exc:
        return render(request, "accounts/email_undo.html", {"error": exc.message}, status=400)
    if request.method == "POST":
        try:
            set_password = emails.email_undo(token=token)
        except Invalid as exc:
            return render(request, "accounts/email_undo.html", {"error": exc.message}, status=400)
        return redirect(set_password)
    context = {"old": undo.address, "new": emails.masked(undo.user.email)}
    return render(request, "accounts/email_undo.html", context)


STALE = (
    "Your account changed while you were on this page (in another browser, or by a link we mailed). Nothing was saved."
)


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's (the current password, then the new one; the session stays signed in, others end), wrong ones
    throttled per session, the confirmed address told, and only the password saved, only if the account did not
    change meanwhile (``forms.StalePassword``)."""

    form_class = PasswordChangeForm
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("profile")

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        # Every attempt counts, before the old password is checked (see email_change).
        if wait := reauth_wait(request):
            context = self.get_context_data(form=self.get_form(), throttled=reauth_throttled_message(wait))
            return retry_after(self.render_to_response(context, status=429), wait)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: forms.Form) -> HttpResponse:
        try:
            response = super().form_valid(form)
        except StalePassword:
            form.add_error(None, STALE)
            return self.render_to_response(self.get_context_data(form=form), status=409)
        emails.password_changed_notice(self.request.user)
        messages.success(self.request, "Your password was changed. Other browsers signed in to your account are out.")
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset view: mail only to a confirmed address, the same answer whether or not one exists, throttled
    per client address and per address asked for from it, and as slow either way (``PASSWORD_RESET_MIN_SECONDS``):
    handing a mail on takes time that an unknown address does not, and the time must not tell which it was."""

    form_class = PasswordResetByConfirmedEmailForm
    success_url = reverse_lazy("password-reset-done")

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if wait := mail_request_wait(request, group="accounts.password_reset", targets=[request.POST.get("email", "")]):
            form = self.form_class(initial={"email": request.POST.get("email", "")})
            context = self.get_context_data(form=form, throttled=mail_throttled_message(wait))
            return retry_after(self.render_to_response(context, status=429), wait)
        started = time.monotonic()
        response = super().post(request, *args, **kwargs)
        pad_to(started, settings.PASSWORD_RESET_MIN_SECONDS, what="a password-reset answer")
        return response


def pad_to(started: float, seconds: float, *, what: str) -> None:
    """Sleep until ``seconds`` have passed since ``started`` (``time.monotonic()``); log when they had already."""
    left = started + seconds - time.monotonic()
    if left > 0:
        time.sleep(left)
    else:
        log.warning(
            "%s took %.3f s, more than the %.3f s it is padded to: raise the setting", what, seconds - left, seconds
        )


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = SetPasswordForm
    success_url = reverse_lazy("password-reset-complete")

    def form_valid(self, form: forms.Form) -> HttpResponse:
        try:
            response = super().form_valid(form)
        except StalePassword:
            form.add_error(None, STALE + " Ask for a new link if you still need one.")
            return self.render_to_response(self.get_context_data(form=form), status=409)
        unlock_account(form.user)  # someone locked out by their own forgotten password can log in now
        return response
