from __future__ import annotations

import re

from django import forms

from virtstorage.virt import InvalidRequest, uris

from .models import Host


class HostForm(forms.ModelForm):
    class Meta:
        model = Host
        fields = ["name", "uri", "description", "enabled", "direct_io", "queue"]
        help_texts = {
            "uri": "For example qemu:///system, qemu+ssh://root@kvm1/system, qemu+tls://kvm2/system "
                   "or test:///default. Parameters: only no_tty=1 and, for ssh, keyfile= and known_hosts= "
                   "naming a file in the server's key directory.",
        }

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
            raise forms.ValidationError("Use letters, digits, '.', '_' and '-', starting with a letter or digit.")
        return name

    def clean_uri(self) -> str:
        """The URI in its normal form, if the allow-list takes it (see virtstorage.virt.uris)."""
        try:
            return uris.check_uri(self.cleaned_data["uri"].strip(), key_dir=uris.configured_key_dir())
        except InvalidRequest as exc:
            raise forms.ValidationError(str(exc)) from None

    def save(self, commit: bool = True) -> Host:
        self.instance.disabled_reason = ""  # the reason was a refused URI; this one passed
        return super().save(commit)


class ConfirmNameForm(forms.Form):
    """Type the exact name of what a destructive step destroys: the one confirmation of hosts, pools and
    volumes. ``confirm_field`` names the field (pages and scripts post it)."""

    confirm_field = "confirm"

    def __init__(self, *args, name: str, what: str, required: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.confirmed_name, self.what = name, what
        self.fields[self.confirm_field] = forms.CharField(
            label=f"Type the {what}'s name to confirm", required=required, strip=False, max_length=1000)

    def require_name(self) -> None:
        """Call from clean() where the step needs confirming: an error unless the exact name was typed."""
        if self.confirm_field not in self.errors and self.cleaned_data.get(self.confirm_field) != self.confirmed_name:
            self.add_error(self.confirm_field,
                           f"Type {self.confirmed_name} exactly to confirm: that is not the {self.what}'s name.")
