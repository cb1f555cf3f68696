from __future__ import annotations

from django.db import models


class Action(models.Model):
    """Something staff did in the control room besides routing (a dead letter retried or discarded): the audit."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    by = models.CharField(max_length=150)
    action = models.CharField(max_length=32)  # retry, discard
    job = models.CharField(max_length=64)
    detail = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.by}: {self.action} {self.job}"
