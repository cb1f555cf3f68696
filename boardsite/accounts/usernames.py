"""One person per name: the canonical form usernames are compared by, and the names that imitate others.

A fullwidth ``CONTRIB1`` (U+FF23…), ``CONTRIB1`` and ``contrib1`` are one name: NFKC folds compatibility forms
(fullwidth, ligatures, superscripts), casefold folds case more thoroughly than ``lower()`` (``ß`` → ``ss``), and NFKC
again because casefolding can leave text that is no longer normalised. Every comparison (sign-up, log-in, member
add/remove) and the unique key in the database (``UsernameKey``) use this one function.
"""

from __future__ import annotations

import unicodedata

from confusable_homoglyphs import categories
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from boardsite.core.text import describe

TAKEN = "That username is taken."

# Scripts whose letters people mistake for one another (Latin a, Cyrillic a U+0430, Greek alpha). Other mixes are how
# some languages are written (Japanese: Han, Hiragana and Katakana), so they are allowed.
_CONFUSED_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def canonical_username(name: str) -> str:
    """The form two usernames are compared by: equal canonical forms are the same name."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def mixed_script_error(name: str) -> str | None:
    """A sentence refusing ``name`` if it mixes Latin, Cyrillic or Greek letters, else None."""
    first_of: dict[str, str] = {}
    for ch in unicodedata.normalize("NFKC", name):
        script = categories.alias(ch)
        if script in _CONFUSED_SCRIPTS:
            first_of.setdefault(script, ch)
    if len(first_of) < 2:
        return None
    scripts = sorted(first_of, key=_CONFUSED_SCRIPTS.index)
    examples = ", ".join(f"{first_of[s]} ({describe(first_of[s])})" for s in scripts)
    listed = " and ".join(s.title() for s in scripts)
    return (
        f"A username cannot mix {listed} letters ({examples}): such names can imitate someone else's. "
        "Use the letters of one alphabet."
    )


class UsernameTaken(ValidationError):
    """Another account already has a name that compares equal (raised by the save of any user, whatever path)."""

    def __init__(self, username: str) -> None:
        super().__init__(
            {"username": [f"{TAKEN} An account called {username!r} or a name that looks the same already exists."]},
        )


def user_find(*, name: str) -> AbstractBaseUser | None:
    """The one user whose name compares equal to ``name`` (None if nobody): the key is unique, so never two."""
    User = get_user_model()
    name = name.strip()
    if not name:
        return None
    user = User.objects.filter(username_key__key=canonical_username(name)).first()
    if user is None:
        # Users saved without signals (bulk_create, raw SQL) have no key yet: only an exact match is safe for them.
        user = User.objects.filter(username=name, username_key__isnull=True).first()
    return user
