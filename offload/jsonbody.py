"""A request's JSON object, as the site's API and the upload-ticket function both read one: the same limits and the
same sentences for what they refuse (never imports Django)."""

from __future__ import annotations

import json
from typing import Any

JSON_MAX_DEPTH = 8


class BodyRefused(ValueError):
    """Not a JSON object this API reads; the message says why, for a person."""


def depth(value: object) -> int:
    # Iterative: the point is to refuse what recursion cannot handle.
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > JSON_MAX_DEPTH:
                break
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_object(raw: bytes | str) -> dict[str, Any]:
    """The JSON object in ``raw`` (empty: ``{}``); ``BodyRefused`` for anything else: not JSON, not an object,
    nested more than ``JSON_MAX_DEPTH`` levels, a number of more digits than Python reads."""
    too_deep = BodyRefused(
        f"The request body is nested too deeply: at most {JSON_MAX_DEPTH} levels of arrays and objects."
    )
    try:
        body = json.loads(raw or b"{}")
    except RecursionError:
        raise too_deep from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BodyRefused("The request body must be JSON.") from None
    except ValueError:  # valid JSON, but an integer past Python's int-from-string limit (4,300 digits)
        raise BodyRefused("A number in the request body has too many digits.") from None
    if not isinstance(body, dict):
        raise BodyRefused("The request body must be a JSON object.")
    if depth(body) > JSON_MAX_DEPTH:
        raise too_deep
    return body
