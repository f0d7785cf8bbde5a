"""The layout the README's Architecture section describes, checked from the code's own imports.

Apps stand at the top level in one order, lowest first; a module imports only apps at or below its own.
The libvirt layer (virtstorage/virt/) imports no Django and no app. The project shell (the rest of
virtstorage/: settings, urls, asgi, celery, template tags) stands above every app and no app imports it.
A change that breaks the order, grows a module past ~400 lines or a view past ~40 fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBVIRT_LAYER = "virtstorage.virt"
# Lowest first, as in INSTALLED_APPS and the README. A new app goes where its imports allow.
APPS = ["accounts", "audit", "notifications", "jobs", "hosts", "pools", "volumes", "history", "inventory", "vms",
        "provisioning", "api"]
SHELL = "virtstorage"
MAX_MODULE_LINES = 400
MAX_VIEW_LINES = 40
LONG_MODULES_ALLOWED = {"scripts/vstransfer.py"}  # standalone client, one file to copy (and the libvirt layer)


def _modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module of the apps, the libvirt layer and the shell."""
    found = []
    for top in [*APPS, SHELL]:
        for path in sorted((ROOT / top).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found.append((dotted.removesuffix(".__init__"), path))
    return found


def _imports(path: Path, dotted: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = dotted if path.name == "__init__.py" else dotted.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def _layer(module: str) -> tuple[str, int] | None:
    """Which layer a module belongs to, with its rank (the libvirt layer lowest, the shell highest)."""
    if module == LIBVIRT_LAYER or module.startswith(LIBVIRT_LAYER + "."):
        return "the libvirt layer", -1
    top = module.split(".")[0]
    if top in APPS:
        return top, APPS.index(top)
    if top == SHELL:
        return "the project shell", len(APPS)
    return None


def import_violations() -> list[str]:
    problems = []
    for dotted, path in _modules():
        own = _layer(dotted)
        assert own is not None, dotted
        for line, module in _imports(path, dotted):
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if own[1] == -1 and (module.split(".")[0] == "django" or (_layer(module) or own)[1] > -1):
                problems.append(f"{where}: the libvirt layer imports no Django and no app")
                continue
            target = _layer(module)
            if target is None or target[1] <= own[1]:
                continue
            if target[0] == "the project shell":
                problems.append(f"{where}: apps reach the shell through Django and Celery, never by import")
            else:
                problems.append(f"{where}: {own[0]} is below {target[0]} in the app order")
    return problems


def test_imports_flow_one_way_lowest_first() -> None:
    assert import_violations() == []


def test_the_app_order_is_installed_apps_order() -> None:
    from django.conf import settings

    ours = [app for app in settings.INSTALLED_APPS if app in APPS]
    assert ours == APPS


def test_the_checker_sees_a_violation(tmp_path, monkeypatch) -> None:
    """The check itself can fail: a pools module that imports volumes is reported."""
    fake = tmp_path / "pools"
    fake.mkdir()
    (fake / "bad.py").write_text("from volumes.models import Volume\nfrom virtstorage import settings\n")
    (tmp_path / "virtstorage" / "virt").mkdir(parents=True)
    (tmp_path / "virtstorage" / "virt" / "bad.py").write_text("import django\nfrom hosts import models\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    problems = import_violations()
    assert any("pools/bad.py:1 imports volumes.models" in p for p in problems), problems
    assert any("pools/bad.py:2 imports virtstorage" in p for p in problems), problems
    assert sum("the libvirt layer imports no Django" in p for p in problems) == 2, problems


def _long_modules() -> list[str]:
    paths = [path for _, path in _modules() if not path.is_relative_to(ROOT / "virtstorage" / "virt")]
    paths += sorted((ROOT / "scripts").glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
    return [f"{path.relative_to(ROOT)}: {n} lines" for path in paths
            if "migrations" not in path.parts and str(path.relative_to(ROOT)) not in LONG_MODULES_ALLOWED
            and (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]


def test_no_module_is_two_concepts() -> None:
    assert _long_modules() == []


def _is_view_module(path: Path) -> bool:
    return path.name in ("views.py",) or path.stem.startswith("views_") or path.stem.endswith(("_views", "_view"))


@pytest.mark.parametrize("top", APPS)
def test_views_stay_short(top: str) -> None:
    long_views = []
    for path in sorted((ROOT / top).rglob("*.py")):
        if not _is_view_module(path):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_VIEW_LINES:
                    long_views.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    assert long_views == []
