from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.log import refused
from virtstorage.virt import InvalidRequest, uris

from .models import Host


class HostForm(forms.ModelForm):
    class Meta:
        model = Host
        fields = ["name", "uri", "description", "enabled", "direct_io", "queue"]
        labels = {"name": gettext_lazy("Name"), "description": gettext_lazy("Description"),
                  "enabled": gettext_lazy("Enabled")}
        help_texts = {
            "uri": gettext_lazy("For example qemu:///system, qemu+ssh://root@kvm1/system, qemu+tls://kvm2/system "
                                "or test:///default. Parameters: only no_tty=1 and, for ssh, keyfile= and "
                                "known_hosts= naming a file in the server's key directory."),
        }

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
            raise forms.ValidationError(_("Use letters, digits, '.', '_' and '-', starting with a letter or digit."))
        return name

    def clean_uri(self) -> str:
        """The URI in its normal form, if the allow-list takes it (see virtstorage.virt.uris)."""
        uri = self.cleaned_data["uri"].strip()
        try:
            return uris.check_uri(uri, key_dir=uris.configured_key_dir())
        except InvalidRequest as exc:
            refused("host.edit" if self.instance.pk else "host.create", str(exc), target=uri, target_type="host")
            raise forms.ValidationError(str(exc)) from None

    def save(self, commit: bool = True) -> Host:
        self.instance.disabled_reason = ""  # the reason was a refused URI; this one passed
        return super().save(commit)


# What a confirmation names, in words: (the field's label, the error when the name typed is not the one).
_CONFIRM_TEXTS = {
    "host": (gettext_lazy("Type the host's name to confirm"),
             gettext_lazy("Type %(name)s exactly to confirm: that is not the host's name.")),
    "pool": (gettext_lazy("Type the pool's name to confirm"),
             gettext_lazy("Type %(name)s exactly to confirm: that is not the pool's name.")),
    "volume": (gettext_lazy("Type the volume's name to confirm"),
               gettext_lazy("Type %(name)s exactly to confirm: that is not the volume's name.")),
}


class ConfirmNameForm(forms.Form):
    """Type the exact name of what a destructive step destroys: the one confirmation of hosts, pools and
    volumes. ``confirm_field`` names the field (pages and scripts post it)."""

    confirm_field = "confirm"

    def __init__(self, *args, name: str, what: str, required: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.confirmed_name, self.what = name, what
        label = _CONFIRM_TEXTS[what][0] if what in _CONFIRM_TEXTS else f"Type the {what}'s name to confirm"
        self.fields[self.confirm_field] = forms.CharField(
            label=label, required=required, strip=False, max_length=1000)

    def require_name(self) -> None:
        """Call from clean() where the step needs confirming: an error unless the exact name was typed."""
        if self.confirm_field not in self.errors and self.cleaned_data.get(self.confirm_field) != self.confirmed_name:
            error = (str(_CONFIRM_TEXTS[self.what][1]) if self.what in _CONFIRM_TEXTS
                     else f"Type %(name)s exactly to confirm: that is not the {self.what}'s name.")
            self.add_error(self.confirm_field, error % {"name": self.confirmed_name})


class HostDeleteForm(ConfirmNameForm):
    """Type the host's name to remove it from the app (its page and the REST API ask the same)."""

    confirm_field = "confirm_name"

    def __init__(self, *args, host: Host, **kwargs) -> None:
        super().__init__(*args, name=host.name, what="host", **kwargs)

    def clean(self) -> dict:
        data = super().clean()
        self.require_name()
        return data
