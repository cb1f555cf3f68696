"""One person per name: the canonical form usernames are compared by, and the names that imitate others.

A fullwidth ``CONTRIB1`` (U+FF23…), ``CONTRIB1`` and ``contrib1`` are one name: NFKC folds compatibility forms
(fullwidth, ligatures, superscripts), casefold folds case more thoroughly than ``lower()`` (``ß`` → ``ss``), and NFKC
again because casefolding can leave text that is no longer normalised. Every comparison (sign-up, log-in, member
add/remove) and the unique key in the database (``UsernameKey.key``) use this one function: it names exactly one person.

Names that only *look* the same are refused by a second unique key, the skeleton (``username_skeleton``, in the
spirit of Unicode UTS #39): ``ABE`` in Greek capitals, ``coco`` in Cyrillic, ``LARA`` in Cherokee, ``admin`` with a
Latin alpha (U+0251) or ``contrib2`` with a small capital O (U+1D0F) get the skeleton of the ASCII name they imitate,
so only the first of them can be had; so do ``demoー1`` (a Katakana length mark) beside ``demo-1``, ``paulـ`` (an Arabic
tatweel) beside ``paul_`` and ``contrib丨`` (a Han stroke) beside ``contrib1`` (``_SUPPLEMENT``). Accents people see
(``josé``, ``hòa``, ``Müller``) make another name; marks hard to see at a glance (below the letter) do not
(``_HARD_TO_SEE``). Log-in and member add/remove still look people up by the canonical key (the exact person), never
by the skeleton.

Also refused (``username_error``): invisible and blank-looking characters (``core.text``, strict); letters of several
scripts in one name beyond the mixes UTS #39 calls "highly restrictive", less Latin with Bopomofo or Hangul
(``mixed_script_error``); left-to-right letters with right-to-left characters, which display in another order than
typed (``direction_error``); and a name without a letter or digit (``no_letter_error``).
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

from boardsite.core.text import refused_character, visible_text_error

TAKEN = "That username is taken."
LOOKS_TAKEN = "That username is taken: it is too similar to the name of an existing account."
MAX_LENGTH = 150  # auth.User.username

# The scripts a name's letters may come from together (UTS #39, "Highly Restrictive"): one script, or Han with the
# scripts Japanese, Chinese and Korean are written in. Latin with any other script (Cyrillic es, Greek alpha, Armenian
# oh, Cherokee go look like c, A, o, A) is how names imitate Latin ones; Cyrillic with Greek imitates either. Unlike
# UTS #39, Latin goes with Japanese only: Bopomofo and Hangul letters beside Latin ones pass for them (ㄒOP, demㅇ,
# contribㅣ), and Korean handles are written in Hangul or in Latin, rarely both.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"HAN", "BOPOMOFO"}),
    frozenset({"HAN", "HANGUL"}),
)
_NO_SCRIPT = {"COMMON", "INHERITED"}  # digits, "_", ".", "ー", combining marks: they belong to every script

# UTS #39 folds these ASCII look-alikes too: names are shown in a sans-serif font, where I, l and 1 (and O and 0)
# are hard or impossible to tell apart. So ``Ian`` and ``lan`` are one name, and so are ``user0`` and ``usero``.
_ASCII_FOLDS = {"I": "l", "1": "l", "0": "o"}
# Turned or reversed letters are named after a letter but look like its mirror image (ɐ, ʌ): not folded.
_NOT_THE_LETTER = {"TURNED", "REVERSED", "INVERTED"}
_BIDI_MARKS = "\u200e\u200f"
_PUNCTUATION = "-_.+@"  # the punctuation Django allows in usernames
# Look-alikes the confusables data does not map to ASCII (it maps the dashes to ー, or to each other), among the
# characters Django allows in usernames: CJK and Hangul dashes and strokes, the Arabic tatweel (a line at the
# baseline), Hangzhou numerals (strokes), the CJK "ten" (a plus). Keys are NFKC forms (ㅣ U+3163 is stored as U+1175).
_SUPPLEMENT = {
    "\u30fc": "-",  # ー KATAKANA-HIRAGANA PROLONGED SOUND MARK
    "\u4e00": "-",  # 一 CJK "one"
    "\u1173": "-",  # ᅳ HANGUL JUNGSEONG EU (ㅡ)
    "\u0640": "_",  # ـ ARABIC TATWEEL
    "\u4e36": ".",  # CJK "dot" stroke
    "\u4e28": "l",  # 丨 CJK vertical stroke
    "\u1175": "l",  # ᅵ HANGUL JUNGSEONG I (ㅣ)
    "\u3021": "l",  # 〡 HANGZHOU NUMERAL ONE
    "\u3022": "ll",  # 〢 HANGZHOU NUMERAL TWO
    "\u3023": "lll",  # 〣 HANGZHOU NUMERAL THREE
    "\u110b": "o",  # ᄋ HANGUL CHOSEONG IEUNG (ㅇ)
    "\u5341": "+",  # 十 CJK "ten"
    "\u3038": "+",  # 〸 HANGZHOU NUMERAL TEN
}
# Marks under a letter are hard to see at a glance (ạ ą ç ş ḁ ḇ): folded. Marks above it (é è ê ë ñ č ă å ā ő) are
# seen, and make names like josé, hòa or Müller other names than jose, hoa and muller.
_HARD_TO_SEE = {
    "\u0323",  # dot below
    "\u0324",  # diaeresis below
    "\u0325",  # ring below
    "\u0326",  # comma below
    "\u0327",  # cedilla
    "\u0328",  # ogonek
    "\u0331",  # macron below
    "\u0332",  # low line
}


def canonical_username(name: str) -> str:
    """The form two usernames are compared by: equal canonical forms are the same name."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def _ascii_letter(text: str) -> str | None:
    """``text``'s letter if it is one ASCII letter, digit or username punctuation, alone or carrying only combining
    marks (d̔), else None."""
    text = text.strip(_BIDI_MARKS)
    if not text or not (text[0].isascii() and (text[0].isalnum() or text[0] in _PUNCTUATION)):
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
    """Each character that looks like one ASCII letter, digit or ``-_.+@`` → that character (loaded once, on first use).

    From confusable-homoglyphs' copy of Unicode's confusables data (each character → its homoglyphs): the first
    homoglyph that is one ASCII letter, digit or punctuation, or one carrying only combining marks (ɗ ≈ d̔, đ ≈ d̵);
    then ``_SUPPLEMENT``.
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
    table |= _SUPPLEMENT
    # Applied to what the data maps to as well: Greek capital iota → I → l, like the ASCII I itself.
    return {ch: _ASCII_FOLDS.get(v, v) for ch, v in table.items()} | _ASCII_FOLDS


def _decomposed(text: str) -> str:
    """NFD, except Hangul syllables: their jamo are letters (ᅵ, ᅳ) that would be folded as if typed alone."""
    return "".join(ch if 0xAC00 <= ord(ch) <= 0xD7A3 else unicodedata.normalize("NFD", ch) for ch in text)


def _fold_once(text: str) -> str:
    table = _skeleton_map()
    # Each base character mapped, its accents kept but those hard to see under an ASCII letter: ọ is o, ó is not.
    kept: list[str] = []
    on_ascii = False
    for ch in _decomposed(text):
        if unicodedata.category(ch).startswith("M"):
            if not (on_ascii and ch in _HARD_TO_SEE):
                kept.append(ch)
            continue
        mapped = table.get(ch, ch)
        kept.append(mapped)
        on_ascii = mapped[-1:].isascii() and mapped[-1:].isalnum()
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
    """A sentence refusing a new name (invisible characters, confusable mix of scripts or directions, no letter), or
    None. Give the name as typed: the sentence names the character typed, not what NFKC made of it."""
    return (
        visible_text_error(name, field="username", strict=True)
        or visible_text_error(unicodedata.normalize("NFKC", name), field="username", strict=True)
        or mixed_script_error(name)
        or direction_error(name)
        or no_letter_error(name)
    )


def _named(ch: str) -> str:
    """``c (U+0063 LATIN SMALL LETTER C)``: a character shown and named in a sentence."""
    name = unicodedata.name(ch, "")
    return f"{ch} (U+{ord(ch):04X}{' ' + name if name else ''})"


def _typed(name: str) -> list[tuple[str, str]]:
    """Each character as typed with what NFKC makes of it (a fullwidth A → A, a lunate sigma → a final sigma): rules
    judge the second, sentences name the first."""
    return [(ch, unicodedata.normalize("NFKC", ch)) for ch in name]


def mixed_script_error(name: str) -> str | None:
    """A sentence refusing ``name`` if its letters mix scripts beyond the allowed mixes, else None."""
    first_of: dict[str, str] = {}
    for typed, normal in _typed(name):
        for ch in normal:
            script = categories.alias(ch)
            if script not in _NO_SCRIPT:
                first_of.setdefault(script, typed)
    scripts = set(first_of)
    if len(scripts) < 2 or any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        return None
    ordered = sorted(first_of, key=lambda s: (s != "LATIN", list(first_of).index(s)))
    examples = ", ".join(_named(first_of[s]) for s in ordered[:-1]) + f" and {_named(first_of[ordered[-1]])}"
    listed = ", ".join(s.title() for s in ordered[:-1]) + f" and {ordered[-1].title()}"
    return (
        f"A username cannot mix {listed} letters, such as {examples}: such names can imitate someone else's. "
        "Use the letters of one alphabet."
    )


def direction_error(name: str) -> str | None:
    """A sentence refusing ``name`` if it has left-to-right letters and right-to-left characters (``demoـ1`` displays
    as ``demo1_``: the tatweel belongs to no script, so only its direction tells), else None."""
    first: dict[str, str] = {}
    for typed, normal in _typed(name):
        for ch in normal:
            direction = {"L": "L", "R": "R", "AL": "R"}.get(unicodedata.bidirectional(ch))
            if direction:
                first.setdefault(direction, typed)
    if len(first) < 2:
        return None
    return (
        "A username cannot mix left-to-right letters with right-to-left characters, such as "
        f"{_named(first['L'])} and {_named(first['R'])}: such a name is displayed in another order than it is typed."
    )


def _letter_or_digit(text: str) -> bool:
    # Modifier letters (the tatweel, the Katakana length mark) only lengthen or mark other letters.
    return any(unicodedata.category(ch) in {"Lu", "Ll", "Lt", "Lo"} or ch.isnumeric() for ch in text)


def no_letter_error(name: str) -> str | None:
    """A sentence refusing ``name`` if it has no letter or digit, or only ones that look like punctuation (一, ㅡ)."""
    if _letter_or_digit(unicodedata.normalize("NFKC", name)) and _letter_or_digit(username_skeleton(name)):
        return None
    return "A username needs at least one letter or digit, not only punctuation or characters that look like it."


class UsernameTaken(ValidationError):
    """Another account already has a name that compares equal or looks the same (raised by the save of any user,
    whatever path)."""

    def __init__(self, username: str) -> None:
        super().__init__(
            {"username": [f"{TAKEN} An account called {username!r} or a name too similar to it already exists."]},
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
