"""Upload grants: how a person uploads through the upload-ticket function (``issue_upload_ticket`` on lambda), which
cannot read the database.

``POST /api/upload-grants`` ``{"board", "files", "bytes"}`` is the door of that job: where its route sends this
person (a sticky share by person, like every job's), it answers either the site's own ticket address (inline) or a
grant signed with ``UPLOAD_GRANT_KEY`` and the function's address (lambda). A grant reserves up to ``files`` tickets
and ``bytes`` bytes of the person's and the board's allowances (``services._usage`` counts it, so quotas hold
whichever runtime issues the tickets) and expires with a ticket's lifetime; the client asks again for more.

Revoking: when a person may no longer add photos somewhere (removed from a board, a token revoked), ``revoke``
marks their grants revoked here and in storage (``upload-grants/revoked/u<id>``), which the function reads before
each ticket: the next ticket is refused, not only the next grant.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import urllib.request
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from boardsite import aws
from boardsite.boards.models import Board
from boardsite.boards.selectors import User, board_get_visible
from boardsite.core import jobs, routing
from boardsite.core.errors import ApplicationError, Invalid, TooLarge, Unavailable
from boardsite.images.models import UploadGrant
from boardsite.images.services import _check_quotas, _size, upload_board
from offload import grants
from offload.config import UPLOAD_GRANTS_PREFIX

log = logging.getLogger(__name__)

JOB = "issue_upload_ticket"
EVENT_GRACE_SECONDS = 60  # after a grant expires, its last tickets' events are applied within this (else: the sweep)


def grant_issue(*, user: User, board_id: Any, files: Any, size: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    """Where this person gets upload tickets for this board: ``{"runtime": "inline", "ticket_url"}`` (the site's
    ``POST /api/uploads``), or a signed grant for the function (``"runtime": "lambda"``)."""
    board, role = upload_board(user=user, board_id=board_id)
    if isinstance(files, bool) or not isinstance(files, int) or files < 1:
        raise Invalid("files must be a positive whole number: how many files you are about to send.")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise Invalid("bytes must be a positive whole number: their sizes added up.")
    runtime = jobs.endpoint(JOB, f"user:{user.pk}")
    if runtime != "lambda":
        return {"runtime": runtime, "ticket_url": "/api/uploads", "grant": None}
    key, url = grant_key(), jobs.function_url()
    if not key or not url:
        raise Unavailable("Uploads through the ticket function are not set up here; try again later.")
    now = now or timezone.now()
    with transaction.atomic():
        # The same locks, in the same order, as a ticket from the site: a grant and a ticket cannot both take the
        # last place.
        list(Board.objects.select_for_update().filter(pk=board.pk).values_list("pk"))
        list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
        usage = _check_quotas(user=user, board=board, size=min(size, 1), now=now)
        places = settings.UPLOAD_MAX_OUTSTANDING - len(usage.outstanding)
        board_places = settings.BOARD_MAX_PHOTOS - usage.photos
        allowed_bytes = settings.UPLOAD_DAILY_BYTES - usage.used_bytes
        tickets = min(files, places, board_places)
        granted_bytes = min(size, allowed_bytes)
        if granted_bytes < 1:
            raise TooLarge(f"Your upload allowance of {_size(settings.UPLOAD_DAILY_BYTES)} a day is used up.")
        lifetime = dt.timedelta(seconds=settings.UPLOAD_TICKET_SECONDS)
        row = UploadGrant.objects.create(
            id=uuid.uuid4(),
            user=user,
            board=board,
            tickets=tickets,
            bytes=granted_bytes,
            created_at=now,
            expires_at=now + lifetime,
            # No ticket is issued under it after it expires; the events of the last ones arrive moments later, and
            # from then on the tickets count by themselves (``services._usage``).
            live_until=now + lifetime + dt.timedelta(seconds=EVENT_GRACE_SECONDS),
        )
    route = routing.route("process_image")
    grant = grants.Grant(
        id=str(row.id),
        user=user.pk,
        board=board.pk,
        role=role or "",
        tickets=tickets,
        bytes=granted_bytes,
        max_file=settings.UPLOAD_MAX_BYTES,
        issued_at=now.timestamp(),
        expires_at=row.expires_at.timestamp(),
        route={"baseline": route.baseline, "canary": route.canary, "share": route.share, "forced": dict(route.forced)},
    )
    return {
        "runtime": "lambda",
        "ticket_url": url.rstrip("/") + "/tickets",
        "grant": grants.sign(grant, key),
        "board": board.pk,
        "tickets": tickets,
        "bytes": granted_bytes,
        "expires_at": row.expires_at.isoformat(),
    }


def grant_key() -> str:
    """``UPLOAD_GRANT_KEY``, read when used: deployed it comes from SSM (``boardsite/secrets.py``), after a SnapStart
    restore too, and a rotation reaches running instances."""
    return os.environ.get("UPLOAD_GRANT_KEY") or settings.UPLOAD_GRANT_KEY


def revoke(*, user_id: int, board_id: int | None = None, now: dt.datetime | None = None) -> None:
    """End this person's grants now (for one board, or all): their reservations go, and the function refuses their
    next ticket (``upload-grants/revoked/u<id>`` for all, ``…/u<id>-b<board>`` for one board)."""
    now = now or timezone.now()
    live = UploadGrant.objects.filter(user_id=user_id, revoked_at__isnull=True, live_until__gt=now)
    if board_id is not None:
        live = live.filter(board_id=board_id)
    if not live.update(revoked_at=now):
        return  # none signed that could still be used: nothing for the function to refuse
    name = f"u{user_id}" if board_id is None else f"u{user_id}-b{board_id}"
    body = json.dumps({"before": now.timestamp()}).encode()
    try:
        aws.client("s3").put_object(
            Bucket=settings.BOARDSITE_BUCKET, Key=f"{UPLOAD_GRANTS_PREFIX}revoked/{name}", Body=body
        )
    except Exception:  # the grants end within a ticket's lifetime anyway; the rows above are already revoked
        log.exception("could not record the revocation of the upload grants of user %s", user_id)


def member_removed_receiver(*, board: Any, member: Any, **_: Any) -> None:
    # At once, not after the commit: should the removal roll back, the person merely asks for a new grant.
    revoke(user_id=member.pk, board_id=board.pk)


def token_revoked_receiver(*, user: Any, **_: Any) -> None:
    revoke(user_id=user.pk)


def shadow_ticket(*, user: Any, body: dict[str, Any], status: int, answer: dict[str, Any]) -> bool:
    """When this person's ticket requests are sampled for a shadow run (``issue_upload_ticket``'s shadow share),
    hand the same request, with a one-ticket grant signed for it and the site's own answer in the mark, to the
    function, off the request's path: it runs every check and issues nothing (``offload/functions/upload_ticket.py``
    ``_shadow``); ``boardsite/control/shadow.py`` compares the two. True when one was sent."""
    if not user.is_authenticated:
        return False
    route, unit = routing.route(JOB), f"user:{user.pk}"
    if route.shadow_for(unit) is None or "lambda" not in (route.baseline, route.canary):
        return False
    # Every sample goes to the function: the site's own checks once more (a noise pair) would only repeat themselves.
    try:
        board, role = board_get_visible(board_id=body.get("board"), user=user)
    except ApplicationError:
        return False  # no board the person may see: nothing to sign a grant for
    key, url = grant_key(), jobs.function_url()
    if not key or not url or not routing.shadow_slot(route):
        return False
    now = time.time()
    mark = {
        "pair": str(uuid.uuid4()),
        "runtime": "lambda",
        "primary": route.runtime_for(unit),
        "noise": False,
        "unit": unit,
        "primary_answer": {"status": status, "error": answer.get("error")},
    }
    grant = grants.Grant(
        id=str(uuid.uuid4()),
        user=user.pk,
        board=board.pk,
        role=role or "",
        tickets=1,
        bytes=settings.UPLOAD_MAX_BYTES,
        max_file=settings.UPLOAD_MAX_BYTES,
        issued_at=now,
        expires_at=now + 60,
        shadow=mark,  # signed: only the site can ask the function for a shadow run
    )
    request = {k: body.get(k) for k in ("board", "filename", "content_type", "size")}
    request["grant"] = grants.sign(grant, key)
    jobs.SHADOW_EXECUTOR.submit(_send_shadow, f"{url}/tickets", request)
    return True


def _send_shadow(url: str, request: dict[str, Any]) -> None:
    try:
        data = json.dumps(request).encode()
        ask = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(ask, timeout=10):
            pass
    except Exception:  # a shadow never affects the real work
        log.warning("could not send a shadow ticket request to %s", url, exc_info=True)
