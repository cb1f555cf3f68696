"""One person per name: the canonical form usernames are compared by, and the names that imitate others.

A fullwidth ``CONTRIB1`` (U+FF23…), ``CONTRIB1`` and ``contrib1`` are one name: NFKC folds compatibility forms
(fullwidth, ligatures, superscripts), casefold folds case more thoroughly than ``lower()`` (``ß`` → ``ss``), and NFKC
again because casefolding can leave text that is no longer normalised. Every comparison (sign-up, log-in, member
add/remove) and the unique key in the database (``UsernameKey.key``) use this one function: it names exactly one person.

Names that only *look* the same are refused by a second unique key, the skeleton (``username_skeleton``, in the
spirit of Unicode UTS #39): ``ABE`` in Greek capitals, ``coco`` in Cyrillic, ``LARA`` in Cherokee, ``admin`` with a
Latin alpha (U+0251) or ``contrib2`` with a small capital O (U+1D0F) get the skeleton of the ASCII name they imitate,
so only the first of them can be had. Log-in and member add/remove still
look people up by the canonical key (the exact person), never by the skeleton.

Also refused: invisible and blank-looking characters (``core.text``, strict), and letters of several scripts in one
name beyond the mixes UTS #39 calls "highly restrictive" (``mixed_script_error``).
"""

from __future__ import annotations

import functools
import json
import unicodedata
from importlib import resources

from confusable_homoglyphs import categories
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from boardsite.core.text import describe, refused_character, visible_text_error

TAKEN = "That username is taken."
LOOKS_TAKEN = "That username is taken: it looks the same as the name of an existing account."
MAX_LENGTH = 150  # auth.User.username

# The scripts a name's letters may come from together (UTS #39, "Highly Restrictive"): one script, or Latin with the
# scripts Chinese, Japanese and Korean are written in. Latin with any other script (Cyrillic es, Greek alpha, Armenian
# oh, Cherokee go look like c, A, o, A) is how names imitate Latin ones; Cyrillic with Greek imitates either.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
_NO_SCRIPT = {"COMMON", "INHERITED"}  # digits, "_", ".", "ー", combining marks: they belong to every script

# UTS #39 folds these ASCII look-alikes too: names are shown in a sans-serif font, where I, l and 1 (and O and 0)
# are hard or impossible to tell apart. So ``Ian`` and ``lan`` are one name, and so are ``user0`` and ``usero``.
_ASCII_FOLDS = {"I": "l", "1": "l", "0": "o"}
# Turned or reversed letters are named after a letter but look like its mirror image (ɐ, ʌ): not folded.
_NOT_THE_LETTER = {"TURNED", "REVERSED", "INVERTED"}
_BIDI_MARKS = "\u200e\u200f"


def canonical_username(name: str) -> str:
    """The form two usernames are compared by: equal canonical forms are the same name."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def _ascii_letter(text: str) -> str | None:
    """``text``'s letter if it is one ASCII letter or digit, alone or carrying only combining marks (d̔), else None."""
    text = text.strip(_BIDI_MARKS)
    if not text or not (text[0].isascii() and text[0].isalnum()):
        return None
    if all(unicodedata.category(ch).startswith("M") for ch in text[1:]):
        return text[0]
    return None


def _named_letter(ch: str) -> str | None:
    """A Latin letter without a decomposition that Unicode names after one ASCII letter: ꝺ (LATIN SMALL LETTER
    INSULAR D) is a d. The confusables data misses such shapes; accented letters are handled by their decomposition."""
    name = unicodedata.name(ch, "")
    if not name.startswith("LATIN ") or unicodedata.decomposition(ch) or ch.casefold() != ch.lower():
        return None  # ß casefolds to "ss": its own rule
    words = name.split(" WITH ")[0].split()
    if "LETTER" not in words or _NOT_THE_LETTER & set(words):
        return None
    letters = [w for w in words[words.index("LETTER") + 1 :] if len(w) == 1 and w.isascii() and w.isalpha()]
    if len(letters) != 1:
        return None
    return letters[0].lower() if "SMALL" in words else letters[0]


