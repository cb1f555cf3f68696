"""Shadow runs: a sampled share of a job's work runs a second time on the other runtime, and the two are compared.

The door (``boardsite/core/jobs.py`` ``shadow``) samples units by a hash (the route's ``shadow_share``, within its
``shadow_daily_cap``), and hands the same event, marked, to the other runtime off the caller's path; one sample in
``routing.NOISE_EVERY`` runs on the same runtime twice instead, which measures how much two runs differ when nothing
differs. A shadow-capable handler writes only under ``shadow/<pair>/``, changes no row, sends no mail, and reports a
``registry.SHADOW_RESULT``. Here (``shadow_apply``, the applier of that type) the pair is recorded, and compared with
the real run once that has settled (at once, or by the watch every minute), by the job's own comparison (its
registry entry's ``shadow``).

Mail (``compare_mail``): a shadow run of send_email renders the message and never sends it; the real run's marker
(``mail-sent/<message id>``) keeps the digest of what it sent. Both sent/rendered with the same digest, or both
refused for the same reason.

Photos (``compare_images``): the outcome (both ready, or both refused for the same reason), the variants (the same
names and dimensions), the bytes of each (within ``BYTES_TOLERANCE``) and the pixels of each (PSNR at least
``PSNR_MIN_DB``; identical images have an infinite PSNR), with each run's duration and peak memory. A difference
counts as a mismatch only when it is larger than any noise pair showed: the thresholds loosen to what the same
runtime twice produced. Shadow outputs are deleted after ``SHADOW_KEEP_HOURS`` (the watch; in production also the
bucket's lifecycle rule).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import uuid
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from boardsite import aws
from boardsite.core.models import JobRun, ShadowPair
from boardsite.images.models import Image, Status
from offload import registry
from offload.aws import is_missing
from offload.config import MAIL_SENT_PREFIX, SHADOW_PREFIX
from offload.results import parse_key, read_manifest, variants_prefix

log = logging.getLogger(__name__)

PSNR_MIN_DB = 40.0
BYTES_TOLERANCE = 0.10  # of the larger of the two
SHADOW_KEEP_HOURS = 24
GIVE_UP_AFTER = dt.timedelta(hours=1)  # a real run that never settles leaves its pair uncompared


def shadow_apply(*, result: dict[str, Any]) -> bool:
    """Record a shadow run's report (the applier of ``registry.SHADOW_RESULT``), and compare it if it can be."""
    mark, job = result.get("shadow") or {}, result.get("job")
    try:
        uuid.UUID(str(mark.get("pair")))
        well_formed = mark.get("runtime") in registry.MODES and mark.get("primary") in registry.MODES
    except ValueError:
        well_formed = False
    if job not in registry.JOBS or not well_formed:
        raise ValueError(f"not a shadow result: {str(result)[:200]}")
    try:
        with transaction.atomic():
            pair = ShadowPair.objects.create(
                pair_id=mark["pair"],
                job=job,
                unit=str(mark.get("unit", ""))[:255],
                primary_runtime=mark.get("primary", ""),
                shadow_runtime=mark.get("runtime", ""),
                noise=bool(mark.get("noise")),
                shadow_result=result.get("result") or {},
            )
    except IntegrityError:
        return False  # delivered twice
    compare(pair)
    return True


def compare(pair: ShadowPair, *, now: dt.datetime | None = None) -> bool:
    """Compare one pair with its job's comparison; False while the real run has not settled."""
    comparer = import_string(registry.get(pair.job).shadow)  # type: ignore[arg-type]  # only shadow jobs have pairs
    found = comparer(pair)
    now = now or timezone.now()
    if found is None:
        if now - pair.created_at < GIVE_UP_AFTER:
            return False
        found = {"agreed": None, "checks": {"primary": "the real run never settled"}}
    pair.agreed, pair.comparison, pair.compared_at = found["agreed"], found, now
    pair.save(update_fields=["agreed", "comparison", "compared_at"])
    return True


def compare_waiting(*, now: dt.datetime | None = None, limit: int = 200) -> int:
    """Compare the pairs still waiting for their real run (the watch, every minute); how many were compared."""
    done = 0
    for pair in ShadowPair.objects.filter(compared_at__isnull=True).order_by("created_at")[:limit]:
        done += compare(pair, now=now)
    return done


def expire(*, now: dt.datetime | None = None) -> int:
    """Delete the outputs of pairs older than ``SHADOW_KEEP_HOURS``; how many pairs' outputs went."""
    now = now or timezone.now()
    old = ShadowPair.objects.filter(created_at__lt=now - dt.timedelta(hours=SHADOW_KEEP_HOURS), outputs_deleted=False)
    count = 0
    s3 = aws.client("s3")
    for pair in old[:500]:
        prefix = f"{SHADOW_PREFIX}{pair.pair_id}/"
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=settings.BOARDSITE_BUCKET, Prefix=prefix)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=settings.BOARDSITE_BUCKET, Delete={"Objects": [{"Key": k} for k in keys]})
        pair.outputs_deleted = True
        pair.save(update_fields=["outputs_deleted"])
        count += 1
    return count


