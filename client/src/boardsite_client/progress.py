"""Progress of a run: workers update a ``Tally``; the main thread ``tick``s a renderer a few times a second.

On a terminal (stderr is a TTY): tqdm, one overall bar (files, bytes, speed, ETA) and one line per file in flight
(``position=``: tqdm keeps several bars in place). Elsewhere (a pipe, a log, CI): one JSON line on stderr at least
every 2 s (``interval``, default 1 s) and one per finished file, for scripts to follow; stdout keeps the result.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from tqdm import tqdm


@dataclass
class Active:
    name: str
    size: int
    done: int = 0


@dataclass
class Tally:
    """What the run has done so far; every method may be called from any thread."""

    phase: str = "starting"
    files: int = 0  # the run's files and bytes, counted before the first byte is sent
    bytes: int = 0
    files_done: int = 0
    bytes_done: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # outcome -> files (ready, failed, processing, ...)
    active: dict[int, Active] = field(default_factory=dict)  # slot -> the file a worker is on
    events: list[dict[str, Any]] = field(default_factory=list)  # finished files not yet shown
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start_phase(self, phase: str, files: int, size: int) -> None:
        with self.lock:
            self.phase, self.files, self.bytes, self.files_done, self.bytes_done = phase, files, size, 0, 0
            self.active.clear()

    def begin(self, slot: int, name: str, size: int) -> None:
        with self.lock:
            self.active[slot] = Active(name, size)

    def advance(self, slot: int, n: int) -> None:
        with self.lock:
            self.bytes_done += n
            if slot in self.active:
                self.active[slot].done += n

    def rewind(self, slot: int) -> None:
        """A send starts over (a retry): its bytes so far no longer count."""
        with self.lock:
            if slot in self.active:
                self.bytes_done -= self.active[slot].done
                self.active[slot].done = 0

    def finish(self, slot: int | None, *, size: int = 0) -> None:
        """A file is through this phase: ``size`` bytes it did not send (skipped) count as done too."""
        with self.lock:
            active = self.active.pop(slot, None) if slot is not None else None
            if active and active.done < active.size:
                self.bytes_done += active.size - active.done
            self.bytes_done += size
            self.files_done += 1

    def event(self, event: dict[str, Any]) -> None:
        """A file's outcome, shown once (a JSON line, or a line above the bars when it failed)."""
        with self.lock:
            self.events.append(event)

    def outcome(self, outcome: str, delta: int = 1) -> None:
        with self.lock:
            self.counts[outcome] = self.counts.get(outcome, 0) + delta

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            events, self.events = self.events, []
            return {
                "phase": self.phase,
                "files": self.files,
                "bytes": self.bytes,
                "files_done": self.files_done,
                "bytes_done": self.bytes_done,
                "counts": dict(self.counts),
                "active": {slot: Active(a.name, a.size, a.done) for slot, a in self.active.items()},
                "events": events,
            }


class JsonProgress:
    """One JSON line per ``interval`` (and per finished file) on ``out``; ``clock`` is injectable for tests."""

    def __init__(self, out: IO[str], interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.interval = interval
        self.clock = clock
        self._last: float | None = None
        self._rate = Rate(clock)

    def tick(self, tally: Tally, *, force: bool = False) -> None:
        snap = tally.snapshot()
        for event in snap["events"]:
            self._write({"event": "file", **event})
        now = self.clock()
        rate = self._rate.update(snap["bytes_done"])
        if not force and self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        left = max(0, snap["bytes"] - snap["bytes_done"])
        self._write(
            {
                "event": "progress",
                "phase": snap["phase"],
                "files_done": snap["files_done"],
                "files": snap["files"],
                "bytes_done": snap["bytes_done"],
                "bytes": snap["bytes"],
                "bytes_per_s": round(rate),
                "eta_s": round(left / rate, 1) if rate > 0 else None,
                **snap["counts"],
                "active": [{"file": a.name, "bytes_done": a.done, "bytes": a.size} for a in snap["active"].values()],
            }
        )

    def close(self, tally: Tally) -> None:
        self.tick(tally, force=True)

    def _write(self, line: dict[str, Any]) -> None:
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()


class Rate:
    """Bytes per second, smoothed (exponential moving average over the ticks)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.last: tuple[float, int] | None = None
        self.value = 0.0

    def update(self, done: int) -> float:
        now = self.clock()
        if self.last is not None and now > self.last[0]:
            current = max(0, done - self.last[1]) / (now - self.last[0])
            self.value = current if self.value == 0 else 0.7 * self.value + 0.3 * current
        self.last = (now, done)
        return self.value


class BarProgress:
    """tqdm bars on a terminal: the overall one at position 0, then one per worker slot."""

    def __init__(self, out: IO[str], slots: int) -> None:
        self.out = out
        self.slots = slots
        self.overall: tqdm | None = None
        self.lines: dict[int, tqdm] = {}
        self.shown: dict[int, str] = {}
        self.phase = ""
        self.done = 0

    def _open(self, snap: dict[str, Any]) -> None:
        self._close_bars()
        self.phase = snap["phase"]
        self.done = 0
        self.overall = tqdm(
            total=snap["bytes"],
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            position=0,
            file=self.out,
            dynamic_ncols=True,
            desc=self.phase,
            leave=True,
        )
        for slot in range(self.slots):
            self.lines[slot] = tqdm(
                total=1,
                position=slot + 1,
                file=self.out,
                leave=False,
                dynamic_ncols=True,
                bar_format="  {desc}",
                desc="",
            )
        self.shown = {}

    def tick(self, tally: Tally, *, force: bool = False) -> None:
        snap = tally.snapshot()
        if self.overall is None or snap["phase"] != self.phase:
            self._open(snap)
        assert self.overall is not None
        for event in snap["events"]:
            if event.get("outcome") in ("failed", "error"):
                self.overall.write(f"{event['file']}: {event.get('error')}", file=self.out)
        if self.overall.total != snap["bytes"]:
            self.overall.total = snap["bytes"]
        self.overall.update(snap["bytes_done"] - self.done)
        self.done = snap["bytes_done"]
        counts = " ".join(f"{k} {v}" for k, v in sorted(snap["counts"].items()))
        self.overall.set_description(f"{self.phase} {snap['files_done']}/{snap['files']} files", refresh=False)
        self.overall.set_postfix_str(counts, refresh=False)
        self.overall.refresh()
        for slot, line in self.lines.items():
            a = snap["active"].get(slot)
            text = f"{a.name}  {_size(a.done)}/{_size(a.size)}" if a else ""
            if self.shown.get(slot) != text:
                self.shown[slot] = text
                line.set_description_str(text)

    def close(self, tally: Tally) -> None:
        self.tick(tally, force=True)
        self._close_bars()

    def _close_bars(self) -> None:
        for line in self.lines.values():
            line.close()
        self.lines = {}
        if self.overall is not None:
            self.overall.close()
            self.overall = None


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def renderer(slots: int, out: IO[str] | None = None, interval: float = 1.0) -> JsonProgress | BarProgress:
    """Bars when ``out`` (stderr) is a terminal, JSON lines otherwise."""
    out = out or sys.stderr
    if out.isatty():
        return BarProgress(out, slots)
    return JsonProgress(out, interval)