@functools.cache
def _skeleton_map() -> dict[str, str]:
    """Each character that looks like one ASCII letter or digit → that character (loaded once, on first use).

    From confusable-homoglyphs' copy of Unicode's confusables data (each character → its homoglyphs): the first
    homoglyph that is one ASCII letter or digit, or one carrying only combining marks (ɗ ≈ d̔, ç ≈ c̦).
    """
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    table: dict[str, str] = {}
    for ch, homoglyphs in data.items():
        ch = ch.strip(_BIDI_MARKS)
        if len(ch) != 1 or ch.isascii():
            continue
        for homoglyph in homoglyphs:
            if letter := _ascii_letter(homoglyph["c"]):
                table[ch] = letter
                break
    for code in range(0x80, 0x20000):
        ch = chr(code)
        if ch not in table and unicodedata.category(ch).startswith("L") and (letter := _named_letter(ch)):
            table[ch] = letter
    # Applied to what the data maps to as well: Greek capital iota → I → l, like the ASCII I itself.
    return {ch: _ASCII_FOLDS.get(v, v) for ch, v in table.items()} | _ASCII_FOLDS


def _fold_once(text: str) -> str:
    table = _skeleton_map()
    mapped = "".join(table.get(ch, ch) for ch in text)
    # Marks on a Latin letter do not make another name: josé and jose, ɗemo (→ d̔emo) and demo look alike.
    kept: list[str] = []
    after_ascii = False
    for ch in unicodedata.normalize("NFD", mapped):
        if after_ascii and unicodedata.category(ch).startswith("M"):
            continue
        kept.append(ch)
        after_ascii = ch.isascii() and ch.isalnum()
    return unicodedata.normalize("NFKC", "".join(kept)).casefold()


def username_skeleton(name: str) -> str:
    """What a name looks like: names with equal skeletons are taken for one another, so only one may exist.

    NFKC first (fullwidth letters), invisible characters dropped, then each character that looks like an ASCII letter
    mapped to it *before* casefolding (a capital Greek beta looks like B, a small one does not), then casefolded;
    twice, so that what casefolding produces is mapped too and the result is a fixed point.
    """
    text = unicodedata.normalize("NFKC", name.strip())
    text = "".join(ch for ch in text if refused_character(ch, strict=True) is None)
    return _fold_once(_fold_once(text))


def username_error(name: str) -> str | None:
    """A sentence refusing a new name (invisible characters, confusable mix of scripts), or None."""
    return visible_text_error(name, field="username", strict=True) or mixed_script_error(name)


def mixed_script_error(name: str) -> str | None:
    """A sentence refusing ``name`` if its letters mix scripts beyond the allowed mixes, else None."""
    first_of: dict[str, str] = {}
    for ch in unicodedata.normalize("NFKC", name):
        script = categories.alias(ch)
        if script not in _NO_SCRIPT:
            first_of.setdefault(script, ch)
    scripts = set(first_of)
    if len(scripts) < 2 or any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        return None
    ordered = sorted(first_of, key=lambda s: (s != "LATIN", list(first_of).index(s)))
    examples = ", ".join(f"{first_of[s]} ({describe(first_of[s])})" for s in ordered)
    listed = ", ".join(s.title() for s in ordered[:-1]) + f" and {ordered[-1].title()}"
    return (
        f"A username cannot mix {listed} letters ({examples}): such names can imitate someone else's. "
        "Use the letters of one alphabet."
    )


class UsernameTaken(ValidationError):
    """Another account already has a name that compares equal or looks the same (raised by the save of any user,
    whatever path)."""

    def __init__(self, username: str) -> None:
        super().__init__(
            {"username": [f"{TAKEN} An account called {username!r} or a name that looks the same already exists."]},
        )


class UsernameRefused(ValidationError):
    """A new name with invisible characters or a confusable mix of scripts (raised by the save of any user)."""

    def __init__(self, message: str) -> None:
        super().__init__({"username": [message]}, code="invalid")


def user_find(*, name: str) -> AbstractBaseUser | None:
    """The one user whose name compares equal to ``name`` (None if nobody): the key is unique, so never two."""
    User = get_user_model()
    name = name.strip()
    if not name or len(unicodedata.normalize("NFKC", name)) > MAX_LENGTH or refused_character(name, strict=True):
        return None  # no account has such a name (and NUL is an error on PostgreSQL)
    user = User.objects.filter(username_key__key=canonical_username(name)).first()
    if user is None:
        # Users saved without signals (bulk_create, raw SQL) have no key yet: only an exact match is safe for them.
        user = User.objects.filter(username=name, username_key__isnull=True).first()
    return user
