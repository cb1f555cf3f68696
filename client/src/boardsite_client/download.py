"""``boardsite download BOARD DIR``: every ready photo of a board, its large variant (or, for owners, the original).

Resumable: each photo is written to ``<name>.part`` and renamed when complete, so a file under its final name is
whole; a re-run skips those without a request (an index in DIR, ``.boardsite-download.json``, maps image ids to
their files) and carries on a ``.part`` where it stopped (an HTTP Range request; a server that ignores Range sends
it whole). Each file is recorded before it is renamed, by a line appended to a journal beside the index
(``.boardsite-download.journal``, folded into the index when a run ends): a run stopped at any moment (Ctrl-C, a
kill) leaves no file under its final name that the next run does not know, and so no second copy of it. Names
come from the site (a person chose them: only their last component is used, cleaned), and two photos of one name
get the image id's start added.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from boardsite_client import pool
from boardsite_client.api import Api, ApiError, TransientError, error_message
from boardsite_client.progress import Tally

INDEX = ".boardsite-download.json"
JOURNAL = ".boardsite-download.journal"  # a line per file finished since the index was last written
PAGE = 100
CHUNK = 1 << 16


@dataclass
class Fetched:
    image: str
    state: str  # downloaded, present (already in DIR), failed, skipped (not ready on the site)
    file: str | None = None
    size: int = 0
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"image": self.image, "state": self.state, "file": self.file, "size": self.size, "error": self.error}


def safe_name(name: str, fallback: str) -> str:
    """A file name from the site that cannot leave DIR or hide: its last path component, control characters and
    leading dots removed, at most 200 characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().lstrip(".")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:200]
    return name or fallback


def images_of(api: Api, board: int) -> Iterator[dict[str, Any]]:
    """Every image of the board, page by page (keyset: ``next`` is the cursor of the following page)."""
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": PAGE}
        if cursor:
            params["after"] = cursor
        page = api.get(f"/api/boards/{board}/images", params=params)
        yield from page.get("images") or []
        cursor = page.get("next")
        if not cursor:
            return


