"""Addresses the site no longer mails."""

from django.db import models


class Suppression(models.Model):
    """An address SES reported as bouncing hard or complaining: the site stops mailing it (compared in lower case)."""

    address_key = models.CharField(max_length=254, unique=True)
    reason = models.CharField(max_length=20)  # "bounce" or "complaint"
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Moved from the notifications app with its rows: the table keeps its name (mail/migrations/0001_initial.py).
        db_table = "notifications_suppression"

    def __str__(self) -> str:
        return f"{self.address_key} ({self.reason})"
