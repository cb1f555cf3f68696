from __future__ import annotations

from django import forms
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from boardsite.accounts.forms import LoginForm
from boardsite.accounts.services import profile_get, profile_update, user_signup
from boardsite.accounts.throttle import remember_device, retry_after, signup_throttled_message, signup_wait
from boardsite.core.errors import Invalid
from boardsite.core.text import VisibleText

BACKEND = "boardsite.accounts.backends.UsernameKeyBackend"


class SignupForm(forms.Form):
    username = forms.CharField(max_length=150)
    display_name = forms.CharField(max_length=80, required=False, validators=[VisibleText("display name")])
    password = forms.CharField(widget=forms.PasswordInput)
    password_again = forms.CharField(widget=forms.PasswordInput)

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
        typed = {field: request.POST.get(field, "") for field in ("username", "display_name")}  # never the passwords
        context = {"form": SignupForm(initial=typed), "throttled": signup_throttled_message(wait)}
        return retry_after(render(request, "accounts/signup.html", context, status=429), wait)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_signup(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                display_name=form.cleaned_data["display_name"],
            )
        except Invalid as exc:
            form.add_error("username", exc.message)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            login(request, user, backend=BACKEND)
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
    return render(request, "accounts/profile.html", {"form": form, "profile": current})
