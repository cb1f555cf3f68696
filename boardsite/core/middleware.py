"""The edges of every request: JSON errors and no caching on the API, the Content-Security-Policy on pages."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils.cache import add_never_cache_headers

from boardsite import aws
from boardsite.core import jobs

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


def is_api_path(path: str) -> bool:
    """``/api`` itself and everything under ``/api/``."""
    return path == API_PREFIX.rstrip("/") or path.startswith(API_PREFIX)


# What an HTML error page would have said, as a sentence for the API's {"error": ...}.
_ERROR_SENTENCES = {
    400: "The request was malformed or refused; check it and try again.",
    403: "You are not allowed to do that.",
    404: "There is no such API address or object here.",
    405: "This method is not allowed here.",
    413: "The request body is too large.",
    500: "Something went wrong on our side; try again in a moment.",
}


def _bad_request(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=400)


def _too_large(limit: int) -> JsonResponse:
    return JsonResponse({"error": f"The request body is too large: the API accepts at most {limit} bytes."}, status=413)


def _error_sentence(status: int) -> str:
    if status in _ERROR_SENTENCES:
        return _ERROR_SENTENCES[status]
    if status >= 500:
        return _ERROR_SENTENCES[500]
    try:
        return f"{HTTPStatus(status).phrase}."
    except ValueError:
        return f"The request failed with status {status}."


def _as_json_error(response: HttpResponseBase) -> HttpResponseBase:
    """An error response that is not JSON (Django's HTML 400/403/404/500 pages) as ``{"error": ...}``, same status."""
    if response.status_code < 400 or response.get("Content-Type", "").startswith("application/json"):
        return response
    json_response = JsonResponse({"error": _error_sentence(response.status_code)}, status=response.status_code)
    for header, value in response.items():
        if header.lower() not in ("content-type", "content-length"):
            json_response[header] = value  # Allow, Retry-After, Vary, ...
    json_response.cookies = response.cookies
    return json_response


class ApiEdgeMiddleware:
    """Outermost: whatever happens inside, an ``/api/`` answer is JSON and is never stored by a cache.

    Inner layers turn exceptions into Django's error pages (and log them with their traceback); this turns those
    pages into ``{"error": "..."}``. Bodies over ``API_MAX_BODY_BYTES`` are refused before anything reads them, and
    the body is read here, once, so that a read Django finds too big later is a 413 too. This layer is outside
    Django's exception handling, so nothing it does may raise.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not is_api_path(request.path_info):
            return self.get_response(request)
        response = self._refuse_body_safely(request) or self.get_response(request)
        response = _as_json_error(response)
        # The answers carry presigned URLs, bearer tokens in all but name: no shared or disk cache may keep them.
        response["Cache-Control"] = "private, no-store"
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:  # a 413 answered here never went through SecurityMiddleware
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.method == "HEAD" and not response.streaming:
            # GET's headers, no body (RFC 9110 9.3.2), whichever server or proxy is in front.
            response.headers.setdefault("Content-Length", str(len(response.content)))
            response.content = b""
        return response

    def _refuse_body_safely(self, request: HttpRequest) -> HttpResponse | None:
        try:
            return self._refuse_body(request)
        except Exception:  # outside Django's handler, an exception would be its HTML 500: answer JSON, keep the trace
            logger.exception("Reading an API request's body failed: %s %s", request.method, request.path_info)
            return JsonResponse({"error": _ERROR_SENTENCES[500]}, status=500)

    @staticmethod
    def _refuse_body(request: HttpRequest) -> HttpResponse | None:
        limit = settings.API_MAX_BODY_BYTES
        header = str(request.META.get("CONTENT_LENGTH") or "").strip(" \t") or "0"
        # Django's request.body calls int() on it and raises ValueError; HTTP allows digits only ("1e3", "-1", "0x10",
        # Arabic-Indic digits are not lengths).
        if not (header.isascii() and header.isdigit()):
            return _bad_request("The Content-Length header is not a number.")
        digits = header.lstrip("0") or "0"
        if len(digits) > len(str(limit)) or int(digits) > limit:  # len first: int() refuses 4,300+ digits
            return _too_large(limit)
        request.META["CONTENT_LENGTH"] = digits  # what Django's int() will read: short, whatever zeros led it
        try:
            request.body  # noqa: B018 - read now, within the limit just checked, so later reads cannot fail
        except RequestDataTooBig:
            return _too_large(min(limit, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or limit))
        except OSError:
            return _bad_request("The request body could not be read; send it again.")
        return None


class PrivatePagesMiddleware:
    """Pages for a signed-in person (private boards, presigned image URLs, their name) are never stored by a cache,
    the browser's disk cache included: after logging out on a shared computer, nothing of them is left to open."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        return response


# --- Content-Security-Policy -----------------------------------------------------------------------------------


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@functools.lru_cache(maxsize=8)
def _bucket_origins(region: str, endpoint_url: str | None, bucket: str) -> tuple[str, ...]:
    s3 = aws.client("s3")
    # Whatever host the S3 client signs for: moto's endpoint locally, the virtual-host name on AWS. GET (images)
    # and POST (uploads) URLs are built separately by botocore, so ask for both.
    urls = [
        s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "csp"}, ExpiresIn=60),
        s3.generate_presigned_post(bucket, "csp", ExpiresIn=60)["url"],
    ]
    return tuple(dict.fromkeys(_origin(url) for url in urls))


def bucket_origins() -> list[str]:
    """The origins of the bucket's presigned URLs, which pages load images from and upload to."""
    try:
        return list(_bucket_origins(settings.AWS_REGION, settings.AWS_ENDPOINT_URL, settings.BOARDSITE_BUCKET))
    except Exception:  # e.g. no credentials: the page still renders, it just cannot show photos
        logger.warning("Could not work out the bucket's origin for the Content-Security-Policy", exc_info=True)
        return []


def _sources(value: Any) -> list[str]:
    if value is None:
        return []
    return sorted(value) if isinstance(value, set) else list(value) if isinstance(value, list | tuple) else [value]


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with the bucket's origin added to ``img-src`` and ``connect-src`` on each response,
    and the CloudFront distribution's (``BOARDSITE_CDN_URL``) to ``img-src``.

    The origin depends on the S3 client's configuration, known at run time, so it joins the policy as django-csp's
    per-response update (the same mechanism as its ``@csp_update`` decorator) rather than in the settings.
    """

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request=request, response=response, report_only=report_only)
        if report_only:
            return parts
        origins = bucket_origins()
        cdn = [_origin(settings.BOARDSITE_CDN_URL)] if settings.BOARDSITE_CDN_URL else []  # photos only
        # The upload-ticket function's address: the page asks it for tickets when its route says lambda.
        tickets = [_origin(url)] if (url := jobs.function_url()) else []
        if origins or cdn or tickets:
            update = dict(parts.update or {})
            for directive in ("img-src", "connect-src"):
                extra = [*origins, *cdn] if directive == "img-src" else [*origins, *tickets]
                update[directive] = [*_sources(update.get(directive)), *extra]
            parts.update = update
        return parts
