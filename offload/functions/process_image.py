"""process_image: an S3 ObjectCreated event on ``originals/`` -> verified display variants under ``variants/``.

Triggered by S3 (Lambda mode), or by the site with an S3-shaped event built from a HEAD of the object (inline and
Celery modes): the same body serves all three. Each processed object yields one result event (``ready`` with the
variants, or ``failed`` with a reason a person can read), sent to the results queue unless the caller passes
``report``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from offload import aws, config, metrics, registry, results
from offload.config import ALLOWED_CONTENT_TYPES, ORIGINALS_PREFIX, SHADOW_PREFIX
from offload.events import SHADOW_MARK, parse_s3_event
from offload.results import AVATAR_RESULT_TYPE, RESULT_TYPE, parse_avatar_key, parse_key, read_manifest, variants_prefix

if TYPE_CHECKING:
    from offload import imaging

log = logging.getLogger(__name__)

MANIFEST = results.MANIFEST


def handler(event: dict[str, Any], context: Any = None, *, report: results.Report | None = None) -> dict[str, Any]:
    """Lambda entry point. Returns the results it reported (useful to callers; Lambda ignores it)."""
    report = report or results.publish
    reported = []
    shadow = event.get(SHADOW_MARK) if isinstance(event, dict) else None
    for ref in parse_s3_event(event):
        if not ref.key.startswith(ORIGINALS_PREFIX):
            log.info("ignoring %s: not under %s", ref.key, ORIGINALS_PREFIX)
            continue
        if shadow and parse_avatar_key(ref.key) is not None:
            # Shadow comparison is by photo (control/shadow.py); an avatar's run is not copied.
            continue
        if shadow:
            # A shadow run (boardsite/control/shadow.py): the same work, its output only under the pair's scratch
            # prefix, the original untouched, reported for comparison, never applied.
            prefix = f"{SHADOW_PREFIX}{shadow['pair']}/"
            result = process_object(bucket=ref.bucket, key=ref.key, output_prefix=prefix)
            if result is not None:
                result["pixels"] = pixels_against_real_run(ref.bucket, ref.key, result)
                report({"type": registry.SHADOW_RESULT, "job": "process_image", "shadow": shadow, "result": result})
                reported.append(result)
            continue
        result = process_object(bucket=ref.bucket, key=ref.key)
        if result is None:
            continue
        report(result)
        _write_manifest(ref.bucket, result)
        reported.append(result)
        if not _exists(aws.client("s3"), ref.bucket, ref.key):
            # The image was deleted while we worked (its result deleted what was there): leave nothing behind.
            aws.delete_keys(ref.bucket, aws.list_keys(ref.bucket, variants_prefix(ref.key)))
    return {"results": reported}


def _failed(base: dict[str, Any], reason: str, started: float) -> dict[str, Any]:
    return {**base, **_usage(started), "status": "failed", "error": reason, "variants": []}


def process_object(*, bucket: str, key: str, output_prefix: str | None = None) -> dict[str, Any] | None:
    """Verify and process one uploaded original. ``None`` when there is nothing (more) to report.

    ``output_prefix`` (a shadow run): write the variants there, whatever was reported before, and leave the
    original's tag alone."""
    cfg = config.load()
    s3 = aws.client("s3")
    started = time.perf_counter()
    avatar = parse_avatar_key(key)
    if avatar is None:
        try:
            board_id, image_id = parse_key(key)
        except ValueError:
            log.warning("ignoring %s: unexpected key layout", key)
            return None
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if aws.is_missing(exc):
            log.info("ignoring %s: the object is gone (image deleted before processing)", key)
            return None
        raise
    etag = head["ETag"].strip('"')
    reported_etag = None if output_prefix else _reported_etag(s3, bucket, key)
    if reported_etag == etag:
        log.info("ignoring duplicate event for %s (etag %s)", key, etag)
        return None
    if reported_etag is not None:
        # Bytes sent again with the same ticket after processing: the variants on record stay as they are.
        log.warning("ignoring %s: replaced after it was processed (etag %s, processed %s)", key, etag, reported_etag)
        return None

    # The same checks and work for a profile picture; only its variants (squares) and where the result goes differ.
    owner = {"user_id": avatar[0], "avatar_id": avatar[1]} if avatar else {"board_id": board_id, "image_id": image_id}
    base: dict[str, Any] = {
        "type": AVATAR_RESULT_TYPE if avatar else RESULT_TYPE,
        "version": 1,
        "bucket": bucket,
        "key": key,
        **owner,
        "source_etag": etag,
        "width": None,
        "height": None,
    }
    size = head["ContentLength"]
    content_type = head.get("ContentType", "")
    meta = head.get("Metadata", {})
    if meta.get("grant") and not avatar:
        # Ticketed by the upload-ticket function: what the site needs to make the photo's row, should this result
        # reach it before the ticket's own event (the policy pinned these values: offload/functions/upload_ticket.py).
        base["ticket"] = {
            "uploader": meta.get("uploader"),
            "grant": meta.get("grant"),
            "filename": meta.get("filename"),
            "ticketed_at": meta.get("ticketed-at"),
            "content_type": content_type,
            "size": size,
        }
    declared = head.get("Metadata", {}).get("declared-size")
    # Real S3 enforces the presigned POST policy; moto does not, and a client is never trusted: check again.
    limit = min(cfg.max_upload_bytes, cfg.avatar_max_bytes) if avatar else cfg.max_upload_bytes
    if size > limit:
        return _failed(base, f"The file is {_mb(size)}, more than the {_mb(limit)} limit.", started)
    if declared is None:
        reason = "The upload did not come through the site's upload form (its declared size is missing)."
        return _failed(base, reason, started)
    if str(size) != declared:
        return _failed(base, f"The file is {size} bytes but the upload declared {declared} bytes.", started)
    if content_type not in ALLOWED_CONTENT_TYPES:
        return _failed(base, f"Files of type {content_type or 'unknown'} are not accepted.", started)

    # IfMatch: the bytes are the ones just checked, not a later upload with the same ticket.
    data = s3.get_object(Bucket=bucket, Key=key, IfMatch=head["ETag"])["Body"].read()
    # What the bytes are, whatever they are called: how a client finds a photo already on the board (the API's lookup).
    base["sha256"] = hashlib.sha256(data).hexdigest()
    # Pillow loads here, not at import: the web side imports this module for its key helpers and must not load it.
    from offload import imaging

    metrics.reset_peak_rss()  # this image's peak, not the largest one this warm Lambda ever processed
    try:
        options = imaging.Options.from_config(cfg)
        if avatar:
            options = replace(options, variants=cfg.avatar_variants)
        processed = imaging.make_variants(data, options)
    except imaging.RejectedImage as exc:
        return _failed(base, str(exc), started)
    except MemoryError:
        return _failed(base, "The image is too large to process.", started)
    except Exception as exc:  # a decoder bug must not leave the image pending: report it, with the cause
        log.exception("processing %s failed", key)
        return _failed(base, f"The image could not be processed ({type(exc).__name__}).", started)
    del data

    prefix = output_prefix or variants_prefix(key)
    variants = []
    stored: dict[int, str] = {}  # id() of the bytes -> key: sizes that coincide (small originals) share one object
    for v in processed.variants:
        if id(v.data) in stored:
            variants.append(_variant_entry(v, stored[id(v.data)]))
            continue
        # Deterministic keys: a redelivered event overwrites, never duplicates.
        variant_key = stored[id(v.data)] = f"{prefix}{v.name}.{v.extension}"
        s3.put_object(
            Bucket=bucket,
            Key=variant_key,
            Body=v.data,
            ContentType=v.content_type,
            CacheControl="private, max-age=31536000, immutable",
            ServerSideEncryption="AES256",
        )
        variants.append(_variant_entry(v, variant_key))
    # Processed: the original is no longer an unconfirmed upload for the bucket's lifecycle rule to expire.
    # Deleted while we worked (a delete, an abandon, a removed contributor): still report, so the site deletes what
    # was just written (see handler). Asked only when the call fails: no extra request for every photo.
    try:
        if output_prefix is None:
            s3.delete_object_tagging(Bucket=bucket, Key=key)
    except ClientError:
        if _exists(s3, bucket, key):
            raise
    return {
        **base,
        **_usage(started),
        "status": "ready",
        "error": None,
        "width": processed.width,
        "height": processed.height,
        "source_format": processed.format,
        "frames": processed.frames,
        "color_converted": processed.color_converted,
        "placeholder": processed.placeholder,
        "dominant_color": processed.dominant_color,
        "taken_at": processed.taken_at,
        "timings_ms": processed.timings_ms,
        "variants": variants,
    }


