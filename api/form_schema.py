"""The request bodies of the OpenAPI schema, generated from the pages' own forms: a form's fields as a DRF
serializer (for the schema only: the form itself checks the data, errors.valid). Fields a form adds in its
__init__ (a confirmation, an admin's force) are passed as ``extra``."""

from __future__ import annotations

from django import forms
from rest_framework import serializers


def _field(field: forms.Field, optional: bool = False) -> serializers.Field:
    common = {"required": field.required and not optional, "help_text": str(field.help_text or "") or None}
    if isinstance(field, forms.BooleanField):
        return serializers.BooleanField(required=False, help_text=common["help_text"])
    if isinstance(field, forms.ModelMultipleChoiceField):
        return serializers.ListField(child=serializers.IntegerField(), **common)
    if isinstance(field, forms.ModelChoiceField):
        return serializers.IntegerField(allow_null=not field.required, **common)
    if isinstance(field, forms.ChoiceField):
        choices = [value for value, _ in field.choices] if field.choices else []
        if choices:
            return serializers.ChoiceField(choices=choices, allow_blank="" in choices, **common)
        return serializers.CharField(allow_blank=not field.required, **common)
    if isinstance(field, forms.IntegerField):
        return serializers.IntegerField(**common)
    if isinstance(field, forms.DecimalField):
        return serializers.DecimalField(max_digits=12, decimal_places=4, coerce_to_string=False, allow_null=True,
                                        **common)
    return serializers.CharField(allow_blank=not field.required, **common)


def form_serializer(name: str, form_class: type[forms.Form], *, extra: dict | None = None,
                    exclude: tuple[str, ...] = (), optional: bool = False) -> type[serializers.Serializer]:
    """A serializer class named name with the form's fields (and extra ones), for the schema. optional: every
    field may be left out (an edit, where a field left out keeps its value)."""
    fields = {field_name: _field(field, optional) for field_name, field in form_class.base_fields.items()
              if field_name not in exclude}
    fields.update(extra or {})
    return type(name, (serializers.Serializer,), {**fields, "__doc__": (form_class.__doc__ or "").strip() or None})


def confirm(what: str) -> serializers.CharField:
    return serializers.CharField(help_text=f"The {what}'s name, typed to confirm.")


def force() -> serializers.BooleanField:
    return serializers.BooleanField(required=False, help_text="Admins only: even if a virtual machine uses it.")
