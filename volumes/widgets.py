"""The input of a volume's name that suggests the inventory's names as one types (volumes:name_options)."""

from __future__ import annotations

import json

from django import forms
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString


class VolumeNameInput(forms.TextInput):
    """A text input and the <datalist> its suggestions fill (htmx, as one types or picks a pool): the volumes of
    the pool chosen in the form's `pool_field` or, with none chosen, of the host's started pools. The list comes
    with the input, so every page that shows the field has it."""

    def __init__(self, *, list_id: str, pool_field: str, host_id: int) -> None:
        pool = f"#id_{pool_field}"
        super().__init__(attrs={
            "list": list_id, "autocomplete": "off", "hx-get": reverse("volumes:name_options"),
            "hx-trigger": f"focus, input changed delay:250ms, change from:{pool}", "hx-include": pool,
            "hx-vals": json.dumps({"host": host_id}), "hx-target": f"#{list_id}", "hx-swap": "innerHTML"})

    def render(self, name: str, value, attrs: dict | None = None, renderer=None) -> SafeString:
        return super().render(name, value, attrs, renderer) + format_html('<datalist id="{}"></datalist>',
                                                                          self.attrs["list"])
