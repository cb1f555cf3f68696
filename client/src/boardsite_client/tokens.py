"""A personal access token's shape, checked offline: ``bst_`` + 30 base-62 characters + a 6-character base-62
CRC-32 of those 30 (the server's format). A mistyped or truncated token is refused before any request, with a
sentence saying so, instead of a bare 401 from the site."""

from __future__ import annotations

import string
import zlib

PREFIX = "bst_"
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase  # base 62: digits, A-Z, a-z
BODY = 30
CHECK = 6
LENGTH = len(PREFIX) + BODY + CHECK


def base62(number: int, width: int) -> str:
    """``number`` in base 62, big-endian, zero-padded to ``width``."""
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    return base62(zlib.crc32(body.encode()), CHECK)


def problem(token: str) -> str | None:
    """Why ``token`` cannot be one of the site's tokens, or None when its shape and checksum are right."""
    token = token.strip()
    if not token:
        return "the token is empty"
    if not token.startswith(PREFIX):
        return f"a boardsite token starts with {PREFIX!r}"
    if len(token) != LENGTH:
        return f"a boardsite token is {LENGTH} characters long, this one {len(token)}: is it cut short?"
    if any(c not in ALPHABET for c in token[len(PREFIX) :]):
        return "a boardsite token has only letters and digits after its prefix"
    if checksum(token[len(PREFIX) : -CHECK]) != token[-CHECK:]:
        return "the token's checksum does not match: it was mistyped or changed"
    return None
