from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from boardsite.boards.selectors import board_list_owned, board_list_public, board_list_shared_with
from boardsite.core.errors import ApplicationError, NotFound


def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "home.html",
        {
            "owned": board_list_owned(user=user),
            "shared": board_list_shared_with(user=user),
            "public": board_list_public().exclude(memberships__user_id=getattr(user, "pk", None))[:50],
        },
    )


def page_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Service errors on pages: 404 as Django's 404, others as a page with the message and the status."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.message) from None
        except ApplicationError as exc:
            return render(request, "error.html", {"message": exc.message}, status=exc.status)

    return wrapper


def api_view(*methods: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A JSON API view: other methods get a JSON 405; service errors become ``{"error": "..."}`` with their status."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = JsonResponse({"error": f"Use {' or '.join(methods)} here."}, status=405)
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except ApplicationError as exc:
                response = JsonResponse({"error": exc.message}, status=exc.status)
                if exc.retry_after is not None:
                    response["Retry-After"] = str(exc.retry_after)
                return response

        return wrapper

    return decorator


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": f"CSRF check failed: {reason}. Send the csrftoken cookie's value as X-CSRFToken."}, status=403
        )
    return render(
        request,
        "error.html",
        {"message": "Your form expired or came from elsewhere; reload the page and try again."},
        status=403,
    )
