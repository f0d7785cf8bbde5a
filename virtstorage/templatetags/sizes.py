"""Template filters for sizes (virt/units.py formats them): binary units, exact bytes on hover."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from virtstorage.virt.units import binary_size

register = template.Library()

@register.filter
def size(value: int | None) -> str:
    """A size as HTML: binary units, exact bytes in a tooltip."""
    if value is None:
        return "—"
    return format_html('<span class="size" title="{} bytes">{}</span>', f"{int(value):,}", binary_size(value))


@register.filter
def percent(part: int | None, whole: int | None) -> float:
    """part/whole as a percentage 0..100, for bar widths; 0 when whole is 0."""
    if not whole or part is None:
        return 0.0
    return max(0.0, min(100.0, 100.0 * part / whole))
