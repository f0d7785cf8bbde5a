"""Spanish and English.

The es catalog is complete for the code as it stands: scripts/messages.sh, run on a copy of the tree, finds
no string without a translation and none fuzzy, and msgfmt accepts every placeholder. Every page the
authorization matrix knows, asked for with ``Accept-Language: es``, shows no English text of the catalog.
A person's chosen language beats the browser's and follows them to a new session; jobs speak the language
of the page that started them.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.test import Client

from tests.test_authorization_matrix import RULES, _url, world  # noqa: F401 (world: the matrix's fixture)

ROOT = Path(__file__).resolve().parent.parent
CATALOG_DIR = ROOT / "locale" / "es" / "LC_MESSAGES"
DOMAINS = ("django.po", "djangojs.po")


def _problems(catalog: Path) -> list[str]:
    entries = polib.pofile(str(catalog))
    return ([f"untranslated: {e.msgid!r}" for e in entries.untranslated_entries()]
            + [f"fuzzy: {e.msgid!r}" for e in entries.fuzzy_entries()])


@pytest.mark.parametrize("domain", DOMAINS)
def test_committed_catalog_is_complete_and_well_formed(domain: str) -> None:
    catalog = CATALOG_DIR / domain
    assert catalog.exists(), f"{catalog.relative_to(ROOT)} is missing: run `make messages` and translate"
    assert _problems(catalog) == []
    checked = subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(catalog)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_every_string_of_the_code_is_in_the_catalog(tmp_path: Path) -> None:
    """A new or changed string without its translation fails here (and so in CI)."""
    assert shutil.which("xgettext"), "GNU gettext is missing: install Debian's gettext (make test does)"
    copy = tmp_path / "tree"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", "var", ".git", "node_modules", "*.pyc",
                                                              "__pycache__", ".pytest_cache", ".ruff_cache"))
    run = subprocess.run(["sh", "scripts/messages.sh"], cwd=copy, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    problems = {domain: _problems(copy / "locale" / "es" / "LC_MESSAGES" / domain) for domain in DOMAINS}
    assert problems == {domain: [] for domain in DOMAINS}, "translate these in locale/es (`make messages`)"


# -- pages in Spanish --------------------------------------------------------------------------------

# libvirt's own names, which pages show as libvirt spells them (a pool of type dir, a volume of type file, cache
# mode none) while the same word elsewhere is our text and translated ("file" as a kind of unmanaged disk).
LIBVIRT_WORDS = {"dir", "file", "block", "network", "none"}


def _english_strings() -> set[str]:
    """The catalog's English texts that Spanish changes, without placeholders: a page in Spanish shows none."""
    found = set()
    for entry in polib.pofile(str(CATALOG_DIR / "django.po")):
        if "%(" in entry.msgid or "%s" in entry.msgid or entry.msgid_plural or "<" in entry.msgid:
            continue
        if (entry.msgstr.strip() != entry.msgid.strip() and re.search("[a-z]{3}", entry.msgid)
                and entry.msgid not in LIBVIRT_WORDS):
            found.add(" ".join(entry.msgid.split()))
    return found


def _shown_texts(page: str) -> set[str]:
    """What a person reads: text between tags and the title/placeholder/aria-label attributes, each one a unit."""
    page = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", page)
    texts = set(re.findall(r'(?:title|placeholder|aria-label|hx-confirm)="([^"]*)"', page))
    texts |= set(re.split(r"<[^>]+>", page))
    return {" ".join(html.unescape(t).split()) for t in texts} - {""}


def _html_pages() -> list[str]:
    """The matrix's page URLs an admin (or the member who owns the object) reads with GET."""
    return sorted(name for name, (_, get, _post) in RULES.items()
                  if not name.startswith(("api:", "api-")) and (get.get("admin") == 200 or get.get("member") == 200)
                  and name not in {"logout", "volumes:download", "jobs:events"})


@pytest.mark.django_db(transaction=True)
def test_pages_in_spanish_show_no_english_of_the_catalog(world) -> None:  # noqa: F811
    english = _english_strings()
    assert len(english) > 300, "the catalog looks empty"
    leaks, read = {}, 0
    for name in _html_pages():
        kind = "admin" if RULES[name][1].get("admin") == 200 else "member"
        response = world["clients"][kind].get(_url(name, world), HTTP_ACCEPT_LANGUAGE="es")
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        read += 1
        assert response.get("Content-Language") == "es", name
        if shown := sorted(_shown_texts(response.content.decode()) & english):
            leaks[name] = shown
    assert read > 40, f"only {read} pages were read"
    assert leaks == {}, repr(leaks)


