"""The functions stage's function URL, locally: ``make run`` serves the HTTP-triggered offload jobs (the registry's
``HTTPTrigger``s: the upload-ticket function) here, as Lambda would behind its function URL.

    python -m devstack.function_urls --port 5007 --origin http://127.0.0.1:8000

Each request becomes the event a function URL sends (payload format 2.0) and goes to the job's handler, measured and
recorded as a Lambda run (``offload/runs.py``), its run record batched onto the results queue like the local
runner's. CORS is answered here, as the function URL's own configuration does when deployed (the site's origin, POST,
``Content-Type``): the handler never adds CORS headers itself.
"""

from __future__ import annotations

import argparse
import base64
import logging
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devstack.runner import RUN_RECORDS
from offload import registry, runs

log = logging.getLogger("devstack.function_urls")

MAX_BODY = 64 * 1024


def http_jobs() -> dict[str, registry.Job]:
    return {j.trigger.path: j for j in registry.JOBS.values() if isinstance(j.trigger, registry.HTTPTrigger)}


def event_for(method: str, path: str, query: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict:
    """What a function URL hands the function for this request (payload format 2.0)."""
    try:
        text, encoded = body.decode(), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip},
            "timeEpoch": int(time.time() * 1000),
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def make_handler(origins: list[str]) -> type[BaseHTTPRequestHandler]:
    jobs = http_jobs()

    class Handler(BaseHTTPRequestHandler):
        server_version = "boardsite-function-url"

        def _cors(self) -> dict[str, str]:
            origin = self.headers.get("Origin", "")
            if origin not in origins:
                return {}
            return {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "content-type",
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            }

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in {**headers, **self._cors()}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_OPTIONS(self) -> None:
            self._send(204, {}, b"")

        def do_POST(self) -> None:
            self._handle("POST")

        def do_GET(self) -> None:
            self._handle("GET")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def _handle(self, method: str) -> None:
            url = urlsplit(self.path)
            headers = {"Content-Type": "application/json", "Cache-Control": "private, no-store"}
            raw = self.headers.get("Content-Length") or "0"
            if not (raw.isascii() and raw.isdigit()):
                self._send(400, headers, b'{"error": "Content-Length must be a number of bytes."}')
                return
            length = int(raw)
            if length > MAX_BODY:
                self.close_connection = True  # the body is not read
                self._send(413, headers, b'{"error": "The request body is too large."}')
                return
            body = self.rfile.read(length) if length else b""
            job = jobs.get(url.path.rstrip("/"))
            if job is None:
                self._send(404, headers, b'{"error": "No such address."}')
                return
            event = event_for(method, url.path, url.query, dict(self.headers), body, self.client_address[0])
            handler = job.resolve()
            answer = runs.measure(job, "lambda", lambda: handler(event, None), event, RUN_RECORDS)
            headers = dict(answer.get("headers") or {})
            payload = answer.get("body") or ""
            data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
            self._send(int(answer.get("statusCode", 200)), headers, data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler


class Server(ThreadingHTTPServer):
    """Lambda takes requests at once up to its concurrency: a deep listen queue, not http.server's 5 (a burst of
    clients would see connections reset)."""

    request_queue_size = 128
    daemon_threads = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5007)
    parser.add_argument("--origin", action="append", default=[], help="a site origin allowed by CORS (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = Server((args.host, args.port), make_handler(args.origin))
    paths = ", ".join(f"{p} ({j.name})" for p, j in http_jobs().items())
    print(f"function URL on http://{args.host}:{args.port}: {paths}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        RUN_RECORDS.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
