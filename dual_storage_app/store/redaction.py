"""Keep secrets out of Django's error reports: the engine's one import from Django.

Django's debug page and error e-mails print the local variables of every frame; frames
that build a boto3 client or derive a SigV4 signing key hold the secret key.
``sensitive_variables`` (which reads no settings, so it works in a process without
Django configured) hides them in the decorated frame and every frame below it.
"""

from __future__ import annotations

from django.views.decorators.debug import sensitive_variables

__all__ = ["sensitive_variables"]
