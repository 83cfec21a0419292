"""Settings for the example project: reads `.env` beside manage.py (never `.env.example`).

Real environment variables win over `.env`. ``make run`` creates `.env` from
`.env.example` when it is missing. By default this is the local demo: ``DEBUG`` on and a
fixed, public ``SECRET_KEY``, both reported as warnings by ``manage.py check`` (the demo
app's checks). With ``DJANGO_DEBUG=0`` and ``DJANGO_SECRET_KEY`` set, the deployment
settings below apply and ``manage.py check --deploy`` passes.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")
(BASE_DIR / "var").mkdir(exist_ok=True)

# Public, so only fit for the local demo; example_project.demo's checks warn about it.
DEMO_SECRET_KEY = "example-project-insecure-key-for-local-use-only"  # noqa: S105
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or DEMO_SECRET_KEY
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
    if host.strip()
]

if not DEBUG:
    # Served over HTTPS (behind a proxy that terminates TLS and sets X-Forwarded-Proto).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = os.environ.get("DJANGO_SECURE_SSL_REDIRECT", "1") == "1"
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "dual_storage_app",
    # Long jobs (`manage.py dualstorage_jobs`) on the database task backend; the
    # framework is django.tasks on Django 6, the django_tasks backport app on 5.2.
    *([] if find_spec("django.tasks") else ["django_tasks"]),
    "django_tasks_db",
    "dual_storage_app.jobs",
    "example_project.demo",
]
# Jobs started without --now wait for a worker: `python manage.py db_worker`.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "example_project.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB_PATH", str(BASE_DIR / "var" / "example.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

# Where the embedded S3 server keeps its data (git-ignored, survives restarts).
DUAL_STORAGE_LOCAL_DATA_DIR = Path(
    os.environ.get("DUAL_STORAGE_LOCAL_DATA_DIR", str(BASE_DIR / "var" / "seaweedfs"))
)
