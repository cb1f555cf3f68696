"""`python -m deploy lock`: every install of boardsite comes from a lock with hashes, compiled by uv.

The inputs (``*.in``) name what we depend on directly; the locks (``*.txt``) pin every package, transitive ones
too, with the sha256 of each of its files, so a fresh machine installs exactly what CI tested (``pip install
--require-hashes``) and a Lambda zip built on another day holds the same bytes. One resolution decides every version:

- ``requirements-dev.txt`` is resolved from ``requirements-dev.in`` (which includes ``requirements.in``): the venv of
  ``make run`` / ``make test``;
- ``requirements.txt`` (the runtime) and ``requirements-bench.txt`` are resolved with the dev lock as constraints;
- ``deploy/requirements-<stage>.txt`` (what each Lambda zip ships, installed ``--no-deps`` for the stage's
  architecture by deploy/build.py) list only the packages their ``.in`` names, at the dev lock's versions, with the
  hashes of every platform's wheels (arm64 included).

    make lock                       # after editing a .in: re-resolve, keeping every other pin
    make lock UPGRADE=1             # move every package to its newest allowed version
    make lock UPGRADE=certifi       # move one package not pinned in a .in (and what it needs)
    python -m deploy lock --check   # offline: locks match their inputs and this venv? (tests/deploy/test_lock.py)

``--check`` needs no network: it reads the inputs, the locks and the installed metadata.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parent.parent
DEV_LOCK = "requirements-dev.txt"
PYTHON_VERSION = "3.12"  # Lambda's runtime, and the venv's (the Makefile insists)
PLATFORM = "x86_64-unknown-linux-gnu"  # the machines that run make test; stage locks carry every platform's hashes
COMPILE_COMMAND = "make lock"


@dataclass(frozen=True)
class Lock:
    source: str  # the .in file, relative to the root
    output: str  # the lock it compiles to
    no_deps: bool = False  # a stage list: only what the .in names (deploy/build.py installs it --no-deps)

    @property
    def constrained(self) -> bool:
        return self.output != DEV_LOCK


STAGE_LOCKS = tuple(
    Lock(f"deploy/requirements-{name}.in", f"deploy/requirements-{name}.txt", no_deps=True)
    for name in ("zappa", "web", "functions", "celery", "redis", "cdn")
)
LOCKS = (
    Lock("requirements-dev.in", DEV_LOCK),  # first: the others take its versions
    Lock("requirements.in", "requirements.txt"),
    Lock("requirements-bench.in", "requirements-bench.txt"),
    *STAGE_LOCKS,
)


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: frozenset[str]


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _logical_lines(path: Path) -> list[str]:
    """Lines without comments, continuation backslashes joined."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        line = line.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def read_lock(path: Path) -> dict[str, Pin]:
    """``name==version --hash=...`` entries of a lock (following ``-r``), as {canonical name: Pin}."""
    pins: dict[str, Pin] = {}
    for line in _logical_lines(path):
        words = line.split()
        if words[0] in ("-r", "--requirement"):
            pins.update(read_lock(path.parent / words[1]))
            continue
        if words[0].startswith("-"):
            continue  # an index option
        hashes = frozenset(w.split("=", 1)[1] for w in words[1:] if w.startswith("--hash="))
        spec = " ".join(w for w in words if not w.startswith("--")).split(";", 1)[0].strip()
        name, sep, version = spec.partition("==")
        if not sep or not version.strip():
            raise ValueError(f"{path.name}: {spec!r} is not pinned (name==version)")
        pins[canonical(name.split("[", 1)[0].strip())] = Pin(version.strip(), hashes)
    return pins


def read_inputs(path: Path) -> list[Requirement]:
    """The requirements an input file names (following ``-r``; ``-c`` constraints are not requirements)."""
    out: list[Requirement] = []
    for line in _logical_lines(path):
        words = line.split()
        if words[0] in ("-r", "--requirement"):
            out += read_inputs(path.parent / words[1])
        elif words[0].startswith("-"):
            continue
        else:
            try:
                out.append(Requirement(line))
            except InvalidRequirement as e:
                raise ValueError(f"{path.name}: {line!r}: {e}") from None
    return out