def _variant_entry(v: imaging.Variant, key: str) -> dict[str, Any]:
    return {
        "name": v.name,
        "key": key,
        "width": v.width,
        "height": v.height,
        "format": v.format,
        "content_type": v.content_type,
        "bytes": len(v.data),
    }


def _usage(started: float) -> dict[str, float]:
    """What this image cost: wall time since the HEAD, and the process's peak memory while processing it."""
    return {"duration_ms": round((time.perf_counter() - started) * 1000, 1), "peak_rss_mb": metrics.peak_rss_mb()}


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _reported_etag(s3: Any, bucket: str, key: str) -> str | None:
    """The source ETag of the result already reported for this original, if any."""
    manifest = results.read_manifest(s3, bucket, variants_prefix(key))
    return None if manifest is None else manifest.get("source_etag") or ""


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if aws.is_missing(exc):
            return False
        raise
    return True


def _write_manifest(bucket: str, result: dict[str, Any]) -> None:
    # Written after the report: a crash in between means a redelivery reports again (the web side is idempotent),
    # never that a result is lost.
    aws.client("s3").put_object(
        Bucket=bucket,
        Key=variants_prefix(result["key"]) + MANIFEST,
        Body=json.dumps(result).encode(),
        ContentType="application/json",
        ServerSideEncryption="AES256",
    )


