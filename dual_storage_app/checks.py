"""System checks (``manage.py check``): configuration only, never a network request.

Ids are stable: E001 missing endpoint, E002 missing credentials, E003 bad endpoint URL,
E004 bad public endpoint, E005 unknown provider, E009 bad region, E006 bad bucket name, E007 bad
``DUAL_STORAGE`` setting, E008 two kinds share one bucket; W001 legacy variables in use,
W002 one endpoint for both stores in production, W003 internal and external kinds share a
bucket (an error when DEBUG is off). Probing the stores belongs in a management command.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from .config.sources import SETTINGS_KEY, resolve
from .config.validation import find_problems, unknown_setting_problems
from .exceptions import ConfigurationError


@register("dual_storage")
def check_configuration(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    problems = unknown_setting_problems(getattr(settings, SETTINGS_KEY, {}))
    try:
        values = resolve()
    except ConfigurationError as exc:  # pragma: no cover - resolve() only raises on overrides
        return [Error(str(exc), id="dual_storage_app.E007")]
    problems += find_problems(values, production=not settings.DEBUG)
    return [
        (Error if problem.is_error else Warning)(problem.message, hint=problem.hint, id=problem.id)
        for problem in problems
    ]
