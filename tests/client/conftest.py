"""The client's tests: it is its own package (client/), importable here without installing it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[2] / "client" / "src"
if str(CLIENT) not in sys.path:
    sys.path.insert(0, str(CLIENT))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh HOME and XDG folders: the client's config and manifests go there, never the real ones."""
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    for name in ("BOARDSITE_URL", "BOARDSITE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
