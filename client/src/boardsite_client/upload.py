"""``boardsite upload BOARD PATH...``: the site's three upload steps for each file, several at once.

A run: find the images (totals counted before the first byte), hash the ones the manifest does not know, ask the
board which contents it already has (``POST /api/boards/{id}/lookup``, 500 at a time), send the rest (ticket ->
multipart POST to S3 -> complete), then follow each photo (``GET /api/images?ids=``, 100 at a time) until it ends
ready or failed, or ``wait`` runs out. Every step is recorded in the manifest (manifest.py) as it happens.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boardsite_client import pool
from boardsite_client.api import Api, ApiError, ScopeError, TransientError, error_message, s3_transient
from boardsite_client.files import LocalFile, sha256_of
from boardsite_client.manifest import Manifest, next_step
from boardsite_client.progress import Tally

LOOKUP_CHUNK = 500  # the most sha256 one lookup takes
STATUS_CHUNK = 100  # the most ids one status request takes
FINAL = ("ready", "failed")


@dataclass
class Outcome:
    """Where a file ended: ready, failed, present (already on the board), duplicate (same content as another file
    of this run), processing (not settled when the wait ran out) or error (the client gave up: retries ran out)."""

    file: LocalFile
    state: str
    image: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "file": str(self.file.path),
            "size": self.file.size,
            "state": self.state,
            "image": self.image,
            "error": self.error,
        }


class S3Refused(Exception):
    """S3 refused the bytes for a reason a new ticket may cure (an expired policy, say)."""


class MultipartBody:
    """The presigned POST's ``multipart/form-data`` body, streamed from the file (never all in memory), with its
    length known up front (S3 wants a Content-Length) and each block read reported to ``progress``."""

    def __init__(self, fields: dict[str, str], file: LocalFile, progress: Callable[[int], None]) -> None:
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        )
        filename = file.path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {file.content_type}\r\n\r\n"
        ).encode()
        self._head, self._tail = head, f"\r\n--{boundary}--\r\n".encode()
        self._file = file.path.open("rb")
        self._size = file.size
        self._progress = progress
        self._stage = 0  # 0 head, 1 file, 2 tail, 3 done

    def __len__(self) -> int:
        return len(self._head) + self._size + len(self._tail)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        while self._stage < 3:
            if self._stage == 0:
                self._stage = 1
                return self._head
            if self._stage == 1:
                block = self._file.read(n)
                if block:
                    self._progress(len(block))
                    return block
                self._file.close()
                self._stage = 2
                continue
            self._stage = 3
            return self._tail
        return b""

    def close(self) -> None:
        self._file.close()


class GrantRefused(ApiError):
    """The upload-ticket function kept refusing this run's grants (used up, expired, revoked) while new grants
    brought no ticket at all: nothing about the file itself, a re-run asks again."""


# Consecutive refusals of one ticket with no ticket issued to anyone meanwhile: renewing got nowhere, give up.
FRUITLESS_REFUSALS = 5


class Tickets:
    """Where this run's upload tickets come from (``POST /api/upload-grants``): the site itself (``POST
    /api/uploads``), or the site's upload-ticket function with a grant the site signed for these files. A grant the
    function refuses (expired, used up, revoked: a 403, or a 429 without ``Retry-After``) is asked for again, once
    per refused grant whichever thread was refused, and a ticket is asked for again on each new grant for as long
    as renewing makes progress: the site sizes grants by the places free (other open uploads make them small, and
    other threads may use up a new grant first). Only ``FRUITLESS_REFUSALS`` refusals in a row with no ticket issued
    to anyone in between end it (``GrantRefused``); the site's own ``429`` on a grant request is waited out by the
    retry policy (``ThrottledOut`` when too long). The access token is never sent to the function: the grant is its
    only credential."""

    def __init__(self, api: Api, board: int) -> None:
        self.api = api
        self.board = board
        self.grant: dict[str, Any] | None = None
        self.issued = 0  # tickets the function issued this run (progress, for the renewals)
        self._lock = threading.Lock()
        self._renewing = threading.Lock()

    def prepare(self, files: int, size: int) -> None:
        try:
            wanted = {"board": self.board, "files": max(1, files), "bytes": max(1, size)}
            answer = self.api.post("/api/upload-grants", wanted)
        except ApiError:
            answer = None  # a site without grants, or none for now: its own tickets
        with self._lock:
            self.grant = answer if answer and answer.get("runtime") == "lambda" and answer.get("grant") else None

    def ticket(self, body: dict[str, Any], remaining: Callable[[], tuple[int, int]]) -> tuple[dict[str, Any], bool]:
        """(the ticket, whether the function issued it)."""
        fruitless = 0
        with self._lock:
            seen = self.issued
        while True:
            with self._lock:
                grant = self.grant
            if grant is None:
                return self.api.post("/api/uploads", body), False
            response = self._post(grant["ticket_url"], {**body, "grant": grant["grant"]}, body["filename"])
            if response.status_code == 201:
                with self._lock:
                    self.issued += 1
                return response.json(), True
            refused = response.status_code == 403 or (
                response.status_code == 429 and not response.headers.get("Retry-After")
            )
            if not refused:
                raise ApiError(response.status_code, error_message(response))
            with self._lock:
                progress, seen = self.issued > seen, self.issued
            fruitless = 0 if progress else fruitless + 1
            if fruitless >= FRUITLESS_REFUSALS:
                raise GrantRefused(
                    response.status_code,
                    f"{error_message(response)} (refused {fruitless} times in a row, new grants brought no "
                    "ticket; a re-run asks again)",
                )
            self._renew(grant, remaining)

    def _renew(self, refused: dict[str, Any], remaining: Callable[[], tuple[int, int]]) -> None:
        """A new grant for what is left, once per refused grant: the other threads it refused too use the new one
        (each asking for its own would reserve the same places several times over)."""
        with self._renewing:
            with self._lock:
                if self.grant is not refused:
                    return  # another thread renewed it meanwhile
            self.prepare(*remaining())

    def _post(self, url: str, body: dict[str, Any], name: str) -> Any:
        """The function's answer: connection errors and 5xx retried with back-off; a 429 with ``Retry-After``
        waited out (any other answer is the caller's)."""

        def send() -> Any:
            return self.api.session.post(url, json=body, timeout=(10, 60))

        return self.api.retry.call(
            send,
            transient=lambda r: r.status_code >= 500,
            what=f"a ticket for {name}",
            renew=lambda r: r.status_code == 429 and not r.headers.get("Retry-After"),
        )


class Uploader:
    def __init__(
        self,
        api: Api,
        board: int,
        manifest: Manifest,
        tally: Tally,
        *,
        stop: threading.Event,
        parallel: int = 4,
        wait: float = 600.0,
        tick: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.board = board
        self.manifest = manifest
        self.tally = tally
        self.stop = stop
        self.parallel = parallel
        self.wait = wait
        self._tick = tick
        self.clock = clock
        self.outcomes: dict[str, Outcome] = {}  # file key -> where it ended
        self.following: dict[str, LocalFile] = {}  # image id -> file, sent and processing
        self.poll_refused: str | None = None  # why statuses cannot be read (a token without the read scope)
        self._lock = threading.Lock()
        self._next_poll = 0.0
        self.tickets = Tickets(api, board)
        self._left = [0, 0]  # files and bytes still to be ticketed (what a renewed grant asks for)
        # A photo the function ticketed reaches the site as an event, moments later: not "missing" before this.
        self._appears_by: dict[str, float] = {}

    # The phases, in order (``run``).

    def run(self, files: list[LocalFile]) -> list[Outcome]:
        to_send: list[LocalFile] = []
        for file in files:
            entry = self.manifest.get(file)
            step = next_step(entry)
            if step == "done":
                self._end(file, "present" if entry["state"] == "present" else "ready", entry.get("image"))
            elif step == "failed":
                self._end(file, "failed", entry.get("image"), entry.get("error"))
            elif step == "follow":
                self.following[entry["image"]] = file
            else:
                to_send.append(file)
        # Counted as they are taken up: the first ticks (hashing, the lookup) poll, and may settle them already.
        self.tally.outcome("processing", len(self.following))
        self._hash([f for f in to_send if next_step(self.manifest.get(f)) == "send"])
        to_send = self._lookup(to_send)
        self._left = [len(to_send), sum(f.size for f in to_send)]
        if to_send:
            self.tally.start_phase("uploading", *self._left)
            self.tickets.prepare(*self._left)
        pool.run(to_send, self._send, workers=self.parallel, stop=self.stop, tick=self.tick)
        self._follow_all()
        return [self.outcomes[f.key] for f in files if f.key in self.outcomes]

    def tick(self) -> None:
        """The main thread's heartbeat: progress, the manifest, and statuses every couple of seconds."""
        if self.following and self.clock() >= self._next_poll:
            self._poll()
            self._next_poll = self.clock() + 2.0
        self.manifest.flush()
        self._tick()

    def _hash(self, files: list[LocalFile]) -> None:
        unknown = [f for f in files if not (self.manifest.get(f) or {}).get("sha256")]
        if not unknown:
            return  # no "hashing 0/0 files"
        self.tally.start_phase("hashing", len(unknown), sum(f.size for f in unknown))

        def work(slot: int, file: LocalFile) -> None:
            self.tally.begin(slot, file.path.name, file.size)
            try:
                digest = sha256_of(file.path, lambda n: self.tally.advance(slot, n))
            except OSError as exc:
                self._fail(file, f"cannot read it: {exc.strerror or exc}", state="error")
                self.tally.finish(slot)
                return
            self.manifest.update(file, state="hashed", sha256=digest)
            self.tally.finish(slot)

        pool.run(unknown, work, workers=self.parallel, stop=self.stop, tick=self.tick)

    def _lookup(self, files: list[LocalFile]) -> list[LocalFile]:
        """The files left to send: not already on the board (by content), and one per content."""
        if not files:
            return []
        self.tally.start_phase("checking", len(files), 0)
        first_of: dict[str, LocalFile] = {}
        candidates = []
        for file in files:
            if file.key in self.outcomes:
                continue  # could not be read
            entry = self.manifest.get(file) or {}
            digest = entry.get("sha256")
            if next_step(entry) == "send" and digest in first_of:
                self._end(file, "duplicate", error=f"same content as {first_of[digest].path}")
                continue
            if digest:
                first_of.setdefault(digest, file)
            candidates.append(file)
        digests = sorted(
            {d for f in candidates if next_step(e := self.manifest.get(f)) == "send" and (d := (e or {}).get("sha256"))}
        )
        found: dict[str, str] = {}
        for start in range(0, len(digests), LOOKUP_CHUNK):
            answer = self.api.post(
                f"/api/boards/{self.board}/lookup", {"sha256": digests[start : start + LOOKUP_CHUNK]}
            )
            found.update(answer.get("found") or {})
            self.tick()
        left = []
        for file in candidates:
            entry = self.manifest.get(file) or {}
            if next_step(entry) == "send" and entry.get("sha256") in found:
                image = found[entry["sha256"]]
                self.manifest.update(file, state="present", image=image)
                self._end(file, "present", image)
            else:
                left.append(file)
        return left

    # One file: ticket, bytes, complete (a worker thread).

    def _send(self, slot: int, file: LocalFile) -> None:
        self.tally.begin(slot, file.path.name, file.size)
        try:
            self._send_file(slot, file)
        except ApiError as exc:
            # A 4xx: the site refuses this file (type, size, a quota): a re-run would be refused again ("failed").
            # A 429 or a refused grant is about the moment, not the file: a re-run tries again ("error").
            passing = exc.status == 429 or isinstance(exc, GrantRefused)
            image = (self.manifest.get(file) or {}).get("image")
            self._fail(file, exc.message, state="error" if passing else "failed", image=image)
        except TransientError as exc:
            self._fail(file, exc.message, state="error", image=(self.manifest.get(file) or {}).get("image"))
        finally:
            self.tally.finish(slot)

    def _send_file(self, slot: int, file: LocalFile) -> None:
        entry = self.manifest.get(file) or {}
        if next_step(entry) == "confirm":
            image = self._complete(entry["image"])
            if image is not None:
                self._completed(file, image)
                return
            self._abandon(entry["image"], "the upload was interrupted before its bytes were stored; sent again")
        for attempt in (1, 2):
            body = {
                "board": self.board,
                "filename": file.path.name,
                "content_type": file.content_type,
                "size": file.size,
            }
            ticket, by_function = self.tickets.ticket(body, lambda: (self._left[0], self._left[1]))
            with self._lock:
                self._left = [max(0, self._left[0] - 1), max(0, self._left[1] - file.size)]
            image_id = ticket["image"]["id"]
            if by_function:
                self._appears_by[image_id] = self.clock() + 60
            self.manifest.update(file, state="ticketed", image=image_id)
            try:
                self._put(slot, file, ticket["upload"])
            except S3Refused as exc:
                # e.g. the ticket expired while retries waited: one new ticket, then give up.
                self._abandon(image_id, f"storage refused the bytes: {exc}")
                if attempt == 1:
                    continue
                self._fail(file, f"storage refused the bytes: {exc}", state="error", image=image_id)
                return
            except (TransientError, OSError) as exc:
                reason = exc.message if isinstance(exc, TransientError) else f"cannot read it: {exc}"
                self._abandon(image_id, f"the client could not send the bytes: {reason}")
                self._fail(file, reason, state="error", image=image_id)
                return
            self.manifest.update(file, state="sent")
            if ticket["image"].get("complete_url") is None:
                # Placed for Lambda by the function: S3 starts its processing; there is nothing to report.
                self._completed(file, {"id": image_id, "status": "pending"})
                return
            image = self._complete(image_id)
            if image is None:  # S3 said stored, the site does not see it: rare; a re-run sends it again
                self._fail(file, "the site did not find the stored bytes", state="error", image=image_id)
                return
            self._completed(file, image)
            return

    def _put(self, slot: int, file: LocalFile, upload: dict[str, Any]) -> None:
        """The presigned POST, retried on connection errors, 5xx and S3's transient error codes."""

        def send() -> Any:
            self.tally.rewind(slot)
            body = MultipartBody(upload["fields"], file, lambda n: self.tally.advance(slot, n))
            try:
                return self.api.session.post(
                    upload["url"], data=body, headers={"Content-Type": body.content_type}, timeout=(10, 300)
                )
            finally:
                body.close()

        response = self.api.retry.call(send, transient=s3_transient, what=f"sending {file.path.name} to storage")
        if response.status_code not in (200, 201, 204):
            raise S3Refused(error_message(response))

    def _complete(self, image_id: str) -> dict | None:
        """``POST .../complete``: the image's status, or None when storage does not have its bytes (400)."""
        try:
            return self.api.post(f"/api/images/{image_id}/complete")
        except ApiError as exc:
            if exc.status in (400, 404, 409):
                return None
            raise

    def _abandon(self, image_id: str, reason: str) -> None:
        """Best effort: the site's sweep ends an unreported ticket anyway, this only says why sooner."""
        try:
            self.api.request(
                "POST", f"/api/images/{image_id}/abandon", json={"reason": reason}, ok=(200, 400, 404, 409)
            )
        except (ApiError, TransientError):
            pass

    def _completed(self, file: LocalFile, image: dict[str, Any]) -> None:
        self.manifest.update(file, state="completed", image=image["id"])
        # Stored and reported: said at once (scripts see each file leave the client, before its processing ends).
        self.tally.event({"file": str(file.path), "outcome": "sent", "image": image["id"], "error": None})
        with self._lock:
            self.following[image["id"]] = file
        self.tally.outcome("processing")
        self._settle(image)

    # Following the photos until they are ready or failed (the main thread).

    def _poll(self) -> None:
        if self.poll_refused:
            return
        with self._lock:
            ids = list(self.following)
        for start in range(0, len(ids), STATUS_CHUNK):
            chunk = ids[start : start + STATUS_CHUNK]
            try:
                answer = self.api.get("/api/images", params={"ids": ",".join(chunk)})
            except ScopeError as exc:
                self.poll_refused = exc.message
                return
            except TransientError:
                return  # the next poll asks again
            for image in answer.get("images") or []:
                self._settle(image)
            for image_id in answer.get("missing") or []:
                if self.clock() < self._appears_by.get(image_id, 0.0):
                    continue  # ticketed by the function: the site has not applied its event yet
                self._settle({"id": image_id, "status": "failed", "error": "the site no longer has this photo"})

    def _settle(self, image: dict[str, Any]) -> None:
        if image.get("status") not in FINAL:
            return
        with self._lock:
            file = self.following.pop(str(image["id"]), None)
        if file is None:
            return
        self.tally.outcome("processing", -1)
        if self.tally.phase == "processing":
            self.tally.finish(None)  # the phase counts photos settled
        self.manifest.update(file, state=image["status"], image=str(image["id"]), error=image.get("error"))
        self._end(file, image["status"], str(image["id"]), image.get("error") if image["status"] == "failed" else None)

    def _follow_all(self) -> None:
        self.tally.start_phase("processing", len(self.following), 0)
        deadline = self.clock() + self.wait
        interval = 1.0
        while self.following and not self.poll_refused and self.clock() < deadline:
            self._poll()
            self.manifest.flush()
            self._tick()
            end = min(deadline, self.clock() + interval)
            while self.clock() < end:
                time.sleep(0.2)
                self._tick()
            interval = min(5.0, interval * 1.5)
        for image_id, file in list(self.following.items()):
            why = self.poll_refused or f"not ready after waiting {self.wait:g} s; a re-run keeps following it"
            self._end(file, "processing", image_id, why)

    # Bookkeeping.

    def _fail(self, file: LocalFile, reason: str, *, state: str, image: str | None = None) -> None:
        self.manifest.update(file, state=state, error=reason, image=image)
        self._end(file, "failed" if state == "failed" else "error", image, reason)

    def _end(self, file: LocalFile, state: str, image: str | None = None, error: str | None = None) -> None:
        with self._lock:
            self.outcomes[file.key] = Outcome(file, state, image, error)
        if state in ("ready", "failed", "error", "present", "duplicate"):
            name = {"present": "on board", "duplicate": "on board"}.get(state, state)
            self.tally.outcome(name)
            self.tally.event({"file": str(file.path), "outcome": state, "image": image, "error": error})


def manifest_path(state_dir: Path, site_slug: str, board: int) -> Path:
    return state_dir / f"upload-{site_slug}-board-{board}.json"
