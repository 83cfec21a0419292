"""The task framework is imported in one place (``dual_storage_app/jobs/_tasks_api.py``):
``django.tasks`` when Django has it (6.x), else the ``django_tasks`` backport; and the rest
of ``dual_storage_app`` never imports the jobs app at import time, so it works without it.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import types
from importlib.util import find_spec
from pathlib import Path

import django
import pytest
from django.core.exceptions import ImproperlyConfigured

import dual_storage_app
from dual_storage_app.jobs import _tasks_api, tasks
from dual_storage_app.jobs._tasks_api import BACKPORT, BUILTIN, load_framework
from tests.helpers import REPO_ROOT

PACKAGE = Path(dual_storage_app.__file__).parent
JOBS = PACKAGE / "jobs"


def test_the_installed_django_decides() -> None:
    expected = BUILTIN if django.VERSION >= (6, 0) else BACKPORT
    assert _tasks_api.framework.__name__ == expected
    assert load_framework().__name__ == expected


def test_django_6_gets_the_builtin_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: a ``django.tasks`` module is importable, so it wins over the backport."""
    builtin = types.ModuleType(BUILTIN)
    monkeypatch.setitem(sys.modules, BUILTIN, builtin)
    assert load_framework() is builtin


def test_django_5_2_gets_the_backport(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: no ``django.tasks`` (``None`` in sys.modules makes its import fail as a
    missing module does), so the installed backport is used."""
    if find_spec(BACKPORT) is None:
        pytest.skip("the django-tasks backport is not installed (Django 6 needs none)")
    monkeypatch.setitem(sys.modules, BUILTIN, None)
    framework = load_framework()
    assert framework.__name__ == BACKPORT
    assert framework is importlib.import_module("django_tasks")


def test_neither_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, BUILTIN, None)
    monkeypatch.setitem(sys.modules, BACKPORT, None)
    with pytest.raises(ImproperlyConfigured, match=r"dual-storage\[tasks\]") as raised:
        load_framework()
    assert "django.tasks (Django 6.0 and later)" in str(raised.value)


def test_a_broken_framework_is_not_taken_for_a_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """An import error from inside an installed framework (one of its own imports is
    missing) is raised as it is, not answered with the other framework."""
    real_import = importlib.import_module

    def broken(name: str, package: str | None = None) -> types.ModuleType:
        if name == BUILTIN:
            raise ModuleNotFoundError("No module named 'asgiref.sync'", name="asgiref.sync")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match=r"asgiref\.sync"):
        load_framework()


def test_our_tasks_and_the_database_backend_share_one_framework() -> None:
    from django_tasks_db import compat

    name = _tasks_api.framework.__name__
    task_class = importlib.import_module(f"{name}.base").Task
    assert isinstance(tasks.run_batch, task_class)
    assert isinstance(tasks.sweep_job, task_class)
    assert compat.task_backends is _tasks_api.task_backends
    assert tasks.run_batch.module_path == "dual_storage_app.jobs.tasks.run_batch"


def _runtime_imports(path: Path) -> set[str]:
    """Modules imported when ``path`` is imported: statements at module level, outside
    ``if TYPE_CHECKING:`` (imports inside functions run later, if ever)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(getattr(node, "orelse", []))
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                names.add(target)
                names.update(f"{target}.{alias.name}" for alias in node.names)

    visit(tree.body)
    return names


def test_only_the_jobs_app_imports_itself_at_import_time() -> None:
    outside = [
        path
        for path in PACKAGE.rglob("*.py")
        if JOBS not in path.parents and "migrations" not in path.parts
    ]
    assert len(outside) > 40
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(
            name for name in _runtime_imports(path) if name.startswith("dual_storage_app.jobs")
        )
        for path in outside
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_only_one_module_imports_the_task_framework() -> None:
    importers = sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if {"django_tasks", "django.tasks"} & _runtime_imports(path)
        or "import_module(BUILTIN)" in path.read_text()
    )
    assert importers == ["dual_storage_app/jobs/_tasks_api.py"]


_WITHOUT_JOBS = """
import importlib, sys
import django
from django.conf import settings
import tests.settings as suite
values = {name: getattr(suite, name) for name in dir(suite) if name.isupper()}
values.pop("TASKS", None)
values["INSTALLED_APPS"] = [
    app for app in suite.INSTALLED_APPS
    if app not in ("django_tasks", "django_tasks_db", "dual_storage_app.jobs")
]
values["DUAL_STORAGE"] = {
    "INTERNAL_STORAGE_ENDPOINT": "http://127.0.0.1:1", "INTERNAL_STORAGE_ACCESS_KEY": "a",
    "INTERNAL_STORAGE_SECRET_KEY": "b", "EXTERNAL_STORAGE_ENDPOINT": "http://127.0.0.2:2",
    "EXTERNAL_STORAGE_ACCESS_KEY": "c", "EXTERNAL_STORAGE_SECRET_KEY": "d",
}
settings.configure(**values)
django.setup()
import dual_storage_app
from pathlib import Path
root = Path(dual_storage_app.__file__).parent
for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root.parent).with_suffix("").parts
    if parts[1] not in ("jobs", "testing") and "migrations" not in parts:
        importlib.import_module(".".join(parts).removesuffix(".__init__"))
from django.core.management import call_command, CommandError
call_command("check", stdout=open("/dev/null", "w"))
try:
    call_command("dualstorage_jobs", "list")
except CommandError as exc:
    print("refused:", exc)
print("jobs imported:", sorted(m for m in sys.modules if m.startswith("dual_storage_app.jobs")))
print("framework imported:", "django_tasks" in sys.modules)
"""


def test_the_app_works_without_the_jobs_app(tmp_path: Path) -> None:
    """A project without ``dual_storage_app.jobs``: every other module imports, the
    checks pass, and ``dualstorage_jobs`` says what to add."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_JOBS],
        cwd=REPO_ROOT,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "refused: dualstorage_jobs needs the jobs app: add 'dual_storage_app.jobs'"
    )
    assert lines[1:] == ["jobs imported: []", "framework imported: False"]
