"""`python -m deploy move`: the settings it writes and the order of its commands (played in test_played_deploy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import lint, move
from deploy.config import DeployConfig
from deploy.generate import build_settings

ROOT = Path(__file__).resolve().parents[2]
BROKER = "redis://jobs.internal:6379/0"
CFG = DeployConfig(account="111122223333", region="eu-west-1", subnets=("subnet-1",), security_groups=("sg-1",))


def settings_file(tmp_path: Path) -> Path:
    settings = build_settings(CFG)
    settings["web"]["touch"] = False
    path = tmp_path / "zappa_settings.json"
    path.write_text(json.dumps(settings, indent=4) + "\n")
    return path


def dry_run(path: Path, *args: str) -> list[str]:
    command = [sys.executable, "-m", "deploy", "move", *args, "-s", str(path), "--dry-run"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_to_celery_unschedules_with_the_current_settings_before_rewriting_them(tmp_path):
    path = settings_file(tmp_path)
    before = path.read_text()
    lines = dry_run(path, "process_image", "celery", "--broker-url", BROKER)
    assert [line.split(" -s ")[0] for line in lines] == [
        "$ zappa unschedule functions",
        f"$ (rewrite {path}: OFFLOAD_MODES process_image=celery, the events of its stage)",
        "$ zappa schedule functions",
        "$ python -m deploy wire functions",
        "$ zappa update web",
        "$ python -m deploy wire web",
    ]
    assert path.read_text() == before  # a dry run writes nothing


def test_back_to_lambda_updates_the_site_before_the_trigger_returns(tmp_path):
    path = settings_file(tmp_path)
    path.write_text(json.dumps(move.rewrite(json.loads(path.read_text()), "process_image", "celery", BROKER)))
    lines = dry_run(path, "process_image", "lambda")
    assert [line.split(" -s ")[0] for line in lines] == [
        f"$ (rewrite {path}: OFFLOAD_MODES process_image=lambda, the events of its stage)",
        "$ zappa update web",
        "$ zappa schedule functions",
        "$ python -m deploy wire functions",
        "$ python -m deploy wire web",
    ]


def test_a_job_of_the_web_stage_is_moved_by_the_update_itself(tmp_path):
    lines = dry_run(settings_file(tmp_path), "sweep_uploads", "celery", "--broker-url", BROKER)
    assert [line.split(" -s ")[0].split(":")[0] for line in lines] == [
        "$ zappa unschedule web",
        f"$ (rewrite {tmp_path / 'zappa_settings.json'}",
        "$ zappa update web",
        "$ python -m deploy wire web",
    ]


def test_the_rewritten_settings_are_configures_plus_the_keys_it_never_writes(tmp_path):
    settings = json.loads(settings_file(tmp_path).read_text())
    moved = move.rewrite(settings, "process_image", "celery", BROKER)
    expected = build_settings(
        DeployConfig(**{**CFG.__dict__, "modes": {"process_image": "celery"}, "broker_url": BROKER})
    )
    expected["web"]["touch"] = False
    assert moved == expected
    assert lint.deployed_modes(moved)["process_image"] == "celery"
    back = move.rewrite(moved, "process_image", "lambda", None)
    assert back == settings  # the broker goes with the last job on Celery


def test_refusals(tmp_path):
    settings = json.loads(settings_file(tmp_path).read_text())
    with pytest.raises(move.MoveError, match="E003"):
        move.rewrite(settings, "apply_results", "celery", BROKER)
    with pytest.raises(move.MoveError, match="broker"):
        move.rewrite(settings, "process_image", "celery", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy",
            "move",
            "process_image",
            "celery",
            "-s",
            str(tmp_path / "zappa_settings.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "error: a job in celery mode needs --broker-url" in done.stderr
    assert "Traceback" not in done.stderr
