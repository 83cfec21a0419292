"""What the demo has seeded, so ``rundemo`` seeds each kind once and never again."""

from __future__ import annotations

from django.db import models


class DemoSeed(models.Model):
    """One row per artifact kind ``rundemo`` has dealt with: it either saved the demo
    row (``seeded``) or found the kind already holding rows and left them alone. Either
    way the kind is never seeded again, so a demo row the user renamed, replaced or
    deleted stays as the user left it."""

    kind = models.CharField(max_length=32, unique=True)
    seeded = models.BooleanField()
    at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.kind}: {'seeded' if self.seeded else 'kept existing rows'}"
