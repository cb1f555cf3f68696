"""Storage that cleans itself.

Every path that makes objects garbage (a failed or abandoned upload, a deleted photo or board, a late result for a
row that is settled or gone, a removed contributor's photo) records a ``StorageCleanup`` in its own transaction; the
deletion is tried right after the commit and, if storage does not answer, again by the upload sweep
(``sweep.py``) with back-off until it succeeds. The daily ``sweep_storage`` job (``storage_sweep_orphans``)
catches whatever slipped through: objects under ``originals/`` and ``variants/`` that no live row owns, older than
a day. In production an S3 lifecycle rule backs this up for originals that never got processed
(``deploy/resources.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from boardsite import aws, secrets
from boardsite.accounts.models import Avatar
from boardsite.images import cdn
from boardsite.images.models import Image, Status, StorageCleanup, SweepCursor
from offload import aws as offload_aws
from offload.config import AVATARS_SEGMENT, ORIGINALS_PREFIX, VARIANTS_PREFIX
from offload.registry import MODES
from offload.results import parse_avatar_key, parse_key, variants_prefix

log = logging.getLogger(__name__)

RETRY_CAP_SECONDS = 3600
ORPHAN_AGE = dt.timedelta(days=1)


def image_prefixes(original_key: str) -> list[str]:
    """Every object of one image: its original and its variants."""
    try:
        return [original_key, variants_prefix(original_key)]
    except ValueError:  # not our key layout: only the object itself
        return [original_key]


def board_prefixes(board_id: int) -> list[str]:
    # Originals sit under the runtime their upload was routed to (``jobs.place``), or none (before routing).
    runtimes = [f"{ORIGINALS_PREFIX}{runtime}/{board_id}/" for runtime in MODES]
    return [f"{ORIGINALS_PREFIX}{board_id}/", *runtimes, f"{VARIANTS_PREFIX}{board_id}/"]


def storage_cleanup_schedule(
    *,
    prefixes: Iterable[str],
    reason: str,
    delay_seconds: float = 0,
    now: dt.datetime | None = None,
    run_now: bool = True,
) -> StorageCleanup:
    """Record that everything under ``prefixes`` must go (call inside the transaction that makes it garbage).

    Due now: deleted right after the commit (the request does not wait for a retry), unless ``run_now`` is off (a
    batch's caller runs some itself and leaves the rest to the sweep). Later (``delay_seconds``): the sweep deletes it
    then, for bytes that may still arrive until an upload ticket ends.
    """
    now = now or timezone.now()
    row = StorageCleanup.objects.create(
        prefixes=list(prefixes), reason=reason[:200], not_before=now + dt.timedelta(seconds=delay_seconds)
    )
    if delay_seconds <= 0 and run_now:
        transaction.on_commit(lambda: storage_cleanup_run(ids=[row.pk], quick=True))
    return row


def storage_cleanup_run(
    *, ids: list[int] | None = None, now: dt.datetime | None = None, limit: int = 500, quick: bool = False
) -> dict:
    """Delete what is due; failures are kept for later with back-off. Returns counts.

    ``quick``: the attempt right after a person's action: one try with short timeouts, so a slow S3 never holds their
    request (the sweep retries with the patient client).
    """
    now = now or timezone.now()
    due = StorageCleanup.objects.filter(not_before__lte=now)
    if ids is not None:
        due = due.filter(pk__in=ids)
    counts = {"deleted_objects": 0, "done": 0, "failed": 0}
    for row in list(due[:limit]):
        try:
            # A retry invalidates the CDN again: the earlier attempt may have deleted the objects and then failed.
            counts["deleted_objects"] += delete_prefixes(row.prefixes, quick=quick, invalidate=row.attempts > 0)
        except (BotoCoreError, ClientError) as exc:
            row.attempts += 1
            delay = min(60 * 2 ** (row.attempts - 1), RETRY_CAP_SECONDS)
            row.not_before = now + dt.timedelta(seconds=delay)
            row.last_error = f"{type(exc).__name__}: {exc}"[:1000]
            row.save(update_fields=["attempts", "not_before", "last_error"])
            counts["failed"] += 1
            log.warning(
                "could not delete %s (%s); attempt %d, trying again in %ds",
                ", ".join(row.prefixes),
                row.last_error,
                row.attempts,
                delay,
            )
            if isinstance(exc, BotoCoreError):
                break  # storage is unreachable: the rest waits for the next sweep instead of timing out one by one
        else:
            row.delete()
            counts["done"] += 1
    return counts


def delete_prefixes(prefixes: Iterable[str], *, quick: bool = False, invalidate: bool = False) -> int:
    """Delete every object under ``prefixes``; then, in the CloudFront mode, invalidate the variant prefixes that
    held objects (all of them with ``invalidate``), so the edges stop serving them (after: not re-cached meanwhile)."""
    s3, bucket = aws.client("s3", quick=quick), settings.BOARDSITE_BUCKET
    keys: list[str] = []
    held: list[str] = []
    for prefix in prefixes:
        found = offload_aws.list_keys(bucket, prefix, s3)
        keys += found
        if found or invalidate:
            held.append(prefix)
    offload_aws.delete_keys(bucket, keys, s3)
    cdn.invalidate(held, quick=quick)
    return len(keys)


# --- the orphan sweep ------------------------------------------------------------------------------------------


def handler(event: dict[str, Any], context: Any = None) -> dict[str, int]:
    secrets.require()  # a schedule bypasses the middleware
    return storage_sweep_orphans()


def _image_id(key: str) -> uuid.UUID | None:
    """The image a key under originals/ or variants/ belongs to (None when the key is not in our layout)."""
    parts = PurePosixPath(key).parts
    try:
        if key.startswith(ORIGINALS_PREFIX):
            return uuid.UUID(parse_key(key)[1])
        if len(parts) == 4 and key.startswith(VARIANTS_PREFIX):
            return uuid.UUID(parts[2])
    except ValueError:  # parse_key's too
        return None
    return None


def _avatar_of(key: str) -> tuple[str, str] | None:
    """(user id, avatar id) of a profile picture's original or variant (``offload.results.parse_avatar_key``)."""
    if key.startswith(ORIGINALS_PREFIX):
        return parse_avatar_key(key)
    parts = PurePosixPath(key).parts
    if len(parts) == 5 and key.startswith(f"{VARIANTS_PREFIX}{AVATARS_SEGMENT}/"):
        return parts[2], parts[3]
    return None


def _avatars_owned(refs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those of ``refs`` that a person's picture on show, or their upload in flight, still owns."""
    users = {int(user) for user, _ in refs if user.isdigit()}
    owned = set()
    for user_id, shown, pending in Avatar.objects.filter(user_id__in=users).values_list(
        "user_id", "original_key", "pending_key"
    ):
        owned |= {(str(user_id), PurePosixPath(key).stem) for key in (shown, pending) if key}
    return owned


def _garbage(objects: list[dict[str, Any]], older_than: dt.datetime) -> list[str]:
    """The keys among ``objects`` (one page of a listing) that no live row owns and that are old enough."""
    old = [o for o in objects if o["LastModified"] < older_than]
    # Profile pictures share the prefixes: owned by the person's Avatar row, not by a photo.
    avatars = {o["Key"]: ref for o in old if (ref := _avatar_of(o["Key"])) is not None}
    avatars_owned = _avatars_owned(set(avatars.values())) if avatars else set()
    garbage = [key for key, ref in avatars.items() if ref not in avatars_owned]
    old = [o for o in old if o["Key"] not in avatars]
    ids = {i for o in old if (i := _image_id(o["Key"])) is not None}
    # A failed photo that may be processed again keeps its original until its window ends.
    kept = Q(status=Status.FAILED, retryable_until__gt=timezone.now())
    live = {
        (pk, key, board)
        for pk, key, board in Image.objects.filter(Q(pk__in=ids) & (~Q(status=Status.FAILED) | kept)).values_list(
            "pk", "original_key", "board_id"
        )
    }
    # A variant is owned under its photo's board only: copies left by a move that never finished (``bulk.py``), or
    # a late result under the board a photo was moved from, are garbage.
    live_variants, live_originals = {(pk, str(board)) for pk, _, board in live}, {key for _, key, _ in live}
    for o in old:
        key, image_id = o["Key"], _image_id(o["Key"])
        if key.startswith(ORIGINALS_PREFIX):
            owned = key in live_originals
        else:
            owned = (image_id, PurePosixPath(key).parts[1]) in live_variants
        if not owned:
            garbage.append(key)
    return garbage


def storage_sweep_orphans(*, now: dt.datetime | None = None, time_budget: float = 20.0) -> dict[str, int]:
    """Delete objects under ``originals/`` and ``variants/`` that no live row owns and that are older than a day.

    Resumable: a run that uses up ``time_budget`` (the web stage's Lambda timeout is 30 s) records where it stopped
    and the next run goes on from there.
    """
    now = now or timezone.now()
    deadline = time.monotonic() + time_budget
    s3, bucket = aws.client("s3"), settings.BOARDSITE_BUCKET
    cursor, _ = SweepCursor.objects.get_or_create(name="orphans")
    counts = {"listed": 0, "deleted": 0}
    for prefix in (ORIGINALS_PREFIX, VARIANTS_PREFIX):  # in key order, so one cursor moves through both
        start_after = max(cursor.value, prefix)
        if not start_after.startswith(prefix):
            continue  # finished in an earlier run: the cursor is past this prefix
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, StartAfter=start_after)
        for page in pages:
            objects = page.get("Contents", [])
            counts["listed"] += len(objects)
            garbage = _garbage(objects, now - ORPHAN_AGE)
            offload_aws.delete_keys(bucket, garbage, s3)
            counts["deleted"] += len(garbage)
            if objects:
                cursor.value = objects[-1]["Key"]
                cursor.save(update_fields=["value"])
            if time.monotonic() > deadline:
                log.info("sweep_storage: out of time at %s; the next run goes on from there (%s)", cursor.value, counts)
                return counts
    cursor.value = ""
    cursor.save(update_fields=["value"])
    if counts["deleted"]:
        log.info("sweep_storage: %s", counts)
    return counts
