"""The form of a team's pool grant and its quota (teams and members: accounts/team_forms.py)."""

from __future__ import annotations

from django import forms

from accounts.models import Team
from accounts.team_forms import optional_size
from virtstorage.virt.units import UNITS_HELP

from .models import StoragePool


class PoolChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: StoragePool) -> str:
        return f"{obj.host.name} / {obj.name}"


class GrantForm(forms.Form):
    """Grant a pool (any host's) to a team, or set the quota of its grant: empty limits mean none."""

    pool = PoolChoiceField(queryset=StoragePool.objects.select_related("host").order_by("host__name", "name"))
    max_size = forms.CharField(label="Max virtual size", max_length=40, required=False,
                               help_text=f"Largest sum of the team's volumes' virtual sizes there: {UNITS_HELP}. "
                                         "Empty: no limit.")
    max_volumes = forms.IntegerField(label="Max volumes", min_value=0, max_value=2**31 - 1, required=False,
                                     help_text="Most volumes the team may have there. Empty: no limit.")

    def __init__(self, *args, team: Team, only_new: bool = False, **kwargs) -> None:
        """only_new: offer only the pools the team has no grant in (the "grant a pool" form)."""
        super().__init__(*args, **kwargs)
        self.team = team
        if only_new:
            self.fields["pool"].queryset = self.fields["pool"].queryset.exclude(grants__team=team)

    def clean_max_size(self) -> int | None:
        return optional_size(self.cleaned_data["max_size"])
