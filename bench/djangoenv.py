"""Django, configured in the current process for the bench: both stores on its server.

``configure(target)`` sets up a real Django stack (admin, auth, sessions, messages, CSRF:
the middleware a project runs) with a SQLite file in ``target.workdir`` and ``DUAL_STORAGE``
pointing both stores at ``target.endpoint_url``, migrates, and creates the four buckets
(``<target.bucket>-weights`` ...; one bucket per kind, as the system checks require).
Nothing here reads ``DJANGO_SETTINGS_MODULE`` or the ``*_STORAGE_*`` environment: every
store setting is given explicitly, so the caller's environment cannot redirect the bench.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import django
from django.conf import settings

from .target import Target

if TYPE_CHECKING:
    from django.contrib.auth.models import User

SUPERUSER = "bench-admin"
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

_configured_for: Target | None = None


def bucket_names(target: Target) -> dict[str, str]:
    """The bucket setting of each kind: ``<target.bucket>-weights`` and so on."""
    return {
        "INTERNAL_BUCKET_WEIGHTS": f"{target.bucket}-weights",
        "INTERNAL_BUCKET_CHECKPOINTS": f"{target.bucket}-checkpoints",
        "INTERNAL_BUCKET_SCHEMAS": f"{target.bucket}-schemas",
        "EXTERNAL_BUCKET_DATASETS": f"{target.bucket}-datasets",
    }


def dual_storage_settings(target: Target) -> dict[str, str]:
    """``settings.DUAL_STORAGE``: every store setting explicit (env cannot override)."""
    values: dict[str, str] = {}
    for store in ("INTERNAL", "EXTERNAL"):
        values[f"{store}_STORAGE_ENDPOINT"] = target.endpoint_url
        values[f"{store}_STORAGE_ACCESS_KEY"] = target.access_key
        values[f"{store}_STORAGE_SECRET_KEY"] = target.secret_key
        values[f"{store}_STORAGE_REGION"] = target.region
        values[f"{store}_STORAGE_PROVIDER"] = "minio"
    values["EXTERNAL_STORAGE_PUBLIC_ENDPOINT"] = target.endpoint_url
    return {**values, **bucket_names(target)}


def bench_settings(target: Target) -> dict[str, Any]:
    """The keyword arguments of ``settings.configure`` for ``target``."""
    workdir = Path(target.workdir)
    uploads = workdir / "django-uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    return {
        "DEBUG": False,
        "SECRET_KEY": "bench-only-not-secret-" + "x" * 40,
        "ALLOWED_HOSTS": ["127.0.0.1", "localhost", "testserver"],
        "INSTALLED_APPS": [
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "dual_storage_app",
        ],
        "MIDDLEWARE": MIDDLEWARE,
        "ROOT_URLCONF": "example_project.urls",  # admin/ and storage/, as a project has
        "TEMPLATES": [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(workdir / "bench.sqlite3"),
            }
        },
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "USE_TZ": True,
        "STATIC_URL": "/static/",
        # Django's default upload handlers: > 2.5 MB goes to a temp file, here in workdir.
        "FILE_UPLOAD_TEMP_DIR": str(uploads),
        "DUAL_STORAGE": dual_storage_settings(target),
        "LOGGING_CONFIG": None,  # no console handlers: the bench prints its own output
    }


def configure(target: Target) -> None:
    """Configure and set up Django for ``target``, migrate, and create the buckets.

    Idempotent for the same target; a second, different target in one process is an
    error (Django cannot be configured twice).
    """
    global _configured_for
    if _configured_for is not None:
        if _configured_for != target:
            raise RuntimeError(
                f"Django is already configured for {_configured_for.endpoint_url}; "
                "use a new process for another target."
            )
        return
    if settings.configured:
        raise RuntimeError("Django was configured by someone else; bench needs its own settings.")
    settings.configure(**bench_settings(target))
    django.setup()

    from django.core.management import call_command

    from dual_storage_app.client import dual_storage

    call_command("migrate", verbosity=0, interactive=False)
    dual_storage.create_buckets()
    _configured_for = target


def superuser() -> User:
    """The bench's superuser (created on first use; no usable password)."""
    from django.contrib.auth.models import User

    user, created = User.objects.get_or_create(
        username=SUPERUSER, defaults={"is_staff": True, "is_superuser": True}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def login_session(user: User) -> str:
    """A saved session in which ``user`` is logged in; returns its key (the cookie value)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    assert session.session_key is not None
    return session.session_key
