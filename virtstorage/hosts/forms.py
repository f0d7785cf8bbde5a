from __future__ import annotations

import re

from django import forms

from .models import Host

# libvirt URI: driver[+transport]://[user@][host][:port]/[path][?query]
_URI = re.compile(r"^[a-z][a-z0-9]*(\+[a-z0-9]+)?://[^\s<>\"']*$")


class HostForm(forms.ModelForm):
    class Meta:
        model = Host
        fields = ["name", "uri", "description", "enabled", "direct_io"]
        help_texts = {
            "uri": "For example qemu:///system, qemu+ssh://root@kvm1/system, qemu+tls://kvm2/system "
                   "or test:///default.",
        }

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
            raise forms.ValidationError("Use letters, digits, '.', '_' and '-', starting with a letter or digit.")
        return name

    def clean_uri(self) -> str:
        uri = self.cleaned_data["uri"].strip()
        if not _URI.match(uri):
            raise forms.ValidationError("This is not a libvirt URI (driver[+transport]://[user@host]/path).")
        return uri
