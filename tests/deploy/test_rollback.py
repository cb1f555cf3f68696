"""`python -m deploy rollback`'s choice of a version, on version histories as Zappa 0.63 leaves them.

The played deploy (tests/deploy/test_played_deploy.py) runs it against the local AWS; these check the choice itself on
the histories that matter, each shaped as zappa/core.py publishes (code first, then configuration).
"""

from __future__ import annotations

import io
import zipfile

import pytest
import requests

from deploy import rollback as rb
from deploy.rollback import Live, RollbackError, Version, choose, restorable
from offload import aws


def version(number: str, code: str, memory: int = 512, **env: str) -> Version:
    configuration = {
        "Version": number,
        "CodeSha256": code,
        "Handler": "handler.lambda_handler",
        "Runtime": "python3.12",
        "MemorySize": memory,
        "Timeout": 30,
        "Environment": {"Variables": env},
    }
    return Version.of(configuration)


def live(versions: list[Version], latest: Version, alias: str | None = None) -> Live:
    return Live(
        function="fn",
        arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        latest=Version("$LATEST", latest.code, latest.config),
        versions=tuple(versions),
        alias="snapstart" if alias else None,
        alias_version=alias,
    )


def zappa_choice(state: Live, back: int = 1) -> Version:
    """What `zappa rollback -n BACK` re-uploads: the code of the BACK-th version before the newest."""
    return sorted(state.versions, key=lambda v: int(v.number), reverse=True)[back]


# SnapStart: deploy A publishes 1; update B (memory 640) publishes 2 (B under A's configuration) and 3 (B's).
A1 = version("1", "A")
B2, B3 = version("2", "B"), version("3", "B", 640, RELEASE="B")


def test_a_configuration_change_makes_zappas_count_land_on_the_same_code():
    state = live([A1, B2, B3], B3, alias="3")
    assert zappa_choice(state).code == "B"
    assert choose(state, None) == A1


def test_the_release_before_is_found_after_zappas_own_rollback():
    b4 = version("4", "B", 640, RELEASE="B")  # `zappa rollback -n 1`: B's code again, published under B's config
    state = live([A1, B2, B3, b4], b4, alias="4")
    assert choose(state, None) == A1


def test_after_a_rollback_the_previous_release_is_the_one_before_the_live_one():
    c4, c5 = version("4", "C"), version("5", "C", 768)
    rolled_back = live([A1, B2, B3, c4, c5], B3, alias="3")  # rollback made B live again: C is newer, not earlier
    assert choose(rolled_back, None) == A1
    with pytest.raises(RollbackError, match="no earlier release"):
        choose(live([A1, B2, B3, c4, c5], A1, alias="1"), None)


def test_without_snapstart_the_live_release_is_latest_and_its_last_version_has_its_configuration():
    # update B publishes 2 (B, A's configuration), wire records 3 (B, B's configuration).
    state = live([A1, B2, B3], B3)
    assert choose(state, None) == A1
    # A later rollback to A leaves $LATEST on A's code: the release before it is none, whatever is newer.
    with pytest.raises(RollbackError, match="no earlier release"):
        choose(live([A1, B2, B3], A1), None)


def test_latest_held_by_no_version_is_refused_with_the_way_out():
    with pytest.raises(RollbackError, match="python -m deploy wire"):
        choose(live([A1], version("$LATEST", "X")), None)


def test_to_takes_that_version_exactly():
    state = live([A1, B2, B3], A1, alias="1")
    assert choose(state, "3") == B3
    with pytest.raises(RollbackError, match="no version 9"):
        choose(state, "9")


def test_what_is_restored_is_the_configuration_update_function_configuration_takes():
    configuration = {
        "Version": "3",
        "CodeSha256": "B",
        "Handler": "handler.lambda_handler",
        "Runtime": "python3.12",
        "MemorySize": 640,
        "Timeout": 30,
        "Environment": {"Variables": {"RELEASE": "B"}},
        "Role": "arn:aws:iam::123456789012:role/r",  # not restored: the stack owns the role
        "Layers": [],
    }
    assert restorable(configuration) == {
        "Handler": "handler.lambda_handler",
        "Runtime": "python3.12",
        "MemorySize": 640,
        "Timeout": 30,
        "EphemeralStorage": {"Size": 512},
        "Environment": {"Variables": {"RELEASE": "B"}},
    }


class InactiveVersion:
    """moto's Lambda, except that one version's snapshot is retired (moto keeps every version Active: this state
    is the one thing stood in for)."""

    def __init__(self, lam, retired: str):
        self._lam, self._retired = lam, retired

    def __getattr__(self, name):
        return getattr(self._lam, name)

    def get_function_configuration(self, **kwargs):
        answer = self._lam.get_function_configuration(**kwargs)
        if kwargs.get("Qualifier") == self._retired:
            answer = {**answer, "State": "Inactive"}
        return answer


def test_the_alias_goes_to_a_new_version_when_the_old_one_cannot_serve(moto_endpoint, monkeypatch):
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    aws.clear_caches()
    lam, iam = aws.client("lambda"), aws.client("iam")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def lambda_handler(event, context):\n    return None\n")
    lam.create_function(
        FunctionName="fn",
        Runtime="python3.12",
        Role=role,
        Handler="handler.lambda_handler",
        Code={"ZipFile": buf.getvalue()},
        MemorySize=512,
        Publish=True,
    )
    lam.update_function_configuration(FunctionName="fn", MemorySize=640)
    lam.publish_version(FunctionName="fn")
    lam.create_alias(FunctionName="fn", Name=rb.SNAPSTART_ALIAS, FunctionVersion="2")
    live_now = rb.read_live(lam, "fn", rb.SNAPSTART_ALIAS)
    done = rb.rollback(InactiveVersion(lam, "1"), None, live_now, rb.choose(live_now, "1"))
    assert "version 1 is Inactive (its snapshot is gone): published it again as version 3" in done
    assert lam.get_alias(FunctionName="fn", Name=rb.SNAPSTART_ALIAS)["FunctionVersion"] == "3"
    assert lam.get_function_configuration(FunctionName="fn", Qualifier="3")["MemorySize"] == 512
    # Back to 2 with 2 versions retained: the next update keeps only the newest besides its own, so the alias must
    # not stay on 2 (AWS would refuse to delete it and the update would stop half-way).
    live_now = rb.read_live(lam, "fn", rb.SNAPSTART_ALIAS)
    done = rb.rollback(lam, None, live_now, rb.choose(live_now, "2"), retained=2)
    assert any(line.startswith("version 2 is older than the newest 1") for line in done)
    assert lam.get_alias(FunctionName="fn", Name=rb.SNAPSTART_ALIAS)["FunctionVersion"] == "4"
    aws.clear_caches()
