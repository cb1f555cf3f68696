"""The mail message format shared by the site and the mail job: what a message dict becomes (``Mail``), the MIME it is
written as, and which addresses can be mailed at all. The site's forms ask ``address_problem`` (one rule: a form
accepts exactly the addresses the job could mail); the mail job builds every mail
with ``build_mime``. Never imports Django.
"""

from __future__ import annotations

import email.errors
import email.parser
import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid


@dataclass(frozen=True)
class Mail:
    message_id: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sender: str | None = None


# SMTP's line length, not the default 78: a long token (a signed List-Unsubscribe URL) must stay as it is, not be
# folded into encoded words that mail providers' one-click unsubscribe cannot read (RFC 2369, RFC 8058).
MIME_POLICY = email.policy.default.clone(max_line_length=998)


class UnsendableMessage(ValueError):
    """A message that cannot be written as mail (an address or header MIME refuses): refused, never retried."""


def header_text(value: str) -> str:
    """A caller's header value as plain text. Line breaks become spaces, and ``=?`` becomes ``= ?``: the header
    parser decodes RFC 2047 encoded words in what it is given, so ``=?utf-8?b?DQpCY2M6…?=`` in a board's title would
    otherwise come back as a line break and a header of the attacker's (a Bcc, or a body of their own)."""
    return " ".join(value.splitlines()).replace("=?", "= ?")


# What SES delivers to: a plain ASCII address (no SMTPUTF8: an international domain goes in its xn-- form) whose
# part before the @ is a dot-atom (no quoted forms: SES refuses some, e.g. "x@y"@example.org, as "Missing domain").
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def recipient_problem(address: str) -> str | None:
    """Why SES would refuse ``address`` (``addr-spec`` or ``Name <addr-spec>``) as a recipient, in words a person can
    act on (None when it would not)."""
    if "<" in address or ">" in address:
        address = email.utils.parseaddr(address)[1]
    local, at, domain = address.rpartition("@")
    if not (at and local and domain):
        return "it is not an email address"
    if not address.isascii():
        odd = next(ch for ch in address if not ch.isascii())
        return f"it has a character other than ASCII, U+{ord(odd):04X} (an international domain goes in its xn-- form)"
    if "=?" in address:
        return "it contains “=?” (how headers are smuggled into mail)"
    if len(local) > 64:
        return "its part before the @ is longer than 64 characters"
    if not _LOCAL_PART.match(local):
        return "its part before the @ has quotes, spaces or control characters"
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        return "its domain is not a host name"
    return None


def build_mime(mail: Mail, sender: str) -> bytes:
    """The raw message: text/plain, with text/html as its alternative when given, and the caller's headers.
    ``UnsendableMessage`` when a recipient is one SES would refuse, or MIME refuses an address or a header."""
    for address in mail.to:
        if problem := recipient_problem(address):
            raise UnsendableMessage(f"cannot mail {address!r}: {problem}")
    msg = EmailMessage(policy=MIME_POLICY)
    try:
        msg["From"] = sender
        msg["To"] = ", ".join(mail.to)
        msg["Subject"] = header_text(mail.subject)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)
        for name, value in mail.headers.items():
            if name.lower() in ("from", "to", "subject", "date", "message-id", "cc", "bcc"):
                continue  # set above; a header dict must not add recipients
            msg[name] = header_text(value)
        msg.set_content(mail.text)
        if mail.html is not None:
            msg.add_alternative(mail.html, subtype="html")
        return msg.as_bytes()
    except (ValueError, TypeError, IndexError, email.errors.MessageError) as exc:
        # IndexError: the header parser's own failure on some malformed addresses ("owner@"), not ours.
        raise UnsendableMessage(f"{type(exc).__name__}: {exc}") from None


def address_problem(address: str) -> str | None:
    """Why the mail job could not mail ``address`` (None when it could): the very check ``build_mime`` makes, so
    the site's forms refuse exactly the addresses the job would refuse instead of accepting one nobody can mail."""
    if problem := recipient_problem(address):
        return problem
    try:
        build_mime(Mail(message_id="address-check", to=(address,), subject="", text=""), "check@example.invalid")
    except UnsendableMessage as exc:
        return str(exc)
    return None


# Headers every build writes anew (the time, a fresh id) and the MIME framing (a random boundary): not what it says.
_VOLATILE = frozenset({"date", "message-id", "content-type", "mime-version", "content-transfer-encoding"})


def mime_digest(raw: bytes) -> str:
    """A SHA-256 of what a raw message says (its headers and each part's type and decoded content), the same for two
    builds of one message: how a shadow run's rendering is compared with the mail really sent."""
    digest = hashlib.sha256()
    for part in email.parser.BytesParser(policy=MIME_POLICY).parsebytes(raw).walk():
        for name, value in part.items():
            if name.lower() not in _VOLATILE:
                digest.update(f"{name.lower()}: {value}\n".encode())
        digest.update(f"-- {part.get_content_type()}\n".encode())
        if not part.is_multipart():
            digest.update(part.get_payload(decode=True) or b"")
    return digest.hexdigest()
