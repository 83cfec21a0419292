"""A user's minimal project against the installed dual-storage wheel (issue 11, part 5).

Run it with the Python of a clean virtual environment that has the wheel installed (with
its ``local`` extra for the ``weed`` binary), from a directory outside the source tree::

    python /path/to/scripts/check_wheel.py --wheel dist/dual_storage-0.1.0-py3-none-any.whl

It checks the wheel's files (templates and ``py.typed`` in, no ``tests/``, ``bench/`` or
``example_project/``), then writes a fresh Django project to a temporary folder whose
``DUAL_STORAGE`` points at an embedded SeaweedFS (``LocalS3Server`` from the installed
package) and, through that project: runs ``migrate``, saves a ``ModelWeight`` and a
``Dataset``, renders the admin changelist and the presign action's pages (the package's
templates) with the test client, and fetches the dataset's presigned link. Exit 0 and
one line per check when everything holds; exit 1 naming the first failure otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import sysconfig
import tempfile
import textwrap
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

TOP_LEVEL_REFUSED = ("tests/", "bench/", "example_project/", "scripts/", "docs/")
REQUIRED_FILES = (
    "dual_storage_app/py.typed",
    "dual_storage_app/templates/dual_storage_app/admin/presign_form.html",
    "dual_storage_app/templates/dual_storage_app/admin/presign_result.html",
    "dual_storage_app/templates/dual_storage_app/widgets/direct_upload.html",
    "dual_storage_app/static/dual_storage_app/direct_upload.js",
    "dual_storage_app/static/dual_storage_app/direct_upload.css",
)
PROJECT = "wheelcheck"


def say(message: str) -> None:
    print(f"check_wheel: {message}", flush=True)


class CheckFailed(Exception):
    """One check that did not hold."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def check_wheel_contents(wheel: Path) -> None:
    """The wheel ships the package data and none of the repository's other folders."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(metadata_name).decode()
    for required in REQUIRED_FILES:
        check(required in names, f"{wheel.name} lacks {required}")
    refused = sorted(n for n in names if n.startswith(TOP_LEVEL_REFUSED))
    check(not refused, f"{wheel.name} ships files outside the package: {refused[:5]}")
    tops = sorted({n.split("/", 1)[0] for n in names})
    check(
        all(top == "dual_storage_app" or top.endswith(".dist-info") for top in tops),
        f"unexpected top-level entries in {wheel.name}: {tops}",
    )
    check("License-Expression: MIT" in metadata, "METADATA has no License-Expression: MIT")
    say(
        f"{wheel.name}: {len(names)} files, templates, static files and py.typed present, "
        f"no {TOP_LEVEL_REFUSED}"
    )


def check_installed_not_source() -> None:
    """dual_storage_app comes from this interpreter's site-packages, not a checkout."""
    import dual_storage_app

    location = Path(dual_storage_app.__file__).resolve()
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    check(site in location.parents, f"dual_storage_app imported from {location}, not {site}")
    say(f"dual_storage_app imported from {location.parent}")


def write_project(root: Path, endpoint: str, access_key: str, secret_key: str) -> None:
    """A minimal Django project, as a user of the package would write it."""
    package = root / PROJECT
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(
        textwrap.dedent(
            f"""\
            SECRET_KEY = "check-wheel-only"
            DEBUG = False
            ALLOWED_HOSTS = ["testserver"]
            INSTALLED_APPS = [
                "django.contrib.admin",
                "django.contrib.auth",
                "django.contrib.contenttypes",
                "django.contrib.sessions",
                "django.contrib.messages",
                "django.contrib.staticfiles",
                "dual_storage_app",
            ]
            MIDDLEWARE = [
                "django.contrib.sessions.middleware.SessionMiddleware",
                "django.middleware.csrf.CsrfViewMiddleware",
                "django.contrib.auth.middleware.AuthenticationMiddleware",
                "django.contrib.messages.middleware.MessageMiddleware",
            ]
            ROOT_URLCONF = "{PROJECT}.urls"
            TEMPLATES = [
                {{
                    "BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True,
                    "OPTIONS": {{
                        "context_processors": [
                            "django.template.context_processors.request",
                            "django.contrib.auth.context_processors.auth",
                            "django.contrib.messages.context_processors.messages",
                        ]
                    }},
                }}
            ]
            DATABASES = {{
                "default": {{
                    "ENGINE": "django.db.backends.sqlite3",
                    "NAME": {str(root / "db.sqlite3")!r},
                }}
            }}
            DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
            USE_TZ = True
            STATIC_URL = "/static/"
            DUAL_STORAGE = {{
                "INTERNAL_STORAGE_ENDPOINT": {endpoint!r},
                "INTERNAL_STORAGE_ACCESS_KEY": {access_key!r},
                "INTERNAL_STORAGE_SECRET_KEY": {secret_key!r},
                "EXTERNAL_STORAGE_ENDPOINT": {endpoint!r},
                "EXTERNAL_STORAGE_ACCESS_KEY": {access_key!r},
                "EXTERNAL_STORAGE_SECRET_KEY": {secret_key!r},
            }}
            """
        )
    )
    (package / "urls.py").write_text(
        textwrap.dedent(
            """\
            from django.contrib import admin
            from django.urls import include, path

            urlpatterns = [
                path("admin/", admin.site.urls),
                path("storage/", include("dual_storage_app.urls")),
            ]
            """
        )
    )


