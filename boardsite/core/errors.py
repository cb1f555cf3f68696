"""Errors raised by services; views turn them into status codes (JSON for the API, pages for the site)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError


class ApplicationError(Exception):
    status = 400

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after  # seconds, sent as Retry-After when set


class Invalid(ApplicationError):
    status = 400


class NotAuthenticated(ApplicationError):
    status = 403  # the API's contract: 400 / 403 / 404 / 413


class Forbidden(ApplicationError):
    status = 403


class NotFound(ApplicationError):
    status = 404


class Conflict(ApplicationError):
    status = 409


class TooLarge(ApplicationError):
    status = 413


class RateLimited(ApplicationError):
    status = 429


class Unavailable(ApplicationError):
    status = 503


def validated(obj: Any, *, trusted: tuple[str, ...] = (), validate_unique: bool = True) -> Any:
    """``obj.full_clean()``, with Django's ValidationError turned into Invalid (a 400 with a readable message).

    ``trusted``: fields the caller set from objects it has just loaded (a foreign key): checking that they exist is a
    query each for nothing. ``validate_unique=False`` where uniqueness holds by construction (a fresh uuid) and the
    database's constraint backs it.
    """
    try:
        obj.full_clean(exclude=list(trusted), validate_unique=validate_unique)
    except ValidationError as exc:
        parts = [
            # Sentences that name their field themselves ("The title contains …") need no "title:" before them.
            " ".join(msgs)
            if field == "__all__" or all(m.startswith("The ") for m in msgs)
            else f"{field}: {' '.join(msgs)}"
            for field, msgs in exc.message_dict.items()
        ]
        raise Invalid("; ".join(parts)) from None
    return obj
