"""A stand-in for the site's JSON API and S3, in a thread: the client's flows without Django, moto or processes.

It follows /work/shared-notes/api-contract.md (the real stack's end-to-end test checks the same flows for real).
Content is "processed" at once: a file that starts with JPEG/PNG magic bytes ends ready, anything else failed.
Failure injection: ``fail`` maps a route name to a list of statuses to answer first (e.g. {"ticket": [429]}).

``functions = True``: tickets come from a stand-in for the upload-ticket function (``/fn/tickets``) with grants from
``POST /api/upload-grants``, sized as the site sizes them: at most the files asked for and the places free
(``max_open`` less ``open_elsewhere``, the person's other open uploads, less the places this run's grants hold until
their photos are processed); no place free is a 429 with ``Retry-After``. The function answers a used-up grant
with a 429 without ``Retry-After``, a revoked one (``revoke_grants``) with a 403; its photos are processed as soon
as S3 has their bytes (no completion report).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from boardsite_client import tokens

TOKEN = "bst_" + "a1B2c3D4e5" * 3
TOKEN += tokens.checksum(TOKEN[4:])


class FakeSite:
    def __init__(self) -> None:
        self.images: dict[str, dict] = {}  # id -> image (with "data" and "sha256")
        self.fail: dict[str, list[int]] = {}
        self.retry_after = "0"
        self.calls: list[str] = []
        self.s3_posts = 0
        self.lock = threading.Lock()
        self.functions = False
        self.max_open = 20
        self.open_elsewhere = 0
        self.revoke_grants = False
        self.grants: dict[str, dict] = {}  # id -> {"tickets", "used", "images"}
        self.board = {
            "id": 7,
            "title": "Holiday",
            "description": "",
            "visibility": "private",
            "role": "owner",
            "photo_count": 0,
            "page_url": "/boards/7/",
            "images_url": "/api/boards/7/images",
        }
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, route: str) -> int:
        return sum(1 for c in self.calls if c == route)

    def ready(self) -> list[dict]:
        return [i for i in self.images.values() if i["status"] == "ready"]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def answer(self, status: int, body: object = None, headers: dict | None = None) -> None:
                data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def route(self, name: str) -> bool:
                """Record the call; answer an injected failure instead when one is queued (True: answered)."""
                with site.lock:
                    site.calls.append(name)
                    queued = site.fail.get(name) or []
                    status = queued.pop(0) if queued else None
                if status is None:
                    return False
                headers = {"Retry-After": site.retry_after} if status == 429 else {}
                self.answer(status, {"error": f"injected {status}"}, headers)
                return True

            def authorized(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.answer(401, {"error": "Unknown or revoked token."}, {"WWW-Authenticate": "Bearer"})
                    return False
                return True

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if url.path.startswith("/s3/"):
                    return self.s3_get(url.path.removeprefix("/s3/"))
                if not self.authorized():
                    return
                if url.path == "/api/me":
                    site.calls.append("me")
                    token = {"name": "laptop", "scopes": ["read", "upload"], "expires_at": "2030-01-01T00:00:00Z"}
                    return self.answer(200, {"username": "owner", "token": token})
                if url.path == "/api/boards":
                    site.calls.append("boards")
                    return self.answer(200, {"boards": [site.board]})
                if url.path == "/api/images":
                    if self.route("status"):
                        return None
                    ids = query["ids"][0].split(",")
                    found = [public(site.images[i]) for i in ids if i in site.images]
                    return self.answer(200, {"images": found, "missing": [i for i in ids if i not in site.images]})
                if m := re.fullmatch(r"/api/boards/7/images", url.path):
                    site.calls.append("list")
                    ordered = sorted(site.images.values(), key=lambda i: i["n"], reverse=True)
                    start = int(query.get("after", ["0"])[0])
                    limit = int(query.get("limit", ["50"])[0])
                    page = ordered[start : start + limit]
                    more = start + limit < len(ordered)
                    return self.answer(
                        200, {"images": [public(i) for i in page], "next": str(start + limit) if more else None}
                    )
                if m := re.fullmatch(r"/api/images/([\w-]+)/download", url.path):
                    if self.route("download"):
                        return None
                    image = site.images[m.group(1)]
                    original = query.get("original") == ["1"]
                    return self.answer(
                        200,
                        {
                            "url": f"{site.url}/s3/{image['id']}",
                            "filename": image["filename"],
                            "variant": "original" if original else "large",
                            "content_type": "image/jpeg",
                            "expires_at": "2030-01-01T00:00:00Z",
                        },
                    )
                return self.answer(404, {"error": "No such API address."})

            def s3_get(self, image_id: str) -> None:
                if self.route("s3-get"):
                    return
                data = site.images[image_id]["data"]
                r = self.headers.get("Range")
                if r:
                    start = int(r.removeprefix("bytes=").rstrip("-"))
                    if start >= len(data):
                        return self.answer(416, b"")
                    return self.answer(
                        206, data[start:], {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                    )
                return self.answer(200, data)

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/s3":
                    return self.s3_post()
                if url.path == "/fn/tickets":  # the function: the grant is the only credential
                    return self.function_ticket(json.loads(self.body() or b"null"))
                if not self.authorized():
                    return None
                body = json.loads(self.body() or b"null")
                if url.path == "/api/upload-grants":
                    return self.grant(body)
                if url.path == "/api/boards/7/lookup":
                    site.calls.append("lookup")
                    assert len(body["sha256"]) <= 500
                    found = {i["sha256"]: i["id"] for i in site.images.values() if i["status"] == "ready"}
                    return self.answer(200, {"found": {d: found[d] for d in body["sha256"] if d in found}})
                if url.path == "/api/uploads":
                    if self.route("ticket"):
                        return None
                    return self.answer(201, self.new_ticket(body))
                if m := re.fullmatch(r"/api/images/([\w-]+)/(complete|abandon)", url.path):
                    if self.route(m.group(2)):
                        return None
                    image = site.images.get(m.group(1))
                    if image is None:
                        return self.answer(404, {"error": "No such image."})
                    if m.group(2) == "abandon":
                        image.update(status="failed", error=body["reason"])
                    elif image["data"] is None:
                        return self.answer(400, {"error": "The file has not arrived."})
                    elif image["status"] == "pending":
                        process(image)
                        return self.answer(200, {**public(image), "status": "processing"})
                    return self.answer(200, public(image))
                return self.answer(404, {"error": "No such API address."})

            def new_ticket(self, body: dict, grant: str | None = None) -> dict:
                image_id = str(uuid.uuid4())
                with site.lock:
                    site.images[image_id] = {
                        "id": image_id,
                        "status": "pending",
                        "error": None,
                        "n": len(site.images),
                        "filename": body["filename"],
                        "size": body["size"],
                        "data": None,
                        "sha256": None,
                        "grant": grant,
                    }
                upload = {
                    "url": f"{site.url}/s3",
                    "fields": {"key": f"originals/7/{image_id}.jpg", "x-id": image_id},
                    "expires_at": "2030-01-01T00:00:00Z",
                }
                image = {
                    "id": image_id,
                    "status": "pending",
                    "status_url": f"/api/images/{image_id}",
                    "complete_url": None if grant else f"/api/images/{image_id}/complete",
                    "abandon_url": f"/api/images/{image_id}/abandon",
                }
                return {"image": image, "upload": upload}

            def grant(self, body: dict) -> None:
                if self.route("grant"):
                    return
                if not site.functions:
                    return self.answer(200, {"runtime": "inline", "ticket_url": "/api/uploads", "grant": None})
                with site.lock:
                    held = sum(
                        g["tickets"] - sum(1 for i in g["images"] if site.images[i]["status"] in ("ready", "failed"))
                        for g in site.grants.values()
                        if not g.get("revoked")  # a revoked grant holds no place
                    )
                    free = site.max_open - site.open_elsewhere - held
                    if free <= 0:
                        error = {"error": f"You have {site.max_open} uploads started; try again in 5 seconds."}
                        return self.answer(429, error, {"Retry-After": site.retry_after})
                    grant_id = uuid.uuid4().hex
                    tickets = min(int(body["files"]), free)
                    site.grants[grant_id] = {"tickets": tickets, "used": 0, "images": []}
                answer = {
                    "runtime": "lambda",
                    "ticket_url": f"{site.url}/fn/tickets",
                    "grant": grant_id,
                    "tickets": tickets,
                    "bytes": body["bytes"],
                    "expires_at": "2030-01-01T00:00:00Z",
                }
                return self.answer(201, answer)

            def function_ticket(self, body: dict) -> None:
                assert "Authorization" not in self.headers, "the token is never sent to the function"
                if self.route("fn-ticket"):
                    return
                with site.lock:
                    grant = site.grants.get(body.get("grant"))
                    if grant is None or site.revoke_grants:
                        if grant is not None:
                            grant["revoked"] = True
                        return self.answer(403, {"error": "This upload grant was revoked: ask the site for a new one."})
                    if grant["used"] >= grant["tickets"]:
                        error = (
                            f"This upload grant's {grant['tickets']} tickets are used: ask the site for a new grant."
                        )
                        return self.answer(429, {"error": error})
                    grant["used"] += 1
                ticket = self.new_ticket(body, grant=body["grant"])
                with site.lock:
                    grant["images"].append(ticket["image"]["id"])
                return self.answer(201, ticket)

            def s3_post(self) -> None:
                data = self.body()
                if self.route("s3"):
                    return
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                message = BytesParser(policy=policy.HTTP).parsebytes(head + data)
                fields = {
                    p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                    for p in message.iter_parts()
                }
                image = site.images[fields["x-id"].decode()]
                assert list(fields)[-1] == "file", "the file is the last field"
                assert len(fields["file"]) == image["size"], "content-length-range: exactly the declared size"
                with site.lock:
                    site.s3_posts += 1
                image["data"] = fields["file"]
                if image.get("grant"):  # placed for Lambda: S3 starts its processing
                    process(image)
                return self.answer(204)

        return Handler


def process(image: dict) -> None:
    """At once: ready when it starts with JPEG or PNG magic bytes, else failed."""
    ok = image["data"][:3] in (b"\xff\xd8\xff", b"\x89PN")
    image.update(
        status="ready" if ok else "failed",
        error=None if ok else "This file is not an image we can read (it is not a JPEG).",
        sha256=hashlib.sha256(image["data"]).hexdigest() if ok else None,
    )


def public(image: dict) -> dict:
    return {k: v for k, v in image.items() if k not in ("data", "n", "size", "grant")}
