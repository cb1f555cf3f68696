"""issue_upload_ticket, lambda runtime: an upload ticket without the monolith (never imports Django).

The site hands a person a signed upload grant (``offload/grants.py``) for one board; with it, this function answers
``POST <function URL>/tickets`` ``{"grant", "board", "filename", "content_type", "size"}`` exactly as the site's
``POST /api/uploads`` does (same checks, same sentences, same JSON): a presigned POST pinned to one key, type and
size (``offload/tickets.py``). It cannot read the database, so:

- **Who and where** come from the grant, checked by its signature (``UPLOAD_GRANT_KEY``), expiry and role; a grant
  for board A never yields a key under board B (the key is made from the grant's board, and a request naming another
  board is refused). A grant issued before the site ended the person's grants is refused: for every board
  (``upload-grants/revoked/u<id>``: one of their access tokens revoked) or for this one (``…/u<id>-b<board>``: removed
  from it, or lowered to viewer).
- **Quotas** hold across both runtimes: the site reserved the grant's tickets and bytes against the person's and the
  board's allowances when it signed it (``boardsite/images/grants.py``); here each ticket claims the grant's next slot
  with a create-only write (``upload-grants/<grant>/<n>``, If-None-Match: *, holding the bytes claimed so far), so
  tickets issued at once, by any number of instances, never exceed the grant's count or bytes.
- **The site learns of every upload**: each ticket is reported as ``image.ticketed`` (the results queue), which the
  site applies idempotently, in any order with the photo's processing result; the object itself carries the same
  facts as metadata the upload policy pins (uploader, grant, file name).

Placement: the grant carries process_image's route, so each key is placed as the site's door would place it
(``originals/<runtime>/<board>/<id>.<ext>``); only keys placed for Lambda need no completion report (S3 starts their
processing), so only those answer ``"complete_url": null``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from offload import aws, config, grants, registry, results, tickets
from offload.buckets import bucket as route_bucket
from offload.jsonbody import BodyRefused, parse_object

log = logging.getLogger(__name__)

GRANTS_PREFIX = config.UPLOAD_GRANTS_PREFIX
REVOKED_PREFIX = f"{GRANTS_PREFIX}revoked/"
TICKETED = registry.IMAGE_TICKETED
PATH = "/tickets"
MAX_BODY = 64 * 1024


KEY_REFRESH_SECONDS = 300  # a rotated key reaches every warm instance within this time
_key_cache: dict[str, tuple[float, str]] = {}


def grant_key() -> str:
    """The key grants are signed with: ``UPLOAD_GRANT_KEY`` from the environment (locally), else the SecureString
    ``<BOARDSITE_SSM_PREFIX>UPLOAD_GRANT_KEY`` (deployed: the same parameter the site reads; this role may read that
    one parameter only), kept ``KEY_REFRESH_SECONDS``. Empty when there is none: every grant is then refused."""
    if key := os.environ.get("UPLOAD_GRANT_KEY", ""):
        return key
    prefix = os.environ.get("BOARDSITE_SSM_PREFIX", "")
    if not prefix:
        return ""
    name = prefix.rstrip("/") + "/UPLOAD_GRANT_KEY"
    fetched_at, value = _key_cache.get(name, (0.0, ""))
    if time.monotonic() - fetched_at < KEY_REFRESH_SECONDS and value:
        return value
    try:
        value = aws.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except Exception:  # keep the key in use (if any): SSM away must not stop tickets that were being issued
        log.exception("could not read %s", name)
        return value
    _key_cache[name] = (time.monotonic(), value)
    return value


def ticket_seconds() -> int:
    return min(int(os.environ.get("UPLOAD_TICKET_SECONDS", 600)), 600)


def max_upload_bytes() -> int:
    return int(os.environ.get("UPLOAD_MAX_BYTES", 25 * 1024 * 1024))


def _revoked_before(s3: Any, bucket: str, user: int, board: int) -> float:
    """When the site last ended this person's grants, for every board or for this one (0: never)."""
    latest = 0.0
    for name in (f"u{user}", f"u{user}-b{board}"):
        try:
            body = s3.get_object(Bucket=bucket, Key=f"{REVOKED_PREFIX}{name}")["Body"].read()
        except ClientError as exc:
            if aws.is_missing(exc):
                continue
            raise
        try:
            latest = max(latest, float(json.loads(body).get("before", 0)))
        except (ValueError, AttributeError, TypeError):
            return time.time()  # unreadable: refuse rather than allow
    return latest


# grant id -> (a slot known taken, the bytes claimed up to and with it). Slots are written create-only and never
# change, so a hint is always true; it only saves the scan from slot 0, which made ticket n of a grant cost 2n
# requests (a grant of n tickets, n²). A warm instance mostly serves the same client's next tickets.
_hints: dict[str, tuple[int, int]] = {}
# One claim of a grant at a time per instance: its threads (a local server, or any threaded host) never race each
# other for a slot, where each loser would walk on slot by slot past the others' claims. Other instances race only
# through the create-only write.
_claiming: dict[str, threading.Lock] = {}
_hints_lock = threading.Lock()
HINTS_KEPT = 10_000  # grants remembered per instance (each a few dozen bytes); the oldest half goes beyond that


