"""Applying the processor's ``avatar.processed`` result to the person's profile (``registry``: process_image's
``reports``). Idempotent, and safe in any order: only the result of the upload in flight changes anything; any
other (a duplicate, a late one for an upload replaced or expired meanwhile) deletes what it wrote unless that is
the picture on show.

Ready: the new picture goes on show, the old picture's objects are deleted after the commit, and its own original
(with the camera's metadata) by the upload sweep ten minutes later. Failed: the reason is
kept for the profile page, the old picture stays, the refused upload's objects are deleted.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from boardsite.accounts.models import Avatar
from boardsite.avatars.services import avatar_prefixes, slot_free
from boardsite.images.cleanup import storage_cleanup_schedule
from offload.results import AVATAR_RESULT_TYPE, parse_avatar_key

log = logging.getLogger(__name__)

ORIGINAL_KEPT_SECONDS = 600  # then the upload sweep deletes a shown avatar's original


def _variants(result: dict[str, Any], key: str) -> list[dict[str, Any]] | None:
    """The variants as kept on the row; None when the result is malformed (never shown then)."""
    out = []
    prefix = avatar_prefixes(key)[-1]
    for v in result.get("variants") or []:
        if not isinstance(v, dict) or not str(v.get("key", "")).startswith(prefix):
            return None
        try:
            out.append(
                {
                    "name": str(v["name"]),
                    "format": str(v["format"]),
                    "key": str(v["key"]),
                    "width": int(v["width"]),
                    "height": int(v["height"]),
                }
            )
        except (KeyError, TypeError, ValueError):
            return None
    return out or None


@transaction.atomic
def avatar_result_apply(*, result: dict[str, Any]) -> bool:
    """Apply one ``avatar.processed`` result; False when it changed nothing."""
    key = result.get("key")
    parsed = parse_avatar_key(key) if isinstance(key, str) else None
    if result.get("type") != AVATAR_RESULT_TYPE or parsed is None:
        log.warning("ignoring a malformed avatar result for %r", key)
        return False
    user_id, avatar_id = parsed
    avatar = Avatar.objects.select_for_update().filter(user_id=user_id).first()
    if avatar is None or str(avatar.pending_id) != avatar_id or avatar.pending_key != key:
        if avatar is None or avatar.original_key != key:
            # Not the upload in flight (replaced, expired, the account gone) nor the one on show: what it wrote goes.
            storage_cleanup_schedule(prefixes=avatar_prefixes(key), reason="result for a replaced avatar upload")
        return False
    if result.get("status") == "ready" and (variants := _variants(result, key)) is not None:
        if avatar.original_key:
            storage_cleanup_schedule(prefixes=avatar_prefixes(avatar.original_key), reason="avatar replaced")
        avatar.original_key, avatar.variants, avatar.error = key, variants, ""
        # The variants are all that is shown; the original keeps what the person's camera wrote (GPS too), so it goes
        # too, once the processor is surely done with it (it checks the original after reporting: one deleted that
        # soon would make it delete its own variants).
        storage_cleanup_schedule(
            prefixes=[key], reason="avatar original: its metadata is not kept", delay_seconds=ORIGINAL_KEPT_SECONDS
        )
    else:
        reason = result.get("error") if result.get("status") == "failed" else "The picture could not be processed."
        avatar.error = str(reason or "Processing failed.")[:1000]
        storage_cleanup_schedule(prefixes=avatar_prefixes(key), reason="avatar refused")
    slot_free(avatar)
    avatar.save()
    return True
