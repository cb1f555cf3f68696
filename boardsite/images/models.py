import uuid

from django.conf import settings
from django.db import models


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
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=50)
    declared_size = models.PositiveBigIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    caption = models.CharField(max_length=500, blank=True)
    source_etag = models.CharField(max_length=64, blank=True)
    # Painted before any variant loads: a tiny WebP data: URI (about 200 bytes) and the dominant colour.
    placeholder = models.TextField(blank=True)
    dominant_color = models.CharField(max_length=7, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

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
