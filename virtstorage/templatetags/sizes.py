"""Template filters for sizes: binary units, exact bytes on hover."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

register = template.Library()

_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def binary_size(value: int | None) -> str:
    """1536 -> '1.5 KiB'; exact below 1 KiB."""
    if value is None:
        return "—"
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            if unit == "bytes":
                return f"{int(size)} bytes"
            return f"{size:.1f} {unit}" if size < 100 else f"{size:.0f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


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
