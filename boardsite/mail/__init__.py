"""Mail: sending every mail through the mail job (``registry.MAIL``), the addresses SES told us to stop mailing, SES's
feedback that records them, and the local mail page. Below ``accounts`` and ``notifications``, which both mail."""
