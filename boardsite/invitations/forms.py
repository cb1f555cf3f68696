from __future__ import annotations

from django import forms

from boardsite.accounts.views import SignupForm
from boardsite.boards.models import Role


class InviteForm(forms.Form):
    # Checked in full by the service (accounts.emails.clean_address: the rule every address form follows).
    email = forms.CharField(
        max_length=254,
        label="Email address",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
        error_messages={
            "required": "Give the email address to invite.",
            "max_length": "An email address has at most %(limit_value)d characters.",
        },
    )
    role = forms.ChoiceField(
        choices=Role.choices,
        initial=Role.CONTRIBUTOR,
        error_messages={
            "required": "Choose a role for the invitation.",
            "invalid_choice": "Choose a role: owner, contributor or viewer.",
        },
    )

    def error_sentence(self) -> str:
        return " ".join(str(e) for errors in self.errors.values() for e in errors)


class InvitationSignupForm(SignupForm):
    """Sign-up through an invitation: the address is the invited one (shown, not typed), so no email field."""

    email = None
