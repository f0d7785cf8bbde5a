"""Template filters for sizes (virt/units.py picks the unit): binary units, numbers in the reader's locale,
exact bytes on hover."""

from __future__ import annotations

from django import template
from django.utils.formats import number_format
from django.utils.html import format_html

from virtstorage.virt.units import size_parts

register = template.Library()

@register.filter
def size(value: int | None) -> str:
    """A size as HTML: binary units, exact bytes in a tooltip."""
    if value is None:
        return "—"
    number, places, unit = size_parts(int(value))
    return format_html('<span class="size" title="{} bytes">{} {}</span>',
                       number_format(int(value), force_grouping=True), number_format(number, places), unit)


@register.filter
def percent(part: int | None, whole: int | None) -> float:
    """part/whole as a percentage 0..100, for bar widths; 0 when whole is 0."""
    if not whole or part is None:
        return 0.0
    return max(0.0, min(100.0, 100.0 * part / whole))