def _forget_oldest(kept: dict[str, Any]) -> None:
    if len(kept) >= HINTS_KEPT:
        for old in list(kept)[: HINTS_KEPT // 2]:
            del kept[old]


def _remember(grant_id: str, slot: int, claimed: int) -> None:
    with _hints_lock:
        if slot > _hints.get(grant_id, (-1, 0))[0]:
            _forget_oldest(_hints)
            _hints[grant_id] = (slot, claimed)


def _claiming_lock(grant_id: str) -> threading.Lock:
    with _hints_lock:
        if (lock := _claiming.get(grant_id)) is None:
            _forget_oldest(_claiming)  # a thread holding a forgotten lock keeps it; the create-only write decides
            lock = _claiming[grant_id] = threading.Lock()
        return lock


def _claim(s3: Any, bucket: str, grant: grants.Grant, size: int) -> int:
    """Claim the grant's next ticket for ``size`` bytes; its number. ``TicketRefused`` once its count or bytes are
    used up. Each slot is written create-only with the bytes claimed up to it, so concurrent claims serialise; the
    scan starts after the last slot this instance knows taken."""
    with _claiming_lock(grant.id):
        return _claim_next(s3, bucket, grant, size)


def _claim_next(s3: Any, bucket: str, grant: grants.Grant, size: int) -> int:
    with _hints_lock:
        last, claimed = _hints.get(grant.id, (-1, 0))
    n = last + 1
    while n < grant.tickets:
        if claimed + size > grant.bytes:
            raise tickets.TicketRefused(
                429,  # as when its tickets are used: no Retry-After, ask the site for a new grant
                f"This file ({tickets.size_text(size)}) would go over what this upload grant allows "
                f"({tickets.size_text(grant.bytes)} in all): ask the site for a new grant.",
            )
        key = _slot(grant, n)
        body = json.dumps({"bytes": claimed + size, "at": time.time()}).encode()
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
                raise
        else:
            _remember(grant.id, n, claimed + size)
            return n
        # Taken, by another instance (or before this one knew of the grant): go to the last slot taken, found by
        # one listing, rather than slot by slot behind the others' claims (2 requests a slot, and they claim on).
        n = _last_taken(s3, bucket, grant, after=n)
        claimed = int(json.loads(s3.get_object(Bucket=bucket, Key=_slot(grant, n))["Body"].read())["bytes"])
        _remember(grant.id, n, claimed)
        n += 1
    raise tickets.TicketRefused(
        429, f"This upload grant's {grant.tickets} tickets are used: ask the site for a new grant."
    )


def _slot(grant: grants.Grant, n: int) -> str:
    return f"{GRANTS_PREFIX}{grant.id}/{n:05d}"


def _last_taken(s3: Any, bucket: str, grant: grants.Grant, *, after: int) -> int:
    """The last slot of the grant taken, knowing ``after`` is (slots are taken in order, without gaps)."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{GRANTS_PREFIX}{grant.id}/", StartAfter=_slot(grant, after))
    numbers = [
        int(name)
        for o in listed.get("Contents", [])
        if (name := o["Key"].rsplit("/", 1)[1]).isascii() and name.isdigit()
    ]
    return max([after, *numbers])


def _runtime(grant: grants.Grant, unit: str) -> str:
    """Where process_image runs for ``unit``, by the route the grant carries (``boardsite/core/routing.py``'s rule)."""
    route = grant.route or {}
    baseline = route.get("baseline", "lambda")
    if (forced := (route.get("forced") or {}).get(unit)) is not None:
        return forced
    share = int(route.get("share", 0))
    if share <= 0:
        return baseline
    return route.get("canary", baseline) if route_bucket("process_image", unit) < share else baseline


def issue(body: Any, *, report: results.Report | None = None, now: float | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) for one ticket request: the contract of the site's ``POST /api/uploads``."""
    report = report or results.publish
    try:
        if not isinstance(body, dict):
            raise tickets.TicketRefused(400, "The request body must be a JSON object.")
        grant = grants.verify(body.get("grant"), grant_key(), now=now, uploader=False)
        if isinstance(grant.shadow, dict):  # decided by the signed grant, never by the request
            return _shadow(grant, body, report)
        grants.require_uploader(grant)
        if body.get("board") is None:
            raise tickets.TicketRefused(400, "board is required.")
        if str(body.get("board")) != str(grant.board):
            raise tickets.TicketRefused(403, "This upload grant is for another board: ask the site for one for this.")
        name, content_type, size = tickets.check_file(
            filename=body.get("filename"),
            content_type=body.get("content_type"),
            size=body.get("size"),
            max_bytes=min(grant.max_file, max_upload_bytes()),
        )
        cfg = config.load()
        s3 = aws.client("s3")
        if grant.issued_at < _revoked_before(s3, cfg.bucket, grant.user, grant.board):
            raise tickets.TicketRefused(403, "This upload grant was revoked: ask the site for a new one.")
        _claim(s3, cfg.bucket, grant, size)
    except (grants.GrantRefused, tickets.TicketRefused) as exc:
        return exc.status, {"error": exc.message}
    image_id = str(uuid.uuid4())
    trigger = registry.get("process_image").trigger
    assert isinstance(trigger, registry.S3Trigger)
    unit = f"{config.ORIGINALS_PREFIX}{grant.board}/{image_id}.{tickets.EXTENSIONS[content_type]}"
    runtime = _runtime(grant, unit)
    key = trigger.pin(unit, runtime)
    ticketed_at = time.time() if now is None else now
    upload = tickets.presigned_post(
        s3,
        bucket=cfg.bucket,
        key=key,
        content_type=content_type,
        size=size,
        expires=ticket_seconds(),
        # What the site needs to know of the upload, on the object itself (pinned by the policy).
        metadata={
            "uploader": str(grant.user),
            "grant": grant.id,
            "filename": quote(name, safe=""),
            "ticketed-at": f"{ticketed_at:.3f}",
        },
    )
    event = {
        "type": TICKETED,
        "image_id": image_id,
        "key": key,
        "board_id": grant.board,
        "user_id": grant.user,
        "grant": grant.id,
        "filename": name,
        "content_type": content_type,
        "size": size,
        "ticketed_at": ticketed_at,
    }
    try:
        report(event)
    except Exception:  # the object's metadata and the sweep still tell the site; never a ticket without a record
        log.exception("could not report the ticket of %s", image_id)
        return 503, {"error": "Uploads cannot start just now; try again in a moment."}
    status_url = f"/api/images/{image_id}"
    return 201, {
        "image": {
            "id": image_id,
            "status": "pending",
            "status_url": status_url,
            "complete_url": None if runtime == "lambda" else f"{status_url}/complete",
            "abandon_url": f"{status_url}/abandon",
        },
        "upload": upload,
    }


def _shadow(grant: grants.Grant, body: dict[str, Any], report: results.Report) -> tuple[int, dict]:
    """A shadow run (boardsite/control/shadow.py ``compare_tickets``): every check a ticket goes through, on the
    same request the site answered, and nothing else: no slot claimed, no upload signed, no event but the report of
    what it would have answered. Only for a grant the site signed for it (``Grant.shadow``, the pair's mark with the
    site's own answer): no client can make the function report a shadow result of its own."""
    mark = grant.shadow or {}
    try:
        grants.require_uploader(grant)
        if str(body.get("board")) != str(grant.board):
            raise tickets.TicketRefused(403, "This upload grant is for another board: ask the site for one for this.")
        tickets.check_file(
            filename=body.get("filename"),
            content_type=body.get("content_type"),
            size=body.get("size"),
            max_bytes=min(grant.max_file, max_upload_bytes()),
        )
        status, error = 201, None
    except (grants.GrantRefused, tickets.TicketRefused) as exc:
        status, error = exc.status, exc.message
    result = {"status": status, "error": error, "primary": mark.get("primary_answer") or {}}
    try:
        report({"type": registry.SHADOW_RESULT, "job": "issue_upload_ticket", "shadow": mark, "result": result})
    except Exception:  # a shadow run never makes work of its own
        log.warning("could not report the shadow run %s", mark.get("pair"), exc_info=True)
    return 202, {"shadow": mark.get("pair"), **result}


def handler(event: dict[str, Any], context: Any = None, *, report: results.Report | None = None) -> dict[str, Any]:
    """Lambda entry point for a function URL request (payload format 2.0): ``POST /tickets`` with a JSON body."""
    http = (event.get("requestContext") or {}).get("http") or {}
    method, path = http.get("method", ""), event.get("rawPath") or http.get("path", "")
    if path.rstrip("/") != PATH:
        return _answer(404, {"error": "No such address."})
    if method == "OPTIONS":
        return _answer(204, None)  # a function URL answers CORS pre-flights itself; locally, devstack's server does
    if method != "POST":
        return _answer(405, {"error": "Use POST here."}, {"Allow": "POST"})
    raw = event.get("body") or ""
    if len(raw) > MAX_BODY:  # the site's limit (API_MAX_BODY_BYTES' default) and its sentence
        return _answer(413, {"error": f"The request body is too large: the API accepts at most {MAX_BODY} bytes."})
    try:
        body = parse_object(base64.b64decode(raw) if event.get("isBase64Encoded") else raw)
    except BodyRefused as exc:  # the site's own sentences (offload/jsonbody.py)
        return _answer(400, {"error": str(exc)})
    except ValueError:  # not base64
        return _answer(400, {"error": "The request body must be JSON."})
    status, answer = issue(body, report=report)
    return _answer(status, answer)


def _answer(status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "Cache-Control": "private, no-store", **(headers or {})},
        "body": "" if body is None else json.dumps(body),
    }
