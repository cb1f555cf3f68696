"""Exit codes (fixed: scripts rely on them, the README lists them) and the errors that end a command with one."""

from __future__ import annotations

OK = 0  # every file ready (upload) or on disk (download)
SOME_FAILED = 1  # at least one file failed, or did not finish processing in time; the summary says which and why
USAGE = 2  # bad arguments, a path that does not exist, no such board
AUTH = 3  # no token, a mistyped / unknown / expired / revoked one, or one without the scope or role needed
THROTTLED = 4  # the site kept answering 429 for longer than --max-throttle-wait: try again later
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it); a re-run resumes


class ClientError(Exception):
    """Ends the command with ``code`` and the message (a sentence a person can act on)."""

    code = SOME_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(ClientError):
    code = USAGE


class AuthError(ClientError):
    code = AUTH


class ThrottledOut(ClientError):
    code = THROTTLED


class Interrupted(ClientError):
    code = INTERRUPTED


def exit_code(error: BaseException) -> int:
    """The exit code for an error that ended a command (Ctrl-C included)."""
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, ClientError):
        return error.code
    return SOME_FAILED
