"""Invitations to a board by email address (README, "Invitations by email")."""

from django.conf import settings
from django.db import models

from boardsite.boards.models import Board, Role


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Revoked"  # by an owner, or replaced by a newer invitation of the same address


class Invitation(models.Model):
    """One invitation of one address to one board with a role. The link's token is random and only its SHA-256 is
    kept (``token_digest``): a copy of the database opens no board. Expired is not a status: ``expires_at`` says it."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    email_key = models.CharField(max_length=254)  # lower case, as confirmed addresses are compared
    role = models.CharField(max_length=12, choices=Role.choices)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    token_digest = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)  # accepted or revoked

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["board", "status", "email_key"])]
        # One live link per address and board: a second invitation replaces the first (services), also when two
        # owners send one at the same moment.
        constraints = [
            models.UniqueConstraint(
                fields=["board", "email_key"],
                condition=models.Q(status="pending"),
                name="one_pending_invitation_per_address",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.board_id} as {self.role} ({self.status})"
