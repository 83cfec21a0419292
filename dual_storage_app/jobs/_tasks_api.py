"""Django's task framework, imported in this one module.

Django 6.0 ships it as ``django.tasks``; on Django 5.2 the ``django-tasks`` package is its
backport, ``django_tasks``, with the same API. The built-in one wins whenever it can be
imported, the rule ``django-tasks-db`` follows too, so our tasks and the backend that runs
them always share one framework. Neither is a :class:`ImproperlyConfigured` naming the
package to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

BUILTIN = "django.tasks"  # Django >= 6.0
BACKPORT = "django_tasks"  # the django-tasks package, for Django 5.2


def load_framework() -> ModuleType:
    """``django.tasks`` when Django has it, else the ``django_tasks`` backport.

    Only the absence of the module itself moves on to the next choice: an import error
    from inside an installed framework is raised as it is."""
    try:
        return importlib.import_module(BUILTIN)
    except ModuleNotFoundError as exc:
        if exc.name != BUILTIN:
            raise
    try:
        return importlib.import_module(BACKPORT)
    except ModuleNotFoundError as exc:
        if exc.name != BACKPORT:
            raise
        raise ImproperlyConfigured(
            "dual_storage_app.jobs needs Django's task framework: django.tasks (Django 6.0 "
            "and later) or, on Django 5.2, its backport, the django-tasks package "
            "(pip install 'dual-storage[tasks]')."
        ) from exc


framework = load_framework()
"""The task framework module in use: ``django.tasks`` or ``django_tasks``."""

_exceptions = importlib.import_module(f"{framework.__name__}.exceptions")

if TYPE_CHECKING:  # typed against the built-in API, which the backport mirrors
    from django.tasks import TaskResultStatus, task, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.exceptions import TaskException
else:
    TaskResultStatus = framework.TaskResultStatus
    task = framework.task
    task_backends = framework.task_backends
    BaseTaskBackend = importlib.import_module(f"{framework.__name__}.backends.base").BaseTaskBackend
    TaskException = _exceptions.TaskException

__all__ = [
    "BACKPORT",
    "BUILTIN",
    "BaseTaskBackend",
    "TaskException",
    "TaskResultStatus",
    "framework",
    "load_framework",
    "task",
    "task_backends",
]