# --- photos ------------------------------------------------------------------------------------------------------


def thresholds(job: str) -> tuple[float, float]:
    """(PSNR floor in dB, byte tolerance) for real mismatches: the defaults, loosened to what noise pairs showed."""
    floor, tolerance = PSNR_MIN_DB, BYTES_TOLERANCE
    noise = ShadowPair.objects.filter(job=job, noise=True, compared_at__isnull=False).order_by("-created_at")[:200]
    for pair in noise:
        for variant in pair.comparison.get("variants", []):
            if variant.get("psnr_db") is not None:
                floor = min(floor, variant["psnr_db"] - 1)
            if variant.get("bytes_diff") is not None:
                tolerance = max(tolerance, variant["bytes_diff"] + 0.01)
    return floor, tolerance


def compare_images(pair: ShadowPair) -> dict[str, Any] | None:
    """How a shadow run of process_image agrees with the real one; None while the photo is still processing."""
    try:
        _, image_id = parse_key(pair.unit)
        image = Image.objects.filter(pk=image_id).first()
    except (ValueError, ValidationError):
        image = None
    if image is None:
        return {"agreed": None, "checks": {"primary": "the photo was deleted"}}
    if image.status not in (Status.READY, Status.FAILED):
        return None
    s3 = aws.client("s3")
    primary = read_manifest(s3, settings.BOARDSITE_BUCKET, variants_prefix(pair.unit)) or {
        "status": image.status,
        "error": image.error,
        "variants": [],
    }
    shadow = pair.shadow_result
    checks: dict[str, Any] = {}
    same_outcome = primary.get("status") == shadow.get("status") and (
        primary.get("status") == "ready" or primary.get("error") == shadow.get("error")
    )
    checks["outcome"] = {
        "passed": same_outcome,
        "found": f"{primary.get('status')} / {shadow.get('status')}"
        + (f" ({primary.get('error')} / {shadow.get('error')})" if primary.get("status") == "failed" else ""),
    }
    floor, tolerance = thresholds(pair.job)
    variants = []
    # A variant is its file name (name and format: thumb.jpg, thumb.webp …), the same under either prefix.
    mine = {PurePosixPath(v["key"]).name: v for v in primary.get("variants", [])}
    theirs = {PurePosixPath(v["key"]).name: v for v in shadow.get("variants", [])}
    checks["variants"] = {"passed": set(mine) == set(theirs), "found": f"{sorted(mine)} / {sorted(theirs)}"}
    for name in sorted(set(mine) & set(theirs)):
        a, b = mine[name], theirs[name]
        bytes_diff = abs(a["bytes"] - b["bytes"]) / max(a["bytes"], b["bytes"], 1)
        psnr = _psnr(s3, a["key"], b["key"])
        if psnr is None and (measured := shadow.get("pixels", {}).get(name)) is not None:
            psnr = math.inf if measured == "identical" else float(measured)  # by the shadow run, which has Pillow
        variants.append(
            {
                "name": name,
                "primary_key": a["key"],
                "shadow_key": b["key"],
                "dimensions": [[a["width"], a["height"]], [b["width"], b["height"]]],
                "dimensions_equal": (a["width"], a["height"]) == (b["width"], b["height"]),
                "bytes": [a["bytes"], b["bytes"]],
                "bytes_diff": round(bytes_diff, 4),
                "psnr_db": None if psnr is None or math.isinf(psnr) else round(psnr, 2),
                "identical": psnr is not None and math.isinf(psnr),
            }
        )
    checks["dimensions"] = {
        "passed": all(v["dimensions_equal"] for v in variants),
        "found": _dimension_differences(variants),
    }
    checks["bytes"] = {
        "passed": all(v["bytes_diff"] <= tolerance for v in variants),
        "found": f"largest difference {max((v['bytes_diff'] for v in variants), default=0):.1%}, "
        f"tolerance {tolerance:.0%}",
    }
    measured = [v for v in variants if v["psnr_db"] is not None or v["identical"]]
    lowest = min((v["psnr_db"] for v in measured if v["psnr_db"] is not None), default=math.inf)
    checks["pixels"] = {
        "passed": all(v["identical"] or v["psnr_db"] >= floor for v in measured) if measured else None,
        "found": f"lowest PSNR {lowest:.1f} dB, floor {floor:.1f} dB"
        if measured
        else "not measured (Pillow is not in this process, and the real run had not finished when the shadow run did)",
    }
    agreed = all(c["passed"] is not False for c in checks.values())
    return {
        "agreed": agreed,
        "checks": checks,
        "variants": variants,
        "primary": {"duration_ms": primary.get("duration_ms"), "peak_rss_mb": primary.get("peak_rss_mb")},
        "shadow": {"duration_ms": shadow.get("duration_ms"), "peak_rss_mb": shadow.get("peak_rss_mb")},
    }


