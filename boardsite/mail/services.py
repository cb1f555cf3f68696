"""Suppressed addresses: the one lookup every sender asks before mailing someone."""

from __future__ import annotations

from boardsite.mail.models import Suppression


def address_key(address: str) -> str:
    """The form suppressed addresses are stored and compared in."""
    return address.strip().lower()


def suppression_get(*, address: str | None) -> Suppression | None:
    """Why SES told us to stop mailing ``address`` (a permanent bounce or a complaint), or None."""
    if not address:
        return None
    return Suppression.objects.filter(address_key=address_key(address)).first()
