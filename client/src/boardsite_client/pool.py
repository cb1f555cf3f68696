"""A few worker threads for I/O-bound work (hashing, uploads, downloads) while the main thread draws progress.

Threads, not asyncio: requests is synchronous, and a handful of sockets in flight is all an upload needs (the GIL
is released while waiting on the network and while hashlib digests large blocks). The workers are daemon threads,
so Ctrl-C ends the process at once (the main thread gets the KeyboardInterrupt); what they were doing is in the
manifest, and a re-run picks it up.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable


class Stopped(Exception):
    """Raised in a worker that was waiting when the run was stopped."""


def interruptible_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A ``sleep`` for the retry policy that returns early, raising ``Stopped``, once ``stop`` is set."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Stopped

    return sleep


def run[T](
    items: Iterable[T],
    work: Callable[[int, T], None],
    *,
    workers: int,
    stop: threading.Event,
    tick: Callable[[], None],
    every: float = 0.2,
) -> None:
    """``work(slot, item)`` for each item on ``workers`` threads (``slot``: which worker, 0-based, for a progress
    line), calling ``tick()`` every ``every`` seconds meanwhile. The first exception a worker lets out stops the
    others (they finish the item in hand) and is raised here."""
    todo: queue.SimpleQueue[T] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    errors: list[BaseException] = []

    def loop(slot: int) -> None:
        while not stop.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                work(slot, item)
            except Stopped:
                return
            except BaseException as exc:  # handed to the main thread, which decides
                errors.append(exc)
                stop.set()
                return

    threads = [threading.Thread(target=loop, args=(slot,), daemon=True) for slot in range(max(1, workers))]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        tick()
        time.sleep(every)
    tick()
    if errors:
        raise errors[0]