# How long a shadow run waits for the real run's result to compare pixels with (see pixels_against_real_run).
SHADOW_WAIT_SECONDS = 10.0


def pixels_against_real_run(bucket: str, key: str, result: dict[str, Any]) -> dict[str, str | float]:
    """PSNR (dB, or "identical") of each variant of a shadow run against the real run's, measured here, where Pillow
    is: the deployed web stage that compares the pair has none. Waits up to ``SHADOW_WAIT_SECONDS`` for the real run
    to finish; {} when it has not (the comparison then says pixels were not measured) or either refused the file."""
    from offload.imaging import psnr_db

    if result.get("status") != "ready":
        return {}
    s3 = aws.client("s3")
    deadline = time.monotonic() + SHADOW_WAIT_SECONDS
    while (real := read_manifest(s3, bucket, variants_prefix(key))) is None and time.monotonic() < deadline:
        time.sleep(0.25)
    if real is None or real.get("status") != "ready":
        return {}
    mine = {PurePosixPath(v["key"]).name: v["key"] for v in result.get("variants", [])}
    pixels: dict[str, str | float] = {}
    for variant in real.get("variants", []):
        name = PurePosixPath(variant["key"]).name
        if name not in mine:
            continue
        try:
            value = psnr_db(_read(s3, bucket, variant["key"]), _read(s3, bucket, mine[name]))
        except (ClientError, OSError):
            log.warning("could not compare %s with the real run's", mine[name], exc_info=True)
            continue
        pixels[name] = "identical" if math.isinf(value) else round(value, 2)
    return pixels


def _read(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