@pytest.mark.django_db
def test_chosen_language_beats_the_browser_and_follows_the_person(django_user_model) -> None:
    from accounts.models import Preferences
    from accounts.roles import MEMBER, grant

    user = django_user_model.objects.create_user("ana", password="correct-horse-battery")
    grant(user, MEMBER)
    browser = Client()
    browser.force_login(user)
    assert "Tareas" in browser.get("/jobs/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Tareas" not in browser.get("/jobs/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    response = browser.post("/accounts/language/", {"language": "es", "next": "/jobs/"}, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert Preferences.objects.get(user=user).language == "es"
    assert "Tareas" in browser.get("/jobs/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    another_device = Client()
    assert another_device.login(username="ana", password="correct-horse-battery")
    assert "Tareas" in another_device.get("/jobs/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    # Back to the browser's language; a next= off the site goes to the dashboard instead.
    response = browser.post("/accounts/language/", {"language": "", "next": "https://elsewhere.example/"})
    assert response["Location"] == "/"
    assert "Tareas" not in browser.get("/jobs/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_language_switch_needs_csrf(django_user_model, db) -> None:
    user = django_user_model.objects.create_user("luis", password="correct-horse-battery")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.post("/accounts/language/", {"language": "es"}).status_code == 403


def test_sizes_follow_the_language() -> None:
    from django.utils import translation

    from virtstorage.templatetags.sizes import size

    with translation.override("en"):
        assert ">1.5 KiB<" in size(1536) and 'title="1,536 bytes"' in size(1536)
    with translation.override("es"):
        assert ">1,5 KiB<" in size(1536)
        assert ">115 GiB<" in size(123456789012)  # 114.98 GiB, rounded as in a job's messages


def test_sizes_are_written_as_django_writes_numbers() -> None:
    """The size filter's own formatting (separators looked up once per language) against number_format,
    which it replaced for speed, on the number size_parts rounded."""
    from django.utils import translation
    from django.utils.formats import number_format

    from virtstorage.templatetags.sizes import size
    from virtstorage.virt.units import size_parts

    for language in ("en", "es"):
        with translation.override(language):
            for value in (0, 5, 1023, 1024, 1536, 2047, 102359, 123456789, 1024**3 * 1000 - 1, 10**15, -4096,
                          2**63 - 1):
                number, places, unit = size_parts(value)
                expected = (f'<span class="size" title="{number_format(value, force_grouping=True)} bytes">'
                            f"{number_format(number, places)} {unit}</span>")
                assert size(value) == expected, (language, value)


def test_the_provisioning_badge_says_which_in_the_language() -> None:
    from types import SimpleNamespace

    from django.utils import translation

    from virtstorage.templatetags.sizes import provisioning_badge

    thin = SimpleNamespace(is_preallocated=False, thin_savings=1234567)
    full = SimpleNamespace(is_preallocated=True, thin_savings=0)
    with translation.override("en"):
        assert provisioning_badge(thin) == ('<span class="badge info" title="Disk size below virtual size: space is '
                                            'allocated as the guest writes (1,234,567 bytes not yet allocated)">'
                                            "thin</span>")
        assert provisioning_badge(full).startswith('<span class="badge ok" title="Disk size equals virtual size')
        assert provisioning_badge(full).endswith(">preallocated</span>")
    with translation.override("es"):
        assert "1\xa0234\xa0567 bytes aún sin asignar" in provisioning_badge(thin)
        assert provisioning_badge(thin).endswith(">aprovisionamiento fino</span>")
        assert provisioning_badge(full).endswith(">preasignado</span>")


def test_the_libvirt_layer_speaks_the_active_language() -> None:
    """virt/text.py: the translator Django handed it at start-up (accounts/apps.py) follows the active
    language; module-level texts stay English when compared and translate when shown."""
    from django.utils import translation

    from virtstorage.virt import pools as vpools
    from virtstorage.virt.units import UNITS_HELP

    with translation.override("es"):
        with pytest.raises(ValueError) as refused:
            vpools.check_pool_target("relative/dir", ["/var/lib/libvirt/images"])
        assert "absolut" in str(refused.value) and "must be absolute" not in str(refused.value)
        english = "bytes, or K/M/G/T (binary: KiB, MiB, GiB, TiB), e.g. 10G, 512 MiB, 1.5TiB"
        assert UNITS_HELP == english  # compared as English
        assert str(UNITS_HELP) != english and f"{UNITS_HELP}" == str(UNITS_HELP)  # shown in Spanish
    with translation.override("en"):
        with pytest.raises(ValueError) as refused:
            vpools.check_pool_target("relative/dir", ["/var/lib/libvirt/images"])
        assert "must be absolute" in str(refused.value)
