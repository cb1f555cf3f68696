"""Commands in the guides that a shell or the AWS CLI would read otherwise than meant (issue 16 row 11)."""

from __future__ import annotations

import argparse
import re
import secrets
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ("DEPLOY.md", "README.md")


def commands(text: str) -> list[str]:
    """Each shell command of the guide's code blocks, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [line for block in blocks for line in re.sub(r"\\\n\s*", " ", block).splitlines() if line.strip()]


def test_a_generated_secret_can_start_with_a_dash_and_the_cli_then_reads_an_option():
    # The AWS CLI parses its arguments with argparse: a value after a space that starts with "-" is taken for an
    # option. token_urlsafe's alphabet has "-", so one secret in 64 starts with it.
    cli = argparse.ArgumentParser(exit_on_error=False)
    cli.add_argument("--value")
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        cli.parse_args(["--value", "-Xk3"])
    assert cli.parse_args(["--value=-Xk3"]).value == "-Xk3"
    assert any(secrets.token_urlsafe(50).startswith("-") for _ in range(2000))


@pytest.mark.parametrize("guide", GUIDES)
def test_every_ssm_value_is_passed_so_that_it_cannot_be_read_as_an_option(guide):
    puts = [c for c in commands((ROOT / guide).read_text()) if "ssm put-parameter" in c]
    assert puts, f"{guide} shows how to put the secrets"
    for command in puts:
        values = re.findall(r"--value(\S*)(?:\s+(\S+))?", command)
        assert values, command
        for attached, following in values:
            # --value=..., or a file:// path (which never starts with "-"); never a bare value after a space.
            assert attached.startswith("=") or following.startswith("file://"), command
