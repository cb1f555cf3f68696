"""The locks (deploy/lock.py): every install comes from a lock with hashes that agrees with its inputs.

These run offline: they read the *.in inputs, the *.txt locks and the installed metadata. Each check is also shown
failing on a copy of the files with one thing changed, the way a hand edit or a forgotten `make lock` leaves them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deploy import lock

ROOT = Path(__file__).resolve().parents[2]


def test_every_lock_agrees_with_its_inputs_and_the_venv():
    assert lock.check() == []


def test_every_install_is_locked_with_hashes():
    for entry in lock.LOCKS:
        pins = lock.read_lock(ROOT / entry.output)
        assert pins, entry.output
        assert all(pin.hashes for pin in pins.values()), entry.output
    dev = lock.read_lock(ROOT / lock.DEV_LOCK)
    # The two packages that broke fresh machines when only direct dependencies were pinned.
    assert {"durationpy", "wcwidth"} <= set(dev)
    # Stage locks carry the hashes of every platform's wheels: an arm64 build checks its aarch64 files too.
    pillow = lock.read_lock(ROOT / "deploy" / "requirements-functions.txt")["pillow"]
    assert len(pillow.hashes) > 10


def test_the_makefile_installs_from_the_lock_with_hashes():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements-dev.txt" in makefile
    assert "$(STAMP): requirements-dev.txt" in makefile


@pytest.fixture
def tree(tmp_path):
    """A copy of the inputs and locks, to break one thing at a time."""
    for entry in lock.LOCKS:
        for name in (entry.source, entry.output):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, tmp_path / name)
    assert [p for e in lock.LOCKS for p in lock.lock_problems(e, tmp_path)] == []
    return tmp_path


def problems(root: Path) -> list[str]:
    return [p for entry in lock.LOCKS for p in lock.lock_problems(entry, root)]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_bumped_input_without_a_new_lock_is_caught(tree):
    edit(tree / "requirements.in", "Django==5.2.19", "Django==5.2.20")
    found = problems(tree)
    assert any("requirements.txt: Django==5.2.19 but requirements.in asks ==5.2.20" in p for p in found), found
    assert any(p.startswith("requirements-dev.txt: Django==5.2.19") for p in found), found


def test_a_new_input_without_a_new_lock_is_caught(tree):
    (tree / "requirements-dev.in").write_text((tree / "requirements-dev.in").read_text() + "left-pad==1.0\n")
    assert "requirements-dev.txt: left-pad (requirements-dev.in) is not locked: run `make lock`" in problems(tree)


def test_a_dropped_input_leaves_a_stray_pin(tree):
    edit(tree / "requirements-dev.in", "ruff==", "# ruff==")
    assert "requirements-dev.txt: ruff is locked but nothing needs it" in problems(tree)


def test_a_transitive_package_missing_from_the_lock_is_caught(tree):
    path = tree / lock.DEV_LOCK
    lines = path.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("durationpy=="))
    end = next(i for i in range(start + 1, len(lines)) if lines[i][:1].isalpha())
    path.write_text("".join(lines[:start] + lines[end:]))
    assert "requirements-dev.txt: durationpy is needed but not locked" in problems(tree)


def test_a_stage_lock_that_differs_from_the_dev_lock_is_caught(tree):
    path = tree / "deploy" / "requirements-zappa.txt"
    version = lock.read_lock(path)["durationpy"].version
    edit(path, f"durationpy=={version}", "durationpy==0.1")
    found = problems(tree)
    assert any(f"durationpy==0.1 differs from requirements-dev.txt's {version}" in p for p in found), found


def test_a_stage_lock_must_name_only_its_input(tree):
    edit(tree / "deploy" / "requirements-redis.in", "\nredis", "\n# redis")
    found = problems(tree)
    assert "deploy/requirements-redis.txt: redis is not named in deploy/requirements-redis.in" in found


def test_an_entry_without_hashes_is_caught(tree):
    path = tree / "deploy" / "requirements-redis.txt"
    text = path.read_text()
    version = lock.read_lock(path)["redis"].version
    path.write_text(f"redis=={version}\n")
    assert "deploy/requirements-redis.txt: redis==" + version + " has no --hash" in problems(tree)
    path.write_text(text)


def test_a_venv_off_the_lock_is_caught(tree):
    version = lock.read_lock(tree / lock.DEV_LOCK)["durationpy"].version
    edit(tree / lock.DEV_LOCK, f"durationpy=={version}", "durationpy==0.0.1")
    assert lock.venv_problems(tree) == [
        f"durationpy: requirements-dev.txt has 0.0.1, this venv {version}: run make test"
    ]
