"""A local stand-in for a CloudFront distribution with a trusted key group: CloudFront cannot run here, and the
site's CloudFront mode (``boardsite/images/cdn.py``) should be tried and tested all the same. ``make run`` starts it
with ``BOARDSITE_CDN=local``; the tests run it in a thread.

    python -m devstack.cdn --port 5006 --key-id KLOCAL --public-key .local/cdn/public.pem

It does what such a distribution does for a viewer request, as documented in the CloudFront developer guide
("Serving private content with signed URLs and signed cookies"), and no more: it reads the signature from the query
(``Expires`` or ``Policy``, ``Signature``, ``Key-Pair-Id``) or else from the ``CloudFront-*`` cookies, verifies the
RSA-SHA1 signature of the policy with the trusted public key of that id, checks that the policy's resource (``*``
and ``?`` wildcards) covers the requested URL and that ``DateLessThan`` (and ``DateGreaterThan``) hold now; then
answers with the object from the S3 origin, or 403 like CloudFront (a missing object through OAC is a 403 too, and
so is any key the bucket policy does not let the distribution read: anything but the variants' image files).
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from offload.config import FORMAT_EXTENSIONS, VARIANTS_PREFIX


def new_key_pair() -> tuple[Any, str, str]:
    """A CloudFront-style RSA key pair: (private key, its PKCS#8 PEM, the public key's PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).decode()
    return key, private_pem, public_pem


def _b64decode(value: str) -> bytes:
    return base64.b64decode(value.replace("-", "+").replace("_", "=").replace("~", "/"))


def _resource_matches(resource: str, url: str) -> bool:
    pattern = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in resource)
    return re.fullmatch(pattern, url, flags=re.DOTALL) is not None


class CdnStandIn:
    """``base_url`` is what the distribution's URLs start with; ``trusted`` maps key ids to public keys."""

    def __init__(self, s3: Any, bucket: str, trusted: dict[str, Any]) -> None:
        self.s3, self.bucket, self.trusted = s3, bucket, trusted
        self.base_url = ""
        # (path, status, how it was signed): the latest only, the local stack's stand-in runs for days
        self.requests: deque[tuple[str, int, str]] = deque(maxlen=1000)

    def authorize(self, path: str, query: str, cookie_header: str, now: float | None = None) -> tuple[bool, str]:
        """(allowed, how it was signed or why not); anything malformed is a refusal, as at CloudFront (403)."""
        try:
            return self._authorize(path, query, cookie_header, time.time() if now is None else now)
        except (ValueError, KeyError, TypeError, IndexError, CookieError) as exc:  # base64, JSON, numbers, shape
            return False, f"malformed signature ({type(exc).__name__})"

    def _authorize(self, path: str, query: str, cookie_header: str, now: float) -> tuple[bool, str]:
        url = self.base_url + path
        params = dict(parse_qsl(query))
        if "Signature" in params:
            how, signed = "url", params
            fields = {"Policy": "Policy", "Expires": "Expires", "Signature": "Signature", "Key-Pair-Id": "Key-Pair-Id"}
        else:
            cookies = SimpleCookie()
            cookies.load(cookie_header or "")
            signed = {k: m.value for k, m in cookies.items()}
            how = "cookie"
            fields = {
                "Policy": "CloudFront-Policy",
                "Expires": "CloudFront-Expires",
                "Signature": "CloudFront-Signature",
                "Key-Pair-Id": "CloudFront-Key-Pair-Id",
            }
        key = self.trusted.get(signed.get(fields["Key-Pair-Id"], ""))
        if key is None or fields["Signature"] not in signed:
            return False, f"{how}: missing or unknown key pair"
        if fields["Policy"] in signed:
            policy_bytes = _b64decode(signed[fields["Policy"]])
        elif fields["Expires"] in signed:  # canned policy: rebuilt for this very URL, as CloudFront does
            expires = int(signed[fields["Expires"]])
            policy_bytes = json.dumps(
                {"Statement": [{"Resource": url, "Condition": {"DateLessThan": {"AWS:EpochTime": expires}}}]},
                separators=(",", ":"),
            ).encode()
        else:
            return False, f"{how}: no policy"
        try:
            key.verify(_b64decode(signed[fields["Signature"]]), policy_bytes, padding.PKCS1v15(), hashes.SHA1())
        except (InvalidSignature, ValueError):
            return False, f"{how}: bad signature"
        statement = json.loads(policy_bytes)["Statement"][0]
        condition = statement["Condition"]
        if not _resource_matches(statement["Resource"], url):
            return False, f"{how}: resource does not cover the URL"
        if not now < condition["DateLessThan"]["AWS:EpochTime"]:
            return False, f"{how}: expired"
        if "DateGreaterThan" in condition and not now >= condition["DateGreaterThan"]["AWS:EpochTime"]:
            return False, f"{how}: not yet valid"
        return True, how

    @staticmethod
    def origin_allows(key: str) -> bool:
        """What the bucket policy lets the distribution read (deploy/template.py, ``cdn_bucket_statement``)."""
        extensions = tuple(f".{e}" for e in set(FORMAT_EXTENSIONS.values()))
        return key.startswith(VARIANTS_PREFIX) and key.endswith(extensions) and "/../" not in f"/{key}/"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.answer(with_body=True)

            def do_HEAD(self) -> None:
                self.answer(with_body=False)

            def answer(self, *, with_body: bool) -> None:
                parts = urlsplit(self.path)
                ok, how = emulator.authorize(parts.path, parts.query, self.headers.get("Cookie", ""))
                body, content_type, status = b"", "text/plain", 403
                key = unquote(parts.path.lstrip("/"))
                if ok and not emulator.origin_allows(key):
                    how += ": the bucket policy lets the distribution read variants' image files only"
                elif ok:
                    try:
                        obj = emulator.s3.get_object(Bucket=emulator.bucket, Key=key)
                        body, content_type, status = obj["Body"].read(), obj["ContentType"], 200
                    except (ClientError, BotoCoreError) as exc:  # no such key, or one S3 refuses: CloudFront's 403
                        how += f": the origin answered {type(exc).__name__}"
                emulator.requests.append((parts.path, status, how))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if with_body:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the browser cancelled the image: nothing to say
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def running(emulator: CdnStandIn, host: str = "127.0.0.1") -> Iterator[CdnStandIn]:
    server = ThreadingHTTPServer((host, 0), emulator.handler())
    emulator.base_url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield emulator
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    from cryptography.hazmat.primitives import serialization

    from offload import aws, config

    parser = argparse.ArgumentParser(prog="python -m devstack.cdn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key-id", required=True, help="the id the site signs with (BOARDSITE_CDN_KEY_ID)")
    parser.add_argument("--public-key", required=True, help="PEM file of the key pair's public key")
    args = parser.parse_args(argv)
    cfg = config.load()
    public_key = serialization.load_pem_public_key(Path(args.public_key).read_bytes())
    stand_in = CdnStandIn(aws.make_client("s3", cfg.region, cfg.endpoint_url), cfg.bucket, {args.key_id: public_key})
    server = ThreadingHTTPServer((args.host, args.port), stand_in.handler())
    stand_in.base_url = f"http://{args.host}:{args.port}"
    print(f"local CloudFront stand-in for s3://{cfg.bucket}/variants/ on {stand_in.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
