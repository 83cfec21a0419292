"""Settings of the Django process that ``--only browser`` measures (:mod:`.browser_uploads`).

Everything comes from one environment variable, ``BENCH_BROWSER_CONFIG`` (JSON written
by the bench): the work directory, each store's endpoint and keys, and where the
read-back of a browser upload runs (``DUAL_STORAGE_UPLOADS["CHECK"]``). The rest is
:func:`.djangoenv.bench_settings` (the middleware and apps a project runs, a SQLite file)
plus static files (the admin's widget script, served by ``runserver --insecure``) and the
task framework (``CHECK: "task"``, run by ``manage.py db_worker``), as the example
project installs it. Every store setting is explicit: the environment cannot redirect it.
"""

from __future__ import annotations

import json
import os
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from .djangoenv import bench_settings, bucket_names
from .target import Target

_config: dict[str, Any] = json.loads(os.environ["BENCH_BROWSER_CONFIG"])
_internal: dict[str, str] = _config["internal"]
_external: dict[str, str] = _config["external"]
_workdir = Path(_config["workdir"])
_external_target = Target(
    _external["endpoint_url"],
    _external["access_key"],
    _external["secret_key"],
    _config["bucket"],
    _workdir,
)

globals().update(bench_settings(_external_target))

INSTALLED_APPS: list[str] = [
    *globals()["INSTALLED_APPS"],
    "django.contrib.staticfiles",
    *([] if find_spec("django.tasks") else ["django_tasks"]),
    "django_tasks_db",
    "dual_storage_app.jobs",
]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_workdir / "browser.sqlite3"),
        # The web process and db_worker write to one file: wait for the lock, take it early.
        "OPTIONS": {"timeout": 60, "transaction_mode": "IMMEDIATE"},
    }
}
DUAL_STORAGE: dict[str, str] = {
    "INTERNAL_STORAGE_ENDPOINT": _internal["endpoint_url"],
    "INTERNAL_STORAGE_ACCESS_KEY": _internal["access_key"],
    "INTERNAL_STORAGE_SECRET_KEY": _internal["secret_key"],
    "INTERNAL_STORAGE_REGION": "us-east-1",
    "INTERNAL_STORAGE_PROVIDER": "minio",
    "EXTERNAL_STORAGE_ENDPOINT": _external["endpoint_url"],
    "EXTERNAL_STORAGE_ACCESS_KEY": _external["access_key"],
    "EXTERNAL_STORAGE_SECRET_KEY": _external["secret_key"],
    "EXTERNAL_STORAGE_REGION": "us-east-1",
    "EXTERNAL_STORAGE_PROVIDER": "minio",
    "EXTERNAL_STORAGE_PUBLIC_ENDPOINT": _external["endpoint_url"],
    **bucket_names(_external_target),
}
DUAL_STORAGE_UPLOADS = {"CHECK": _config["check"]}
# Warnings and errors (a failed read-back, say) to stderr, which the bench keeps in a log;
# no line per request.
LOGGING_CONFIG = "logging.config.dictConfig"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {"django.server": {"level": "ERROR"}},
}
