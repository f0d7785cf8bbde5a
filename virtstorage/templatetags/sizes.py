"""Template filters for sizes (virt/units.py picks the unit): binary units, numbers in the reader's locale,
exact bytes on hover."""

from __future__ import annotations

import functools

from django import template
from django.utils.formats import get_format, number_format
from django.utils.html import format_html
from django.utils.translation import get_language, gettext

from virtstorage.virt.units import size_parts

register = template.Library()


@functools.lru_cache(maxsize=16)
def _separators(language: str | None) -> tuple[str, str] | None:
    """(decimal, thousands) separators of the language, or None when its digits are not grouped by threes (the
    general number_format then does it). A volume table shows 150 numbers: number_format looks the locale's
    formats up again for each, which was a third of the table's rendering."""
    if get_format("NUMBER_GROUPING", language) != 3:
        return None
    return str(get_format("DECIMAL_SEPARATOR", language)), str(get_format("THOUSAND_SEPARATOR", language))


def _grouped(value: int, separators: tuple[str, str] | None) -> str:
    if separators is None:
        return number_format(value, force_grouping=True)
    return f"{value:,}".replace(",", separators[1])


def _decimal(number: float, places: int, separators: tuple[str, str] | None) -> str:
    """number_format(number, places) without grouping, as Django writes it (the digits cut: size_parts rounded
    the number already)."""
    if separators is None or "e" in str(number).lower():
        return number_format(number, places)
    whole, _point, fraction = str(number).partition(".")
    fraction = fraction[:places].ljust(places, "0")
    return f"{whole}{separators[0]}{fraction}" if places else whole


@register.filter
def size(value: int | None) -> str:
    """A size as HTML: binary units, exact bytes in a tooltip."""
    if value is None:
        return "—"
    return format_html('<span class="size" title="{} bytes">{}</span>',
                       _grouped(int(value), _separators(get_language())), size_text(value))


@register.filter
def size_text(value: int | None) -> str:
    """A size as plain text, where no markup goes (an attribute): binary units, the reader's decimal separator."""
    if value is None:
        return "—"
    number, places, unit = size_parts(int(value))
    return f"{_decimal(number, places, _separators(get_language()))} {unit}"


@register.filter
def provisioning_badge(volume) -> str:
    """The preallocated or thin badge of a volume (anything with is_preallocated and thin_savings), with what
    that means on hover. A filter, not an included template: a volume table shows fifty, and the include and
    its translation tags were half the time of a row."""
    if volume.is_preallocated:
        title = gettext("Disk size equals virtual size: all space reserved up front")
        return format_html('<span class="badge ok" title="{}">{}</span>', title, gettext("preallocated"))
    title = gettext("Disk size below virtual size: space is allocated as the guest writes (%(bytes)s bytes not yet "
                    "allocated)") % {"bytes": _grouped(volume.thin_savings, _separators(get_language()))}
    return format_html('<span class="badge info" title="{}">{}</span>', title, gettext("thin"))


@register.filter
def percent(part: int | None, whole: int | None) -> float:
    """part/whole as a percentage 0..100, for bar widths; 0 when whole is 0."""
    if not whole or part is None:
        return 0.0
    return max(0.0, min(100.0, 100.0 * part / whole))
