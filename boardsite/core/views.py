from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from boardsite.core.errors import ApplicationError, Forbidden, Invalid, NotFound
from boardsite.core.middleware import is_api_path
from offload.jsonbody import BodyRefused, parse_object

log = logging.getLogger(__name__)

# API bodies are flat objects; anything deeper is refused before a service sees it.


def page_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Service errors on pages: 404 as Django's 404, others as a page with the message and the status."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from None
        except ApplicationError as exc:
            # A 403 is "not allowed"; anything else (a bad request, too large, too many) is "could not do that".
            title = "Not allowed" if exc.status == 403 else "Could not do that"
            return render(request, "error.html", {"message": exc.message, "title": title}, status=exc.status)

    return wrapper


# The scope of an account setting (the profile picture): no token has it, only a signed-in session does.
SESSION_ONLY = "session"


def require_scope(request: HttpRequest, scope: str) -> None:
    """Refuse a request made with an access token (``boardsite.accounts.tokens``, which sets ``access_token``) whose
    scopes leave ``scope`` out; a session request has every scope its owner has."""
    token = getattr(request, "access_token", None)
    if token is not None and scope == SESSION_ONLY:
        raise Forbidden("This is an account setting: no access token's scope covers it; use the site, signed in.")
    if token is not None and scope not in token.scopes:
        raise Forbidden(f"This access token's scopes ({', '.join(token.scopes)}) do not include “{scope}”.")


def api_view(
    *methods: str, scope: str | dict[str, str] | None
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A JSON API view: other methods get a JSON 405; service errors become ``{"error": "..."}`` with their status.

    A GET view answers HEAD too, as Django's ``require_GET`` does (the middleware drops the body). ``scope``: what an
    access token must allow to call it (``boardsite.accounts.tokens.SCOPES``), per method when a dict, or None (any
    token); a session has every scope.
    """
    allowed = (*methods, "HEAD") if "GET" in methods and "HEAD" not in methods else methods

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                response = JsonResponse({"error": f"Use {' or '.join(methods)} here."}, status=405)
                response["Allow"] = ", ".join(allowed)
                return response
            try:
                needed = scope.get(request.method or "", scope.get("GET")) if isinstance(scope, dict) else scope
                if needed is not None:
                    require_scope(request, needed)
                return view(request, *args, **kwargs)
            except ApplicationError as exc:
                response = JsonResponse({"error": exc.message}, status=exc.status)
                if exc.retry_after is not None:
                    response["Retry-After"] = str(exc.retry_after)
                return response

        return wrapper

    return decorator


def json_body(request: HttpRequest) -> dict:
    """The request's JSON object; anything else (not JSON, not an object, nested too deeply) is Invalid (a 400)."""
    try:
        return parse_object(request.body)
    except BodyRefused as exc:
        raise Invalid(str(exc)) from None


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if is_api_path(request.path_info):
        # Django's reasons are sentences already ("CSRF token missing."); make sure of the full stop, never double it.
        reason = reason.strip().rstrip(".")
        sentence = f"CSRF check failed: {reason}." if reason else "CSRF check failed."
        return JsonResponse({"error": f"{sentence} Send the csrftoken cookie's value as X-CSRFToken."}, status=403)
    return render(
        request,
        "error.html",
        {"message": "Your form expired or came from elsewhere; reload the page and try again."},
        status=403,
    )


HEALTH_PATH = "healthz"


def health(request: HttpRequest) -> HttpResponse:
    """``GET /healthz``: whether this deployment can serve pages — the secrets are in (SecretsMiddleware runs first),
    the database answers, and no migration is waiting. ``python -m deploy check web`` reads it after a deploy and
    after ``migrate`` (DEPLOY.md §6). Public and cheap: one query of the migrations table; no detail beyond counts."""
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor

    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "")
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        log.exception("health: the database did not answer")
        answer, status = {"status": "database unavailable"}, 503
    else:
        if pending:
            answer, status = {"status": "not migrated", "pending": len(pending)}, 503
        else:
            answer, status = {"status": "ok"}, 200
    response = JsonResponse({**answer, "version": version}, status=status)
    response["Cache-Control"] = "no-store"
    return response
