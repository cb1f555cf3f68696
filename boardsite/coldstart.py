"""Python's cyclic garbage collector during a Lambda init: paused, then what the init made frozen.

Django's setup makes a few hundred thousand objects that live as long as the process (modules, classes, models, URL
patterns, compiled templates), and the collector walks them again and again while they are being made: about a
tenth of the web stage's init CPU (bench/coldstart.py; gc.callbacks counted 50-80 ms of ~0.5 s here). On Lambda the
stage's entry point (boardsite/entry.py, before Zappa's handler and Django are imported) pauses it, and the settings
module too when something else set Django up (``pause``); once the init is over ``resume`` moves every object alive
into the permanent generation (``gc.freeze``: never walked again, what the gc docs advise before a fork) and turns
collection back on.
The init is over at the end of the apps' setup (``CoreConfig.ready``) for an on-demand init, and under SnapStart at
the end of the before-snapshot prewarm (the snapshot then holds the frozen objects). Garbage the init left in
reference cycles is frozen with them: a one-time few hundred KB at most. Off Lambda (tests, runserver, Celery)
nothing changes.
"""

from __future__ import annotations

import gc
import os

_paused = [False]


def pause() -> None:
    """Stop the cyclic collector for the init, on Lambda only (the runtime sets ``AWS_LAMBDA_FUNCTION_NAME``)."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and gc.isenabled():
        gc.disable()
        _paused[0] = True


def resume() -> None:
    """The init is over: freeze what it made and collect again from here on (once; a no-op when not paused)."""
    if _paused[0]:
        _paused[0] = False
        gc.freeze()
        gc.enable()


def paused() -> bool:
    return _paused[0]
