"""Sizes, in one place: the unit table libvirt reads, parsing what people type, and formatting.

Single letters and IEC names are binary (K = KiB = 1024), as in qemu-img and virsh; the SI spellings
KB, MB, GB... mean powers of 1000, as libvirt reads them. A plain number is a whole number of bytes. Decimals
are allowed with a unit; a parsed size is rounded up to a whole byte so a volume is never smaller than asked, and a
volume's virtual size to a whole KiB (volume_size). Shown sizes are
binary (1.5 GiB). The same table serves libvirt's scaled integers (<capacity unit='KiB'>).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from .text import _, gettext_lazy

UNIT_FACTORS: dict[str, int] = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
    "p": 1024**5, "pib": 1024**5, "pb": 1000**5,
    "e": 1024**6, "eib": 1024**6, "eb": 1000**6,
}
_FACTORS = UNIT_FACTORS

# libvirt sizes are unsigned long long, the inventory stores signed 64-bit
MAX_SIZE = 2**63 - 1

_SIZE = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>[A-Za-z]*)")
# English as a string; shown (str(), %s, f-strings) in the reader's language (text.LazyText).
UNITS_HELP = gettext_lazy("bytes, or K/M/G/T (binary: KiB, MiB, GiB, TiB), e.g. 10G, 512 MiB, 1.5TiB")


def parse_size(text: str | int) -> int:
    """Bytes for a size such as "10G"; ValueError with a message a person can act on."""
    if isinstance(text, bool):
        raise ValueError(_("Enter a size such as 10G."))
    if isinstance(text, int):
        if text < 0:
            raise ValueError(_("A size cannot be negative."))
        if text > MAX_SIZE:
            raise ValueError(_("That size is too large."))
        return text
    cleaned = str(text).strip()
    if not cleaned:
        raise ValueError(_("Enter a size such as 10G."))
    if cleaned.startswith("-"):
        raise ValueError(_("A size cannot be negative."))
    match = _SIZE.fullmatch(cleaned)
    if match is None:
        raise ValueError(_("'%(text)s' is not a size; use %(units)s.") % {"text": cleaned[:40], "units": UNITS_HELP})
    unit = match["unit"].lower()
    if unit not in _FACTORS:
        raise ValueError(_("Unknown unit '%(unit)s'; use %(units)s.")
                         % {"unit": match["unit"][:10], "units": UNITS_HELP})
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # the regex admits only digits, kept for safety
        raise ValueError(_("'%(text)s' is not a size; use %(units)s.")
                         % {"text": cleaned[:40], "units": UNITS_HELP}) from exc
    if number.adjusted() > 30:  # far beyond MAX_SIZE; spare Decimal a huge computation
        raise ValueError(_("That size is too large."))
    if _FACTORS[unit] == 1 and number != number.to_integral_value():
        raise ValueError(_("A number of bytes is whole: '%(text)s' is not; give a unit for a fraction (1.5K).")
                         % {"text": cleaned[:40]})
    size = math.ceil(number * _FACTORS[unit])
    if size > MAX_SIZE:
        raise ValueError(_("That size is too large."))
    return size


# A volume's virtual size: libvirt hands qemu-img a qcow2 volume's size in whole KiB, rounded up, so every volume
# size the app asks for is rounded the same way first (the size asked is the size made, in whole 512-byte sectors),
# and is at least 1 MiB (below it a qcow2's own metadata outweighs its data).
VOLUME_SIZE_STEP = 1024
MIN_VOLUME_SIZE = 1024**2


def volume_size(size: int) -> int:
    """size rounded up to a whole KiB; ValueError below MIN_VOLUME_SIZE or beyond MAX_SIZE."""
    if size < MIN_VOLUME_SIZE:
        raise ValueError(_("A volume's virtual size is at least 1 MiB."))
    rounded = -(-size // VOLUME_SIZE_STEP) * VOLUME_SIZE_STEP
    if rounded > MAX_SIZE:
        raise ValueError(_("That size is too large."))
    return rounded


_SHOWN_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def size_parts(value: int) -> tuple[float, int, str]:
    """1536 -> (1.5, 1, 'KiB'): the number, its decimal places and the binary unit a size is shown in; exact
    bytes below 1 KiB. The number is already rounded to its places (117.96 MiB -> 118, 1023.96 KiB -> 1.0 MiB),
    so every page and message that shows a size shows the same one. Pages format the number in the reader's
    locale (1,5 KiB in Spanish)."""
    size = float(value)
    if abs(size) < 1024:
        return float(int(size)), 0, "bytes"
    for unit in _SHOWN_UNITS[1:]:
        size /= 1024
        places = 1 if abs(size) < 100 else 0
        shown = round(size, places)
        if places and abs(shown) >= 100:  # 99.96 rounds to 100.0: a number that large is shown whole
            places, shown = 0, round(size, 0)
        if abs(shown) < 1024 or unit == _SHOWN_UNITS[-1]:
            return shown, places, unit
    raise AssertionError("unreachable")


def binary_size(value: int | None) -> str:
    """1536 -> '1.5 KiB'; exact below 1 KiB."""
    if value is None:
        return "—"
    number, places, unit = size_parts(value)
    return f"{number:.{places}f} {unit}"


def exact_size_text(value: int) -> str:
    """A size in the largest unit that keeps it exact ("10G"), so a form that shows it and is saved again
    never changes it."""
    for suffix, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value and value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)
