"""Django settings for the test suite (stores are configured per test by fixtures)."""

import os
from importlib.util import find_spec

from tests.database import database_from_url

SECRET_KEY = "tests-only-not-secret"
DEBUG = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "dual_storage_app",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.request",
            ]
        },
    }
]
# SQLite in memory by default; PostgreSQL when DUAL_STORAGE_TEST_DATABASE_URL names one
# (``postgres://user:password@127.0.0.1:5432/name``; see scripts/pytest_on_postgres.py).
DATABASES = {"default": database_from_url(os.environ.get("DUAL_STORAGE_TEST_DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "/static/"

# Long jobs (dual_storage_app.jobs) on the database task backend, where it is installed
# (the `test` and `tasks` extras; the nox subset sessions install neither). The task
# framework is django.tasks on Django 6, the django_tasks backport app on 5.2.
if find_spec("django_tasks_db") is not None:
    INSTALLED_APPS += [
        *([] if find_spec("django.tasks") else ["django_tasks"]),
        "django_tasks_db",
        "dual_storage_app.jobs",
    ]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
