"""Which files an upload sends: the images under the given paths (folders recursively), by extension."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from boardsite_client.errors import UsageError

# The site's allowed types (POST /api/uploads), by the extensions that name them.
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".heic": "image/heic",
    ".heif": "image/heif",
}


@dataclass(frozen=True)
class LocalFile:
    path: Path  # absolute
    size: int
    mtime_ns: int

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.path.suffix.lower()]

    @property
    def key(self) -> str:
        """Its identity in the manifest: a file changed since (size or mtime) is a new file."""
        return f"{self.path}|{self.size}|{self.mtime_ns}"


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


def discover(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[LocalFile], list[Skipped]]:
    """The image files under ``paths`` (sorted within each folder, each file once) and the files left out with
    why. A path that does not exist is a usage error, raised before anything is sent."""
    found: dict[Path, LocalFile] = {}
    skipped: list[Skipped] = []
    for given in paths:
        root = Path(given).expanduser()
        if not root.exists():
            raise UsageError(f"{given}: no such file or folder")
        if root.is_dir():
            candidates = []
            for folder, dirs, names in os.walk(root):  # symlinked folders are not followed: no loops
                dirs.sort()
                candidates += [Path(folder, name) for name in sorted(names)]
        else:
            candidates = [root]
        for path in candidates:
            path = path.absolute()
            if path in found:
                continue
            if path.suffix.lower() not in CONTENT_TYPES:
                skipped.append(Skipped(path, f"not an image type the site takes ({path.suffix or 'no extension'})"))
                continue
            try:
                stat = path.stat()
            except OSError as exc:
                skipped.append(Skipped(path, f"cannot read it: {exc.strerror}"))
                continue
            if not path.is_file():
                skipped.append(Skipped(path, "not a regular file"))
            elif stat.st_size == 0:
                skipped.append(Skipped(path, "empty"))
            else:
                found[path] = LocalFile(path, stat.st_size, stat.st_mtime_ns)
    return list(found.values()), skipped


def sha256_of(path: Path, progress: Callable[[int], None] | None = None, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()