def run_project(root: Path) -> None:
    """migrate, two model saves, admin pages with the package's templates, a link."""
    sys.path.insert(0, str(root))
    os.environ["DJANGO_SETTINGS_MODULE"] = f"{PROJECT}.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from dual_storage_app.client import dual_storage
    from dual_storage_app.models import Dataset, ModelWeight

    setup_test_environment()  # the test client then records the templates it renders
    call_command("migrate", verbosity=0)
    say(f"migrate: ok (Django {django.get_version()})")
    created = dual_storage.create_buckets()
    say(f"buckets: {sorted(created)}")

    weights = b"weights " * 4096
    weight = ModelWeight(name="resnet", framework="pytorch")
    weight.file.save("resnet.pth", ContentFile(weights), save=False)
    weight.save()
    weight.refresh_from_db()
    check(weight.sha256 == hashlib.sha256(weights).hexdigest(), "ModelWeight SHA-256 differs")
    check(dual_storage.head("weights", weight.key).size == len(weights), "weight not stored")
    dataset = Dataset(name="digits", description="a user's dataset")
    data = b"dataset bytes\n" * 1000
    dataset.file.save("digits.csv", ContentFile(data), save=False)
    dataset.save()
    say(f"saved ModelWeight {weight.key} and Dataset {dataset.key}")

    admin = get_user_model().objects.create_superuser("admin", "admin@example.invalid", None)
    browser = Client()
    browser.force_login(admin)
    page: Any = browser.get(reverse("admin:dual_storage_app_modelweight_changelist"))
    check(page.status_code == 200, f"ModelWeight changelist: HTTP {page.status_code}")
    check("resnet" in page.content.decode(), "the changelist does not list the weight")
    check("admin/change_list.html" in [t.name for t in page.templates], "no change_list.html")
    changelist = reverse("admin:dual_storage_app_dataset_changelist")
    selection = {"action": "create_presigned_links", "_selected_action": [dataset.pk]}
    form: Any = browser.post(changelist, selection)
    templates = [t.name for t in form.templates]
    check(form.status_code == 200, f"presign action: HTTP {form.status_code}")
    check("dual_storage_app/admin/presign_form.html" in templates, f"templates: {templates}")
    result: Any = browser.post(changelist, {**selection, "expires": "120", "apply": "1"})
    templates = [t.name for t in result.templates]
    check("dual_storage_app/admin/presign_result.html" in templates, f"templates: {templates}")
    say("admin: changelist and presign action pages rendered with the package's templates")

    url = result.context["links"][0].url
    check("X-Amz-Expires=120" in url, f"the link does not expire in 120 s: {url}")
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310  (loopback)
        body = response.read()
    check(body == data, "the presigned link returned other bytes")
    say(f"presigned link: {len(body)} bytes, as saved ({url.split('?', 1)[0]})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="also check this wheel's files")
    args = parser.parse_args(argv)
    from dual_storage_app.testing.server import LocalS3Server, free_port_pair

    try:
        if args.wheel is not None:
            check_wheel_contents(args.wheel)
        check_installed_not_source()
        with tempfile.TemporaryDirectory(prefix="dual-storage-wheel-") as tmp:
            root = Path(tmp)
            (root / "s3").mkdir()
            server = LocalS3Server(data_dir=root / "s3", s3_port=free_port_pair()).start()
            try:
                keys = (server.access_key, server.secret_key)
                write_project(root / "project", server.endpoint_url, *keys)
                run_project(root / "project")
            finally:
                server.kill()
    except CheckFailed as exc:
        say(f"FAILED: {exc}")
        return 1
    say("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
