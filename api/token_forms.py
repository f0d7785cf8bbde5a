"""The form that makes a personal API token: a name, and optionally the number of days it lives."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

MAX_DAYS = 3650


class TokenForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100,
                           help_text=gettext_lazy("What it is for, e.g. “CI pipeline” or “terraform”."))
    expires_in_days = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_DAYS, label=gettext_lazy("Expires in (days)"),
        help_text=gettext_lazy("Empty: it never expires (revoke it when it is no longer needed)."))

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError(_("Give the token a name."))
        return name

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None
