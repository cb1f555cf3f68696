from django.conf import settings
from django.db import models

from boardsite.core.text import VisibleText


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private: members only"
    PUBLIC = "public", "Public: anyone can view"


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    CONTRIBUTOR = "contributor", "Contributor"
    VIEWER = "viewer", "Viewer"


def role_phrase(role: str) -> str:
    """ "an owner", "a contributor", "a viewer": a role in a sentence."""
    label = Role(role).label.lower() if role in Role.values else str(role)
    return f"{'an' if label[:1] in 'aeiou' else 'a'} {label}"


class Order(models.TextChoices):
    ADDED = "added", "Newest added first"
    TAKEN = "taken", "Newest taken first (photos without a date by when they were added)"


class Board(models.Model):
    title = models.CharField(max_length=120, validators=[VisibleText("title")])
    description = models.TextField(max_length=2000, blank=True, validators=[VisibleText("description", multiline=True)])
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    order = models.CharField(max_length=10, choices=Order.choices, default=Order.ADDED)  # of the board's photos
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class Membership(models.Model):
    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=12, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["board", "user"], name="one_membership_per_user")]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.board}"


class OwnershipOffer(models.Model):
    """An owner's offer to hand ``board`` over to another member, who must accept it (then the offering owner becomes
    a contributor). One open offer per board: a new one replaces it. It stands only while its maker is an owner and
    its recipient a member (checked when it is accepted), and for ``OFFER_DAYS``."""

    OFFER_DAYS = 14

    board = models.OneToOneField(Board, on_delete=models.CASCADE, related_name="ownership_offer")
    offered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    offered_to = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.board} offered to {self.offered_to}"