def _dimension_differences(variants: list[dict[str, Any]]) -> str:
    """Which variants differ in size, the real run's first, as "medium: 960 by 720 vs 960 by 719" reads (written
    with a multiplication sign); a size is named once when every format of it differs alike, else each file."""
    formats: dict[str, int] = {}
    differing: dict[tuple[str, str], list[str]] = {}
    for v in variants:
        size = PurePosixPath(v["name"]).stem
        formats[size] = formats.get(size, 0) + 1
        if not v["dimensions_equal"]:
            (aw, ah), (bw, bh) = v["dimensions"]
            differing.setdefault((size, f"{aw}×{ah} vs {bw}×{bh}"), []).append(v["name"])
    return "; ".join(
        f"{size if len(names) == formats[size] else ', '.join(names)}: {sizes}"
        for (size, sizes), names in differing.items()
    )


def _psnr(s3: Any, key_a: str, key_b: str) -> float | None:
    """PSNR in dB of two stored images (inf: identical pixels); None when it cannot be measured here."""
    try:
        from offload.imaging import psnr_db
    except ImportError:  # the web stage's zip leaves Pillow out: the shadow run measured it (``pixels``), or nobody
        return None
    try:
        return psnr_db(_get(s3, key_a), _get(s3, key_b))
    except (ClientError, OSError):
        log.warning("could not read %s or %s to compare them", key_a, key_b, exc_info=True)
        return None


def _get(s3: Any, key: str) -> bytes:
    return s3.get_object(Bucket=settings.BOARDSITE_BUCKET, Key=key)["Body"].read()


def summary(job: str, *, since: dt.datetime) -> dict[str, Any]:
    """Agreement over the pairs compared since ``since`` (noise pairs apart), and the disagreements."""
    pairs = list(ShadowPair.objects.filter(job=job, created_at__gte=since).order_by("-created_at")[:1000])
    real = [p for p in pairs if not p.noise and p.agreed is not None]
    noise = [p for p in pairs if p.noise and p.agreed is not None]
    return {
        "pairs": len(pairs),
        "compared": len(real),
        "agreed": sum(p.agreed for p in real),
        "agreement": 100 * sum(p.agreed for p in real) / len(real) if real else None,
        "noise_pairs": len(noise),
        "noise_agreement": 100 * sum(p.agreed for p in noise) / len(noise) if noise else None,
        "waiting": sum(1 for p in pairs if p.compared_at is None),
        # A shadow run that fails reports nothing (it is retried like any run): its records say it failed.
        "failed_runs": JobRun.objects.filter(job=job, shadow=True, started_at__gte=since).exclude(outcome="ok").count(),
        "disagreements": [p for p in pairs if p.agreed is False][:20],
    }


# --- mail --------------------------------------------------------------------------------------------------------


def compare_mail(pair: ShadowPair) -> dict[str, Any] | None:
    """How a shadow rendering of a mail agrees with the mail really sent; None while the real run has not settled."""
    try:
        body = aws.client("s3").get_object(Bucket=settings.BOARDSITE_BUCKET, Key=f"{MAIL_SENT_PREFIX}{pair.unit}")
        primary = json.loads(body["Body"].read())
    except ClientError as exc:
        if is_missing(exc):
            return None  # not sent yet (or refused before it was claimed: a malformed message; given up on later)
        raise
    except ValueError:
        primary = {}
    if not isinstance(primary, dict) or primary.get("state") in (None, "sending"):
        return None
    shadow = pair.shadow_result
    sent, rendered = primary.get("state") == "sent", shadow.get("status") == "rendered"
    same_outcome = (sent and rendered) or (primary.get("state") == "rejected" and shadow.get("status") == "rejected")
    checks: dict[str, Any] = {
        "outcome": {
            "passed": same_outcome and (sent or primary.get("error") == shadow.get("error")),
            "found": f"{primary.get('state')} / {shadow.get('status')}"
            + ("" if sent else f" ({primary.get('error', '')} / {shadow.get('error', '')})"),
        }
    }
    if sent and rendered:
        # A marker written before digests were kept cannot be compared: not counted as a mismatch.
        digests = primary.get("digest"), shadow.get("digest")
        checks["message"] = {
            "passed": None if digests[0] is None else digests[0] == digests[1],
            "found": "the same headers and content" if digests[0] == digests[1] else f"{digests[0]} / {digests[1]}",
        }
    return {
        "agreed": all(c["passed"] is not False for c in checks.values()),
        "checks": checks,
        "primary": {},
        "shadow": {"duration_ms": shadow.get("duration_ms")},
    }


# --- upload tickets ----------------------------------------------------------------------------------------------


def compare_tickets(pair: ShadowPair) -> dict[str, Any]:
    """How the upload-ticket function's checks of a request agree with the site's answer to it (which travelled in
    the mark): the same status, and for a refusal the same sentence. Compared at once: nothing to wait for."""
    shadow = pair.shadow_result
    primary = shadow.get("primary") or {}
    checks = {
        "status": {
            "passed": primary.get("status") == shadow.get("status"),
            "found": f"{primary.get('status')} / {shadow.get('status')}",
        },
        "error": {
            "passed": primary.get("error") == shadow.get("error"),
            "found": f"{primary.get('error')!r} / {shadow.get('error')!r}",
        },
    }
    return {
        "agreed": all(c["passed"] for c in checks.values()),
        "checks": checks,
        "primary": {},
        "shadow": {},
    }
