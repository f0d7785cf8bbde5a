"""Parse sizes typed by people: "10G", "512 MiB", "1.5TiB", "1048576".

Single letters and IEC units are binary (K = KiB = 1024), as in qemu-img and
virsh; the SI spellings KB, MB, GB... mean powers of 1000, as libvirt reads
them. A plain number is bytes. Decimals are allowed; the result is rounded up
to a whole byte so the volume is never smaller than asked.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from virtstorage.virt.units import UNIT_FACTORS as _FACTORS

# libvirt sizes are unsigned long long, the inventory stores signed 64-bit
MAX_SIZE = 2**63 - 1

_SIZE = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>[A-Za-z]*)")
UNITS_HELP = "bytes, or K/M/G/T (binary: KiB, MiB, GiB, TiB), e.g. 10G, 512 MiB, 1.5TiB"


def parse_size(text: str | int) -> int:
    """Bytes for a size such as "10G"; ValueError with a message a person can act on."""
    if isinstance(text, bool):
        raise ValueError("Enter a size such as 10G.")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("A size cannot be negative.")
        if text > MAX_SIZE:
            raise ValueError("That size is too large.")
        return text
    cleaned = str(text).strip()
    if not cleaned:
        raise ValueError("Enter a size such as 10G.")
    if cleaned.startswith("-"):
        raise ValueError("A size cannot be negative.")
    match = _SIZE.fullmatch(cleaned)
    if match is None:
        raise ValueError(f"'{cleaned[:40]}' is not a size; use {UNITS_HELP}.")
    unit = match["unit"].lower()
    if unit not in _FACTORS:
        raise ValueError(f"Unknown unit '{match['unit'][:10]}'; use {UNITS_HELP}.")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # the regex admits only digits, kept for safety
        raise ValueError(f"'{cleaned[:40]}' is not a size; use {UNITS_HELP}.") from exc
    if number.adjusted() > 30:  # far beyond MAX_SIZE; spare Decimal a huge computation
        raise ValueError("That size is too large.")
    size = math.ceil(number * _FACTORS[unit])
    if size > MAX_SIZE:
        raise ValueError("That size is too large.")
    return size
