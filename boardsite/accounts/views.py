from __future__ import annotations

from django import forms
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from boardsite.accounts.services import profile_get, profile_update, user_signup
from boardsite.core.errors import Invalid


class SignupForm(forms.Form):
    username = forms.CharField(max_length=150)
    display_name = forms.CharField(max_length=80, required=False)
    password = forms.CharField(widget=forms.PasswordInput)
    password_again = forms.CharField(widget=forms.PasswordInput)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data


class ProfileForm(forms.Form):
    display_name = forms.CharField(max_length=80, required=False)
    bio = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), max_length=2000, required=False)


def signup(request: HttpRequest) -> HttpResponse:
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
            form.add_error("password" if not hasattr(exc, "error_dict") else None, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    current = profile_get(user=request.user)
    form = ProfileForm(request.POST or None, initial={"display_name": current.display_name, "bio": current.bio})
    if request.method == "POST" and form.is_valid():
        profile_update(user=request.user, **form.cleaned_data)
        return redirect("profile")
    return render(request, "accounts/profile.html", {"form": form, "profile": current})
