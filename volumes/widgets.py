"""The input of a volume's name that suggests the inventory's names as one types (volumes:name_options)."""

from __future__ import annotations

import json

from django import forms
from django.urls import reverse_lazy
from django.utils.html import format_html
from django.utils.safestring import SafeString


class VolumeNameInput(forms.TextInput):
    """A text input and the <datalist> its suggestions fill (htmx, as one types or picks a pool): the volumes of
    the pool chosen in the form's `pool_field` or, with none chosen, of the host's started pools (the form names the
    host: for_host()). The list comes with the input, so every page that shows the field has it."""

    def __init__(self, *, list_id: str, pool_field: str) -> None:
        pool = f"#id_{pool_field}"
        super().__init__(attrs={
            "list": list_id, "autocomplete": "off", "hx-get": reverse_lazy("volumes:name_options"),
            "hx-trigger": f"focus, input changed delay:250ms, change from:{pool}", "hx-include": pool,
            "hx-target": f"#{list_id}", "hx-swap": "innerHTML"})

    def for_host(self, host_id: int) -> None:
        """Suggest from this host's pools when no pool is chosen (the form's own copy of the widget)."""
        self.attrs["hx-vals"] = json.dumps({"host": host_id})

    def render(self, name: str, value, attrs: dict | None = None, renderer=None) -> SafeString:
        return super().render(name, value, attrs, renderer) + format_html('<datalist id="{}"></datalist>',
                                                                          self.attrs["list"])
