"""Why an import path is refused is worded for imports (the import roots, IMPORT_ROOTS), in every language: the
rule is the pool directories' own (virt/pools.check_pool_target), its refusals not rewritten after the fact."""

from __future__ import annotations

import os

import pytest
from django.utils import translation

from volumes.image_files import resolve_import_path


@pytest.fixture
def tree(tmp_path, settings):
    root = tmp_path / "images"
    (root / ".secret").mkdir(parents=True)
    (root / ".secret" / "disk.img").write_bytes(b"\0" * 512)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "disk.img").write_bytes(b"\0" * 512)
    os.symlink(tmp_path / "elsewhere" / "disk.img", root / "link.img")
    settings.IMPORT_ROOTS = [str(root)]
    return tmp_path


CASES = {  # path -> (what the English refusal says, what the Spanish one says)
    "elsewhere/disk.img": ("is outside the import roots", "fuera de las raíces de importación"),
    "images/link.img": ("is outside the import roots", "fuera de las raíces de importación"),
    "images/.secret/disk.img": ("nothing is imported from hidden directories", "no se importa nada de directorios"),
    "/etc/passwd": ("nothing is imported from there", "no se importa nada de ahí"),
}


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("path", list(CASES))
def test_a_refused_import_path_says_why_in_words_for_imports(tree, path, language):
    with translation.override(language), pytest.raises(ValueError) as refused:
        resolve_import_path(path if path.startswith("/") else str(tree / path))
    message = str(refused.value)
    assert CASES[path][language == "es"] in message, message
    assert "IMPORT_ROOTS" in message and "POOL_ROOTS" not in message, message
    assert "pool" not in message.lower(), message  # nothing of the pool directories' wording is left


def test_with_no_roots_at_all_the_refusal_names_the_import_setting(tree, settings):
    settings.IMPORT_ROOTS, settings.POOL_ROOTS = [], []  # imports fall back to the pool roots: none either
    with pytest.raises(ValueError, match="No import roots are configured: set IMPORT_ROOTS"):
        resolve_import_path(str(tree / "elsewhere" / "disk.img"))
