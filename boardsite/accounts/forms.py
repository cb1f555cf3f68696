from __future__ import annotations

from django.contrib.auth.forms import AuthenticationForm


class LoginForm(AuthenticationForm):
    # Django's sentence says both fields may be case-sensitive; usernames are not here (accounts.usernames).
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": (
            "That username and password do not match an account. Usernames are not case-sensitive; passwords are."
        ),
    }