class Downloader:
    def __init__(
        self,
        api: Api,
        board: int,
        folder: Path,
        tally: Tally,
        *,
        stop: threading.Event,
        originals: bool = False,
        parallel: int = 4,
    ) -> None:
        self.api = api
        self.board = board
        self.folder = folder
        self.tally = tally
        self.stop = stop
        self.originals = originals
        self.parallel = parallel
        self.variant = "original" if originals else "large"
        self.results: dict[str, Fetched] = {}
        self._lock = threading.Lock()
        self.index_path = folder / INDEX
        self.journal_path = folder / JOURNAL
        try:
            self.index: dict[str, dict[str, Any]] = json.loads(self.index_path.read_text())
        except (FileNotFoundError, ValueError):
            self.index = {}
        try:
            lines = self.journal_path.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
                self.index[str(entry.pop("image"))] = entry
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut short by a kill: its file was never renamed

    def run(self, tick: Any = lambda: None) -> list[Fetched]:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tally.start_phase("listing", 0, 0)
        todo = []
        for image in images_of(self.api, self.board):
            image_id = str(image["id"])
            if image.get("status") != "ready":
                self._end(Fetched(image_id, "skipped", error=f"not ready on the site ({image.get('status')})"))
            elif self._complete_on_disk(image_id):
                known = self.index[image_id]
                self._end(Fetched(image_id, "present", known["file"], known["size"]))
            else:
                todo.append(image_id)
        self.tally.start_phase("downloading", len(todo), 0)
        try:
            pool.run(todo, self._fetch, workers=self.parallel, stop=self.stop, tick=tick)
        finally:
            self._save_index()
        return list(self.results.values())

    def _complete_on_disk(self, image_id: str) -> bool:
        known = self.index.get(image_id)
        if not known or known.get("variant") != self.variant:
            return False
        path = self.folder / known["file"]
        return path.is_file() and path.stat().st_size == known["size"]

    def _fetch(self, slot: int, image_id: str) -> None:
        try:
            self._fetch_one(slot, image_id)
        except (ApiError, TransientError) as exc:
            self._end(Fetched(image_id, "failed", error=exc.message))
        except OSError as exc:
            self._end(Fetched(image_id, "failed", error=f"cannot write it: {exc}"))
        finally:
            self.tally.finish(slot)

    def _fetch_one(self, slot: int, image_id: str) -> None:
        for attempt in (1, 2):
            query = "?original=1" if self.originals else ""
            link = self.api.get(f"/api/images/{image_id}/download{query}")
            name = self._name_for(image_id, link.get("filename") or "")
            target = self.folder / name
            part = target.with_name(target.name + ".part")
            self.tally.begin(slot, name, 0)
            try:
                size = self._stream(slot, link["url"], part)
            except _Expired:
                if attempt == 1:
                    continue  # a fresh link (the first one expired while we waited)
                raise
            # Recorded first, renamed then: a file under its final name is always one the next run knows.
            self._record(image_id, {"file": name, "size": size, "variant": self.variant})  # what was asked for
            part.replace(target)
            self._end(Fetched(image_id, "downloaded", name, size))
            return

    def _stream(self, slot: int, url: str, part: Path) -> int:
        """GET ``url`` into ``part``, from where an earlier run stopped; returns the whole file's size."""

        def send() -> requests.Response:
            have = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            # A plain GET of a presigned URL: never send the token there.
            return requests.get(url, headers=headers, stream=True, timeout=(10, 120))

        response = self.api.retry.call(send, what=f"downloading {part.name[:-5]}")
        with response:
            if response.status_code == 416:  # the .part already holds everything
                return part.stat().st_size
            if response.status_code in (401, 403):
                raise _Expired(error_message(response))
            if response.status_code not in (200, 206):
                raise ApiError(response.status_code, error_message(response))
            append = response.status_code == 206
            have = part.stat().st_size if append else 0
            total = have + int(response.headers.get("Content-Length") or 0)
            with self.tally.lock:
                self.tally.bytes += total
                if slot in self.tally.active:
                    self.tally.active[slot].size = total
            self.tally.advance(slot, have)
            with part.open("ab" if append else "wb") as out:
                for block in response.iter_content(CHUNK):
                    out.write(block)
                    self.tally.advance(slot, len(block))
                written = out.tell()
        if total and written != total:
            raise TransientError(f"the download of {part.name[:-5]} stopped at {written} of {total} bytes")
        return written

    def _name_for(self, image_id: str, suggested: str) -> str:
        """A name in DIR for this image: the site's, unless another image of the index or a file we did not write
        has it already."""
        with self._lock:
            known = self.index.get(image_id)
            if known and known.get("variant") in (None, self.variant):
                return known["file"]
            name = safe_name(suggested, f"{image_id}.jpg")
            taken = {entry["file"] for other, entry in self.index.items() if other != image_id}
            if name in taken or (self.folder / name).exists():
                stem, dot, ext = name.rpartition(".")
                name = f"{stem or name} ({image_id[:8]}){dot}{ext}" if dot else f"{name} ({image_id[:8]})"
            # Reserve it: a parallel worker must not pick the same name.
            self.index[image_id] = {"file": name, "size": -1, "variant": None}
            return name

    def _record(self, image_id: str, entry: dict[str, Any]) -> None:
        """A finished file, in the journal at once (a line appended: cheap whatever the board's size)."""
        with self._lock:
            with self.journal_path.open("a") as journal:
                journal.write(json.dumps({"image": image_id, **entry}) + "\n")
            self.index[image_id] = entry

    def _save_index(self) -> None:
        """The index with everything recorded, written whole (atomically); the journal is then folded in. Under the
        lock: a worker still finishing a file (the run was interrupted) journals it before or after, never between."""
        with self._lock:
            data = {k: v for k, v in self.index.items() if v.get("size", -1) >= 0}
            partial = self.index_path.with_name(self.index_path.name + ".tmp")
            partial.write_text(json.dumps(data, indent=1, sort_keys=True))
            partial.replace(self.index_path)
            self.journal_path.unlink(missing_ok=True)

    def _end(self, fetched: Fetched) -> None:
        with self._lock:
            self.results[fetched.image] = fetched
        self.tally.outcome(fetched.state)
        self.tally.event(
            {"image": fetched.image, "outcome": fetched.state, "file": fetched.file, "error": fetched.error}
        )


class _Expired(Exception):
    """S3 refused a presigned link (it expired): ask the site for a fresh one."""
