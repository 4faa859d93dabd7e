"""Forms of the operator admin: invite a partner, connect to a partner.

The services in ``handshake`` validate URLs and tokens; these forms only collect the input.
"""

from __future__ import annotations

from typing import Any

from django import forms

from .models import Partner, PartnerState

NAME_MAX_LENGTH = 100  # Partner.name

NAME_HELP = "Your name for this connection (e.g. the partner's company). Not sent to the partner."


class InvitePartnerForm(forms.Form):
    required_css_class = "required"

    name = forms.CharField(max_length=NAME_MAX_LENGTH, help_text=NAME_HELP)
    reinvite = forms.BooleanField(
        required=False,
        label="Issue a new token A",
        help_text="Needed only when a partner with this name exists and is not registered: "
        "its current token A stops working.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        name = cleaned.get("name")
        if name and not cleaned.get("reinvite"):
            existing = Partner.objects.filter(name=name).first()
            # A registered (or registering) partner is refused by the service with its reason.
            if existing is not None and existing.state not in (
                PartnerState.REGISTERED,
                PartnerState.REGISTERING,
            ):
                raise forms.ValidationError(
                    f"A partner named {name} already exists ({existing.get_state_display()}). "
                    "Tick “Issue a new token A” to invite it again: its current token A "
                    "stops working."
                )
        return cleaned


class ConnectPartnerForm(forms.Form):
    required_css_class = "required"

    name = forms.CharField(max_length=NAME_MAX_LENGTH, help_text=NAME_HELP)
    versions_url = forms.CharField(
        label="Partner's versions URL",
        help_text="The URL of the partner's OCPI versions endpoint, as the partner gave it.",
        widget=forms.URLInput(attrs={"size": 60, "autocomplete": "off"}),
    )
    token_a = forms.CharField(
        label="Token A",
        help_text="The registration token the partner gave you. It is stored encrypted and "
        "never shown again.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
