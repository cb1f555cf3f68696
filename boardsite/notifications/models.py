"""What the site tells people: in-app notifications and each person's choices per kind (suppressed addresses are the
mail app's)."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Kind(models.TextChoices):
    PHOTOS_ADDED = "photos_added", "Photos added to your boards"
    BOARD_ADDED = "board_added", "You were added to a board"
    UPLOAD_FAILED = "upload_failed", "Your upload failed"
    OWNERSHIP_OFFERED = "ownership_offered", "A board was offered to you"
    BOARD_INVITED = "board_invited", "You were invited to a board"
    DIGEST = "digest", "Weekly digest of your boards"


class Delivery(models.TextChoices):
    """How a kind reaches a person by email (in the site, every notification is listed whatever the choice)."""

    IMMEDIATELY = "immediately", "Email me straight away"
    DIGEST = "digest", "Only in the weekly digest"
    OFF = "off", "No email"


# Each kind's choice until a person makes one. A failed upload is shown in the site; mailed only if chosen.
DEFAULT_DELIVERY = {
    Kind.PHOTOS_ADDED: Delivery.IMMEDIATELY,
    Kind.BOARD_ADDED: Delivery.IMMEDIATELY,
    Kind.UPLOAD_FAILED: Delivery.OFF,
    Kind.OWNERSHIP_OFFERED: Delivery.IMMEDIATELY,
    Kind.BOARD_INVITED: Delivery.OFF,
    Kind.DIGEST: Delivery.IMMEDIATELY,  # the digest itself: "immediately" means "send it", off means not
}
# Kinds whose mail another app sends (the invitation's own mail): listed in the site, never mailed by the notification
# mailer, not offered on the preferences page.
MAILED_ELSEWHERE = frozenset({Kind.BOARD_INVITED})


class MailState(models.TextChoices):
    NONE = "", "Not mailed"  # in-app only (preference, no confirmed address, a kind never mailed on its own)
    DUE = "due", "Waiting to be mailed"  # ``mail_due_at``: after a burst has been quiet for a while
    # Claimed by a run of the notification mailer (mailer.py); ``mail_due_at`` is then when a later run may take it
    # over (the run that claimed it died): the message key makes that second attempt send nothing if the first had sent.
    SENDING = "sending", "Being mailed"
    SENT = "sent", "Handed to the mail job"
    REJECTED = "rejected", "Refused by the mail service"
    SKIPPED = "skipped", "Not mailed"  # due, but by the time it was due there was no address or the choice changed


class Notification(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    board = models.ForeignKey("boards.Board", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    image = models.ForeignKey("images.Image", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # photos_added: photos in this burst (one notification per recipient, board and uploader while the burst lasts).
    count = models.PositiveIntegerField(default=1)
    # What the message says beyond the relations: a role, a file name and its reason, the board's title when deleted.
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    mail_state = models.CharField(max_length=10, choices=MailState.choices, default=MailState.NONE, blank=True)
    mail_due_at = models.DateTimeField(null=True, blank=True)
    mail_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            # The header's unread count: one query on this partial index.
            models.Index(fields=["user"], condition=Q(read_at__isnull=True), name="notification_unread"),
            # The notifications page, newest first.
            models.Index(fields=["user", "-updated_at", "-id"], name="notification_user_recent"),
            # The mailer's due rows.
            models.Index(fields=["mail_due_at"], condition=Q(mail_state="due"), name="notification_mail_due"),
            # Claims left by a run that died (few rows; without it the mailer would scan the table every minute).
            models.Index(fields=["mail_due_at"], condition=Q(mail_state="sending"), name="notification_mail_sending"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}"


class Preference(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    delivery = models.CharField(max_length=12, choices=Delivery.choices)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="one_preference_per_kind")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}={self.delivery}"


class DigestState(models.TextChoices):
    CLAIMED = "claimed", "Being prepared"  # a run took it; another run takes it over once ``claimed_at`` is stale
    SENT = "sent", "Handed to the mail job"
    EMPTY = "empty", "Nothing to report"


class Digest(models.Model):
    """One person's weekly digest: the row is the claim that makes a second run for the same week send nothing."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    week_start = models.DateTimeField()  # the week is [week_start, week_start + 7 days)
    state = models.CharField(max_length=10, choices=DigestState.choices, default=DigestState.CLAIMED)
    claimed_at = models.DateTimeField()
    photos = models.PositiveIntegerField(default=0)
    missing = models.PositiveIntegerField(default=0)
    notifications = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "week_start"], name="one_digest_per_week")]

    def __str__(self) -> str:
        return f"digest of {self.week_start:%Y-%m-%d} for {self.user_id}: {self.state}"
