"""Volume names the app accepts: a safe subset of what libvirt allows.

libvirt 9.0 accepts names with spaces, newlines, ``;``, ``$(id)``, a leading
``-`` and XML metacharacters; such names turn into file names that break shell
scripts and confuse people. We allow letters, digits and ``._+-``, starting
with a letter or digit (so never ``.``, ``..`` or an option-like ``-x``).
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

MAX_NAME_BYTES = 255  # a file name on Linux; libvirt refuses longer names too
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def validate_volume_name(text: str) -> str:
    """The name itself if it is safe to hand to libvirt; ValueError with a clear message otherwise."""
    if not isinstance(text, str):
        raise ValueError(_("A volume name must be text."))
    if text == "":
        raise ValueError(_("Enter a volume name."))
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_NAME_BYTES:
        raise ValueError(_("A volume name can have at most %(max)s characters.") % {"max": MAX_NAME_BYTES})
    if "/" in text:
        raise ValueError(_("A volume name cannot contain '/'."))
    if "\x00" in text:
        raise ValueError(_("A volume name cannot contain a NUL character."))
    if not _SAFE_NAME.fullmatch(text):
        bad = sorted({ch for ch in text if not re.fullmatch(r"[A-Za-z0-9._+-]", ch)})
        if bad:
            shown = " ".join(repr(ch) for ch in bad[:8])
            raise ValueError(_("A volume name may only use letters, digits and . _ + -; not allowed: %(chars)s.")
                             % {"chars": shown})
        raise ValueError(_("A volume name must start with a letter or digit, then use letters, digits and . _ + -."))
    return text
