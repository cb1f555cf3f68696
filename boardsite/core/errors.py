"""Errors raised by services; views turn them into status codes (JSON for the API, pages for the site)."""

from __future__ import annotations


class ApplicationError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(ApplicationError):
    status = 400


class NotAuthenticated(ApplicationError):
    status = 403  # the API's contract: 400 / 403 / 404 / 413


class Forbidden(ApplicationError):
    status = 403


class NotFound(ApplicationError):
    status = 404


class TooLarge(ApplicationError):
    status = 413
