"""The form of a team's pool grant and its quota (teams and members: accounts/team_forms.py)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Team
from accounts.team_forms import optional_size
from virtstorage.virt.units import UNITS_HELP

from .models import StoragePool


class PoolChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: StoragePool) -> str:
        return f"{obj.host.name} / {obj.name}"


class GrantForm(forms.Form):
    """Grant a pool (any host's) to a team, or set the quota of its grant: empty limits mean none."""

    pool = PoolChoiceField(label=gettext_lazy("Pool"),
                           queryset=StoragePool.objects.select_related("host").order_by("host__name", "name"))
    # help_text is set in __init__: it is a sentence around UNITS_HELP, translated per request.
    max_size = forms.CharField(label=gettext_lazy("Max virtual size"), max_length=40, required=False)
    max_volumes = forms.IntegerField(label=gettext_lazy("Max volumes"), min_value=0, max_value=2**31 - 1,
                                     required=False,
                                     help_text=gettext_lazy("Most volumes the team may have there. Empty: no limit."))

    def __init__(self, *args, team: Team, only_new: bool = False, **kwargs) -> None:
        """only_new: offer only the pools the team has no grant in (the "grant a pool" form)."""
        super().__init__(*args, **kwargs)
        self.team = team
        self.fields["max_size"].help_text = _("Largest sum of the team's volumes' virtual sizes there: %(units)s. "
                                              "Empty: no limit.") % {"units": UNITS_HELP}
        if only_new:
            self.fields["pool"].queryset = self.fields["pool"].queryset.exclude(grants__team=team)

    def clean_max_size(self) -> int | None:
        return optional_size(self.cleaned_data["max_size"])
