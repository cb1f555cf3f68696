"""The web stage's Lambda entry point: Zappa's own handler, imported with the cyclic garbage collector paused.

Zappa's ``handler.py`` imports boto3, werkzeug and asyncio, then (``INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT``) Django and
the site, all before the first event; the collector walks those long-lived objects again and again while they are
made. The stage's ``lambda_handler`` setting points here, so the pause (boardsite/coldstart.py) starts before the first
of those imports and lasts to the end of the init; everything else is Zappa's handler, unchanged.
"""

from boardsite import coldstart

coldstart.pause()

from handler import keep_warm_callback, lambda_handler  # noqa: E402 - Zappa's, at the zip's root; after the pause

__all__ = ["keep_warm_callback", "lambda_handler"]