def dependency_closure(roots: list[Requirement]) -> tuple[set[str], list[str]]:
    """Every distribution ``roots`` pull in on this interpreter (extras and markers applied), from the installed
    metadata; and the names that are not installed (whose dependencies could not be followed)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    absent: list[str] = []
    stack = [(canonical(r.name), frozenset(r.extras)) for r in roots if not r.marker or r.marker.evaluate()]
    while stack:
        name, extras = stack.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            absent.append(name)
            continue
        for raw in requires:
            req = Requirement(raw)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            stack.append((canonical(req.name), frozenset(req.extras)))
    return names, sorted(set(absent))


def lock_problems(lock: Lock, root: Path = ROOT, *, follow_metadata: bool = True) -> list[str]:
    """Why ``lock``'s file disagrees with its input (empty when it agrees). Offline."""
    source, output = root / lock.source, root / lock.output
    if not output.exists():
        return [f"{lock.output} is missing: run `{COMPILE_COMMAND}`"]
    pins = read_lock(output)
    wanted = read_inputs(source)
    problems = [f"{lock.output}: {name}=={pin.version} has no --hash" for name, pin in pins.items() if not pin.hashes]
    for req in wanted:
        pin = pins.get(canonical(req.name))
        if pin is None:
            problems.append(f"{lock.output}: {req.name} ({lock.source}) is not locked: run `{COMPILE_COMMAND}`")
        elif req.specifier and not req.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{lock.output}: {req.name}=={pin.version} but {lock.source} asks {req.specifier}: "
                f"run `{COMPILE_COMMAND}`"
            )
    if lock.no_deps:
        named = {canonical(r.name) for r in wanted}
        problems += [f"{lock.output}: {name} is not named in {lock.source}" for name in sorted(set(pins) - named)]
    if lock.constrained:
        dev = read_lock(root / DEV_LOCK)
        for name, pin in pins.items():
            if name not in dev:
                if lock.no_deps:  # a stage would ship it untested (the bench lock may add its own tools)
                    problems.append(f"{lock.output}: {name} is not in {DEV_LOCK}, so no test ever ran it")
            elif (pin.version, pin.hashes) != (dev[name].version, dev[name].hashes):
                problems.append(f"{lock.output}: {name}=={pin.version} differs from {DEV_LOCK}'s {dev[name].version}")
    if follow_metadata and not lock.no_deps:
        reached, absent = dependency_closure(wanted)
        problems += [f"{lock.output}: {name} is needed but not locked" for name in sorted(reached - set(pins))]
        if not absent:  # strays can only be told when every dependency could be followed
            strays = sorted(set(pins) - reached)
            problems += [f"{lock.output}: {name} is locked but nothing needs it" for name in strays]
    return problems


def venv_problems(root: Path = ROOT) -> list[str]:
    """Packages of the dev lock that this interpreter does not have at the locked version."""
    problems = []
    for name, pin in read_lock(root / DEV_LOCK).items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != pin.version:
            problems.append(f"{name}: {DEV_LOCK} has {pin.version}, this venv {installed or 'nothing'}: run make test")
    return problems


def check(root: Path = ROOT) -> list[str]:
    problems = []
    for lock in LOCKS:
        # The bench lock's extras (pyvips) are installed only by `make bench`: their metadata may be absent.
        problems += lock_problems(lock, root, follow_metadata=lock.output != "requirements-bench.txt")
    return problems + venv_problems(root)


# This repository's own packages, installed from their folders (make: `pip install -e client`), in no lock.
OWN_PACKAGES = {"boardsite-client"}


def extraneous(root: Path = ROOT) -> list[str]:
    """Installed distributions that no lock of the venv names (left by an older lock): what --prune removes."""
    locked = set(read_lock(root / DEV_LOCK)) | set(read_lock(root / "requirements-bench.txt"))
    installed = {canonical(d.metadata["Name"]) for d in importlib.metadata.distributions()}
    return sorted(installed - locked - OWN_PACKAGES)


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        raise SystemExit("uv is not installed: run `make test` once (it is in requirements-dev.txt)")
    return found


def compile_all(upgrade: str | None = None, root: Path = ROOT) -> None:
    """Re-resolve every lock with uv. ``upgrade``: ``"1"`` for every package, else a package name."""
    for lock in LOCKS:
        cmd = [uv(), "pip", "compile", "--quiet", "--generate-hashes", "--python-version", PYTHON_VERSION]
        cmd += ["--python-platform", PLATFORM, "--custom-compile-command", COMPILE_COMMAND]
        # Into a copy (uv keeps the pins it finds there), replacing the lock only when it changed: an unchanged lock
        # keeps its date, so make does not reinstall the venv for nothing.
        output, draft = root / lock.output, root / (lock.output + ".draft")
        if output.exists():
            shutil.copyfile(output, draft)
        cmd += [lock.source, "-o", str(draft.relative_to(root))]
        if lock.constrained:
            cmd += ["-c", DEV_LOCK]
        if lock.no_deps:
            cmd.append("--no-deps")
        if upgrade and not lock.constrained:
            cmd += ["--upgrade"] if upgrade == "1" else ["--upgrade-package", upgrade]
        print("$", " ".join(cmd[1:]))
        try:
            subprocess.run(cmd, cwd=root, check=True)
            if not output.exists() or output.read_bytes() != draft.read_bytes():
                draft.replace(output)
        finally:
            draft.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy lock", description=__doc__)
    parser.add_argument("--upgrade", metavar="PACKAGE|1", help="move one package (or, with 1, all) to its newest")
    parser.add_argument("--check", action="store_true", help="offline: locks against inputs and this venv")
    parser.add_argument("--prune", action="store_true", help="uninstall what no lock names (the Makefile runs it)")
    args = parser.parse_args(argv)
    if args.prune:
        stale = extraneous()
        if stale:
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", *stale], check=True)
            print(f"removed what the lock no longer names: {', '.join(stale)}")
        return 0
    if not args.check:
        compile_all(args.upgrade)
    problems = check()
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
