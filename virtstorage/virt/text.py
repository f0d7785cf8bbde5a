"""The libvirt layer's own messages, in the reader's language.

This layer has no Django, so it cannot ask Django which language is active; the Django side hands it a
translator at start-up (accounts/apps.py: ``use_translator(gettext, ngettext)``). ``_()`` (and ``ngettext()``,
for a sentence whose words follow a count) marks a message for the catalog (makemessages finds it) and
translates it when a translator is set; until then it is English.
libvirt's and qemu-img's own text is never passed through ``_()``: it is quoted as they wrote it.
"""

from __future__ import annotations

from collections.abc import Callable


def _english_plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


_translate: Callable[[str], str] = str
_translate_plural: Callable[[str, str, int], str] = _english_plural


def use_translator(translate: Callable[[str], str], translate_plural: Callable[[str, str, int], str]) -> None:
    global _translate, _translate_plural
    _translate, _translate_plural = translate, translate_plural


def _(message: str) -> str:
    return _translate(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translate_plural(singular, plural, n)


def gettext_noop(message: str) -> str:
    """Marks a message for the catalog and leaves it as it is: for constants that are stored or compared
    (a VM's state) and translated where they are shown (``_(constant)``)."""
    return message


class LazyText(str):
    """A module-level message that is English as a string (compared, joined, stored) and translated where it
    is shown: ``str()``, ``%s`` and f-strings ask the translator at that moment, as Django's lazy text does."""

    __slots__ = ()

    def __str__(self) -> str:
        return _translate(str.__str__(self))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def gettext_lazy(message: str) -> LazyText:
    """``_()`` for text made at import time (before a translator is set)."""
    return LazyText(message)
