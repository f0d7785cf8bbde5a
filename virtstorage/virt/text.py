"""The libvirt layer's own messages, in the reader's language.

This layer has no Django, so it cannot ask Django which language is active; the Django side hands it a
translator at start-up (accounts/apps.py: ``use_translator(gettext)``). ``_()`` marks a message for the
catalog (makemessages finds it) and translates it when a translator is set; until then it is English.
libvirt's and qemu-img's own text is never passed through ``_()``: it is quoted as they wrote it.
"""

from __future__ import annotations

from collections.abc import Callable

_translate: Callable[[str], str] = str


def use_translator(translate: Callable[[str], str]) -> None:
    global _translate
    _translate = translate


def _(message: str) -> str:
    return _translate(message)
