"""The demo's own system checks: loud about its insecure local defaults.

``DEBUG`` on and the public demo ``SECRET_KEY`` are fine for ``make run`` on your
machine and nowhere else; ``manage.py check`` (and so ``runserver``, ``migrate`` and
``rundemo``) reports each as a Warning until ``DJANGO_DEBUG=0`` and
``DJANGO_SECRET_KEY`` replace them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.security)
def insecure_demo_defaults(**kwargs: Any) -> list[CheckMessage]:
    """``demo.W001`` for DEBUG on, ``demo.W002`` for the public demo SECRET_KEY."""
    from example_project.settings import DEMO_SECRET_KEY

    found: list[CheckMessage] = []
    if settings.DEBUG:
        found.append(
            Warning(
                "DEBUG is on: error pages show settings and source code to every visitor.",
                hint="Fine for the local demo only; set DJANGO_DEBUG=0 anywhere else.",
                id="demo.W001",
            )
        )
    if settings.SECRET_KEY == DEMO_SECRET_KEY:
        found.append(
            Warning(
                "SECRET_KEY is the example project's public demo key: anyone can forge "
                "sessions, password-reset links and signed data.",
                hint="Fine for the local demo only; set DJANGO_SECRET_KEY to a long random "
                "secret anywhere else.",
                id="demo.W002",
            )
        )
    return found
