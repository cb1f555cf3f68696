"""The upload manifest: what a run did to each file, so a re-run after Ctrl-C (or a crash, or a lost network)
neither sends a finished file again nor loses an image it already asked a ticket for.

One small JSON file per site and board in the state folder, keyed by the file's absolute path, size and mtime (a
file edited since is a new file). Each entry's ``state`` moves forward only:

    hashed -> ticketed -> sent -> completed -> ready | failed       (present: already on the board, by content)

``ticketed``: the site made an image row and a ticket, the bytes may or may not have reached S3 (interrupted
mid-send). A re-run reports it complete: if S3 has the bytes, the site takes it from there; if not (400), the image
is abandoned and the file sent on a new ticket. ``error``: the client gave up (retries ran out, a 429, the
upload-ticket function refusing every grant: nothing about the file); a re-run tries again. ``failed``: the site
refused the file or its processing failed; a re-run reports it again without re-sending it (edit or remove the file,
or delete the manifest, to try once more).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from boardsite_client.config import write_private
from boardsite_client.files import LocalFile

STATES = ("hashed", "ticketed", "sent", "completed", "ready", "present", "failed", "error")
VERSION = 1


def next_step(entry: dict | None) -> str:
    """What a run does with a file, given its manifest entry:

    ``send`` (ask a ticket and send the bytes; look its content up on the board first), ``confirm`` (report an
    interrupted send complete; send anew if S3 lacks the bytes), ``follow`` (only wait for its processing), ``done``
    (nothing: ready or already on the board), ``failed`` (report the stored reason)."""
    state = (entry or {}).get("state")
    if state in ("ticketed", "sent") and entry and entry.get("image"):
        return "confirm"
    if state == "completed" and entry and entry.get("image"):
        return "follow"
    if state in ("ready", "present"):
        return "done"
    if state == "failed":
        return "failed"
    return "send"


class Manifest:
    """Thread-safe; ``flush`` writes it (atomically, 0600) when something changed, at most every ``every``
    seconds unless forced (a run of 500 files changes it a few thousand times)."""

    def __init__(self, path: Path, every: float = 0.5) -> None:
        self.path = path
        self.every = every
        self._lock = threading.Lock()
        self._dirty = False
        self._written = 0.0
        try:
            data = json.loads(path.read_text())
            self.entries: dict[str, dict[str, Any]] = data["files"] if data.get("version") == VERSION else {}
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            self.entries = {}

    def get(self, file: LocalFile) -> dict[str, Any] | None:
        with self._lock:
            entry = self.entries.get(file.key)
            return dict(entry) if entry else None

    def update(self, file: LocalFile, **fields: Any) -> None:
        assert fields.get("state", "hashed") in STATES, fields
        with self._lock:
            entry = self.entries.setdefault(file.key, {"path": str(file.path)})
            entry.update({k: v for k, v in fields.items() if v is not None})
            if fields.get("state") not in ("failed", "error"):
                entry.pop("error", None)
            self._dirty = True

    def flush(self, force: bool = False) -> None:
        with self._lock:
            if not self._dirty or (not force and time.monotonic() - self._written < self.every):
                return
            write_private(self.path, {"version": VERSION, "files": self.entries})
            self._dirty = False
            self._written = time.monotonic()
