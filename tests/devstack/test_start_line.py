"""What `manage.py devstack` says about the jobs when it starts: their modes, and whatever keeps them from behaving
as those modes say (OFFLOAD_FAULTS, OFFLOAD_PINNED), so that nobody takes an injected fault for a real one."""

from __future__ import annotations

import io
import signal

import pytest
from django.core.management import call_command

from devstack.management.commands import devstack


@pytest.fixture
def started(monkeypatch, settings):
    """devstack's start with nothing really started: no database check, ports, provisioning nor children."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # an AWS of its own: no moto started
    monkeypatch.setattr(devstack, "database_problem", lambda: None)
    monkeypatch.setattr(devstack, "_port_in_use", lambda host, port: False)
    monkeypatch.setattr(devstack, "call_command", lambda *a, **k: None)
    monkeypatch.setattr(signal, "signal", lambda *a: None)
    for name in ("provision", "supervise", "stop_all"):
        monkeypatch.setattr(devstack.Command, name, lambda self: None)
    monkeypatch.setattr(devstack.Command, "start", lambda self, child: None)
    monkeypatch.delenv("OFFLOAD_FAULTS", raising=False)
    settings.OFFLOAD_PINNED = frozenset()

    def run() -> list[str]:
        out = io.StringIO()
        call_command("devstack", "--port", "1", "--aws-port", "2", "--functions-port", "3", stdout=out)
        return out.getvalue().splitlines()

    return run


def test_the_start_says_nothing_of_faults_or_pins_when_there_are_none(started):
    lines = started()
    assert any(line.startswith("[devstack] job modes: ") for line in lines)
    assert not [line for line in lines if "OFFLOAD_FAULTS" in line or "OFFLOAD_PINNED" in line]


def test_the_start_names_the_faults_injected_and_the_jobs_pinned(started, monkeypatch, settings):
    monkeypatch.setenv(
        "OFFLOAD_FAULTS", "process_image@lambda=fail:30; send_email=slow:500,fail:5; proces_image@lambda=fail:9; x=y:1"
    )
    settings.OFFLOAD_PINNED = frozenset({"send_email", "process_image"})
    lines = started()
    modes = next(i for i, line in enumerate(lines) if line.startswith("[devstack] job modes: "))
    assert lines[modes + 1] == (
        "[devstack] faults injected (OFFLOAD_FAULTS): process_image@lambda=fail:30, send_email=fail:5,slow:500, "
        "proces_image@lambda=fail:9 (no such job); ignored, not job@runtime=fail:PERCENT,slow:MS: x=y:1"
    )
    assert lines[modes + 2] == (
        "[devstack] pinned to their OFFLOAD_MODES mode (OFFLOAD_PINNED): process_image, send_email"
    )
