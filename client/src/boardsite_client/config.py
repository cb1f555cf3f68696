"""Where the client keeps its state: the config file (site URL and token per site) and the upload manifests.

The config is ``$XDG_CONFIG_HOME/boardsite/config.json`` (else ``~/.config/boardsite/config.json``), mode 0600 in
a 0700 folder: it holds a secret. A token is stored per site URL and only ever sent to that site, so pointing the
client at another URL (``--url``, ``BOARDSITE_URL``) never leaks the stored token to it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from boardsite_client.errors import AuthError, UsageError

DEFAULT_URL = "http://127.0.0.1:8000"  # `make run`


def config_dir(env: Mapping[str, str] = os.environ) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "boardsite"


def state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Upload manifests: state, not configuration (XDG's state folder)."""
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(base) / "boardsite"


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    return config_dir(env) / "config.json"


def private_dir(path: Path) -> Path:
    """``path`` made (with parents) and set to 0700: only its owner may list what the client keeps there."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: object) -> None:
    """Write JSON atomically with mode 0600 from the first byte (never briefly world-readable)."""
    private_dir(path.parent)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing leftover keeps its old mode through O_CREAT
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1, sort_keys=True)
            out.write("\n")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{url!r} is not a site address: give one such as https://boards.example.com")
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path}"


def load(env: Mapping[str, str] = os.environ) -> dict:
    path = config_path(env)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"sites": {}}
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}; fix or delete it and run boardsite login") from exc
    if not isinstance(data, dict) or not isinstance(data.get("sites"), dict):
        return {"sites": {}}
    return data


def save_login(url: str, token: str, username: str, env: Mapping[str, str] = os.environ) -> Path:
    """Remember ``token`` for ``url`` and make ``url`` the default site."""
    data = load(env)
    data["sites"][url] = {"token": token, "username": username}
    data["default"] = url
    path = config_path(env)
    write_private(path, data)
    return path


@dataclass(frozen=True)
class Site:
    url: str
    token: str | None
    token_from: str  # where the token came from, for messages: "BOARDSITE_TOKEN", "--token", the config file


def resolve(url_option: str | None, env: Mapping[str, str] = os.environ) -> Site:
    """The site to talk to and its token: ``--url``, else ``BOARDSITE_URL``, else the config's default site (else
    the local stack); the token from ``BOARDSITE_TOKEN``, else the one the config keeps for that very URL."""
    data = load(env)
    url = normalize_url(url_option or env.get("BOARDSITE_URL") or data.get("default") or DEFAULT_URL)
    if env.get("BOARDSITE_TOKEN"):
        return Site(url, env["BOARDSITE_TOKEN"].strip(), "BOARDSITE_TOKEN")
    stored = data["sites"].get(url, {})
    return Site(url, stored.get("token"), str(config_path(env)))


def require_token(site: Site) -> str:
    if not site.token:
        raise AuthError(f"no token for {site.url}: run `boardsite login --url {site.url}` or set BOARDSITE_TOKEN")
    return site.token


def slug(url: str) -> str:
    """A file-name-safe form of a site URL (one manifest per site and board)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", urlsplit(url).netloc + urlsplit(url).path).strip("_")
