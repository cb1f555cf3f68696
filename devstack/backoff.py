"""The one back-off of the local stack: the runners while the local AWS is away or a handler keeps failing, and
the supervisor before it starts an exited child again."""

from __future__ import annotations

BASE_SECONDS = 1.0  # 1, 2, 4 …
CAP_SECONDS = 30.0


class Backoff:
    """Delays ``base``, 2·base, 4·base … capped at ``cap``; ``reset()`` after a success starts again at ``base``."""

    def __init__(self, base: float = BASE_SECONDS, cap: float = CAP_SECONDS) -> None:
        self.base, self.cap, self.failures = base, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> bool:
        """Start again from ``base``; returns whether there had been failures."""
        failed, self.failures = self.failures > 0, 0
        return failed
