import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce

from boardsite.core.text import VisibleText


class Status(models.TextChoices):
    PENDING = "pending"  # ticket issued, bytes not yet confirmed
    PROCESSING = "processing"  # the browser reported the upload finished; the job is running
    READY = "ready"
    FAILED = "failed"


class Image(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    board = models.ForeignKey("boards.Board", on_delete=models.CASCADE, related_name="images")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    original_key = models.CharField(max_length=255, unique=True)
    filename = models.CharField(max_length=255, validators=[VisibleText("file name")])
    content_type = models.CharField(max_length=50)
    declared_size = models.PositiveBigIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    caption = models.CharField(max_length=500, blank=True, validators=[VisibleText("caption")])
    source_etag = models.CharField(max_length=64, blank=True)
    # SHA-256 of the original's bytes, as the processor read them (hex): the API's lookup of photos already on a board.
    content_sha256 = models.CharField(max_length=64, blank=True, default="")
    # Painted before any variant loads: a tiny WebP data: URI (about 200 bytes) and the dominant colour.
    placeholder = models.TextField(blank=True)
    dominant_color = models.CharField(max_length=7, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When it was taken, from its EXIF (the camera's clock; UTC when the camera gave no offset). Null when unknown.
    taken_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Processing attempts started, and when the latest began: the sweep starts another when a trigger was lost.
    attempts = models.PositiveSmallIntegerField(default=0)
    attempt_started_at = models.DateTimeField(null=True, blank=True)
    # Failed for a passing reason (processing never finished: storage, a time-out, throttling), not a refused file:
    # the original is kept until then, and staff may process it again (boardsite/control/).
    retryable_until = models.DateTimeField(null=True, blank=True)
    # Deleted in a batch (``bulk.py``): hidden everywhere at once, the row and its objects go once this has passed
    # (the undo window), by the upload sweep if nobody finishes it sooner. Undo clears it.
    deleting_until = models.DateTimeField(null=True, blank=True, db_index=True)
    deleting_batch = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The quotas count a person's recent tickets; the sweep looks for unsettled rows.
            models.Index(fields=["uploaded_by", "created_at"], name="image_uploader_recent"),
            models.Index(fields=["status", "created_at"], name="image_status_age"),
            # A board's pages, newest first, by keyset on (created_at, id).
            models.Index(fields=["board", "-created_at", "-id"], name="image_board_recent"),
            # Boards shown by date taken: photos without one by the date added.
            models.Index(
                F("board"),
                Coalesce("taken_at", "created_at").desc(),
                F("id").desc(),
                name="image_board_taken",
            ),
            # Board cards: a board's ready photos, newest first. Its cover is the first entry and its count an
            # index-only scan of the board's range (without it PostgreSQL counted by reading the whole table).
            models.Index(
                fields=["board", "-created_at", "-id"],
                condition=Q(status=Status.READY, deleting_until__isnull=True),
                name="image_board_ready",
            ),
            # The API's lookup: which of these contents are on the board already.
            models.Index(fields=["board", "content_sha256"], name="image_board_content"),
        ]

    def __str__(self) -> str:
        return self.filename


class Variant(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=20)
    key = models.CharField(max_length=255)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)  # webp, jpeg or avif
    content_type = models.CharField(max_length=30, default="image/jpeg")
    bytes = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "name", "format"], name="one_variant_per_name_and_format")
        ]
        ordering = ["width"]

    def __str__(self) -> str:
        return f"{self.image_id}/{self.name}.{self.format} ({self.width}×{self.height})"


class UploadTicket(models.Model):
    """Every upload ticket issued, kept for a day whatever becomes of its photo or board.

    The quotas count these, not photos: a presigned POST stays usable until it expires even when its photo (or the
    whole board) is deleted, so deleting must not give the place back. The upload sweep (``sweep.py``) forgets them
    after a day.
    """

    image_id = models.UUIDField(unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField()
    # Issued by the upload-ticket function under this grant (its ``image.ticketed`` event applied): while the grant
    # is live its reservation counts instead (``grants.py``).
    grant_id = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"], name="ticket_user_recent")]

    def __str__(self) -> str:
        return f"ticket {self.image_id} ({self.size} bytes)"


class StorageCleanup(models.Model):
    """Objects that must be deleted: every object under each of ``prefixes`` (an image's original key and its
    variants prefix, or a whole board's prefixes).

    Recorded in the same transaction that makes them garbage, tried right after the commit, and retried by
    the upload sweep (with back-off) until storage answers: a delete that fails while S3 is down is never forgotten.
    ``not_before`` also serves bytes that may still arrive: an abandoned upload is cleaned again once its ticket ends.
    """

    prefixes = models.JSONField()
    reason = models.CharField(max_length=200)
    not_before = models.DateTimeField(db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["not_before", "pk"]

    def __str__(self) -> str:
        return f"delete {', '.join(self.prefixes)} ({self.reason})"


class SweepCursor(models.Model):
    """Where a long listing stopped (the orphan sweep resumes there on its next run)."""

    name = models.CharField(max_length=50, primary_key=True)
    value = models.CharField(max_length=1024, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


class UploadGrant(models.Model):
    """A signed upload grant (``boardsite/images/grants.py``): the upload-ticket function may issue up to
    ``tickets`` tickets of ``bytes`` bytes in all for this person on this board until ``expires_at``. Reserved against
    the person's and the board's allowances from the moment it is signed until its last ticket can no longer be used
    (``live_until``), so quotas hold whichever runtime issues the tickets."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    board = models.ForeignKey("boards.Board", on_delete=models.CASCADE, related_name="+")
    tickets = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    live_until = models.DateTimeField(db_index=True)  # expires_at + a ticket's lifetime and its grace
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "live_until"], name="grant_user_live")]

    def __str__(self) -> str:
        return f"grant {self.id}: {self.tickets} tickets, {self.bytes} bytes until {self.expires_at:%H:%M:%S}"


class DeletedImage(models.Model):
    """A photo that was deleted: a late or repeated ``image.ticketed`` event or result for it must not bring it back
    (``results.py``). Forgotten after the events' longest life (the sweep)."""

    id = models.UUIDField(primary_key=True)
    deleted_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"deleted {self.id}"


class BatchAction(models.TextChoices):
    DELETE = "delete"
    MOVE = "move"


class PhotoBatch(models.Model):
    """Photos deleted or moved in one request (``bulk.py``): what its undo needs, for ``undo_until``. The deleted
    photos themselves carry ``deleting_batch``; a move lists its photos here (they may be moved back). Forgotten
    after a day (the upload sweep)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=10, choices=BatchAction.choices)
    board = models.ForeignKey("boards.Board", on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey("boards.Board", on_delete=models.CASCADE, related_name="+", null=True, blank=True)
    image_ids = models.JSONField(default=list)
    created_at = models.DateTimeField(db_index=True)
    undo_until = models.DateTimeField()
    undone_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.action} of {len(self.image_ids)} photos by {self.user_id}"
