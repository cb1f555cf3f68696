"""The deploy configuration: one command writes both stages; placeholders and foreign ARNs are refused."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import config, configure, lint, parse, resources
from deploy.config import DeployConfig, stage_account
from deploy.generate import build_settings
from deploy.lint import check_deployable
from offload import registry

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = json.loads((ROOT / "zappa_settings.json").read_text())

REAL = DeployConfig(
    account="111122223333",
    region="eu-west-1",
    domain="photos.example.com",
    subnets=("subnet-0a", "subnet-0b"),
    security_groups=("sg-0c",),
    database_url="postgres://boardsite@db.internal.example:5432/boardsite",
)


def queue_event(stage: dict) -> dict:
    """The web stage's SQS event (scheduled jobs come before it or after it, in registry order)."""
    return next(e for e in stage["events"] if "event_source" in e)


def test_the_committed_settings_are_what_configure_writes():
    # Edited by hand, the file would drift from the registry; regenerate it with `python -m deploy configure`. An
    # operator's fork commits its own account's file: it must be one that configure writes too.
    regenerated = build_settings(parse.config_from_settings(COMMITTED))
    assert lint.explain_differences(COMMITTED, regenerated) == []
    assert COMMITTED == regenerated
    assert lint.check_settings(COMMITTED) == []


@pytest.mark.parametrize(
    ("job", "change", "expected"),
    [
        ("process_image", {"timeout": 90}, "functions.timeout_seconds differs (registry: the timeout of"),
        ("send_email", {"memory": 2048}, "functions.memory_size differs (registry: the memory of"),
        ("sweep_storage", {"handler": "boardsite.images.cleanup.other"}, "trigger or handler of sweep_storage"),
        ("weekly_digest", {"trigger": registry.ScheduleTrigger("cron(0 22 ? * MON *)")}, "handler of weekly_digest"),
    ],
)
def test_a_difference_from_the_registry_names_the_field_it_came_from(monkeypatch, job, change, expected):
    # The committed file against what configure would write after one registry field changed.
    jobs = dict(registry.JOBS)
    jobs[job] = dataclasses.replace(jobs[job], **change)
    monkeypatch.setattr(registry, "JOBS", jobs)
    differences = lint.explain_differences(COMMITTED, build_settings(parse.config_from_settings(COMMITTED)))
    assert any(expected in d for d in differences), differences


def test_this_repository_commits_the_placeholder_file():
    if stage_account(COMMITTED["web"]) != config.PLACEHOLDER_ACCOUNT:
        pytest.skip("an operator's fork: zappa_settings.json is configured for a real account")
    assert COMMITTED == build_settings(DeployConfig())


@pytest.mark.parametrize("stage", config.STAGE_NAMES)
def test_placeholders_are_refused(stage):
    problems = check_deployable(stage, build_settings(DeployConfig())[stage])
    assert any("aws_region 'REGION' is a placeholder" in p for p in problems)
    assert any("placeholder or missing" in p for p in problems)


def test_a_configured_account_is_deployable():
    settings = build_settings(REAL)
    for name in config.STAGE_NAMES:
        assert check_deployable(name, settings[name]) == []
    assert lint.check_zappa_settings(settings) == []
    results = queue_event(settings["web"])["event_source"]["arn"]
    assert results == "arn:aws:sqs:eu-west-1:111122223333:boardsite-image-results"
    assert settings["functions"]["dead_letter_arn"] == "arn:aws:sqs:eu-west-1:111122223333:boardsite-process-image-dlq"


def test_the_database_placeholder_is_refused():
    cfg = DeployConfig(account="111122223333", region="eu-west-1")
    assert any("DATABASE_URL is a placeholder" in p for p in check_deployable("web", build_settings(cfg)["web"]))


@pytest.mark.parametrize(
    ("stage", "breakage", "complaint"),
    [
        (
            "web",
            lambda s: queue_event(s)["event_source"].update(
                arn="arn:aws:sqs:eu-west-1:123456789012:boardsite-image-results"
            ),
            "not in the stage's region eu-west-1 and account 111122223333",
        ),
        (
            "web",
            lambda s: queue_event(s)["event_source"].update(
                arn="arn:aws:sqs:us-east-1:111122223333:boardsite-image-results"
            ),
            "not in the stage's region",
        ),
        (
            "functions",
            lambda s: s.update(dead_letter_arn="arn:aws:sqs:eu-west-1:123456789012:boardsite-process-image-dlq"),
            "not in the stage's region",
        ),
        ("web", lambda s: s.update(role_arn="arn:aws:iam::000000000000:role/x"), "placeholder"),
        ("web", lambda s: s.update(aws_region="REGION"), "placeholder"),
        ("web", lambda s: s["environment_variables"].update(DJANGO_SECRET_KEY="x" * 50), "plain text into the zip"),
        ("web", lambda s: s["environment_variables"].update(DATABASE_URL="postgres://u:pw@h/db"), "password"),
        ("web", lambda s: s.update(manage_roles=True), "manage_roles"),
        ("functions", lambda s: s.update(log_level="DEBUG"), "log_level"),
    ],
)
def test_what_check_deployable_refuses(stage, breakage, complaint):
    broken = copy.deepcopy(build_settings(REAL)[stage])
    breakage(broken)
    assert any(complaint in p for p in check_deployable(stage, broken)), check_deployable(stage, broken)


def test_the_web_stage():
    web = build_settings(REAL)["web"]
    env = web["environment_variables"]
    assert env["DJANGO_DEBUG"] == "false"
    assert env["DJANGO_ALLOWED_HOSTS"] == ".execute-api.eu-west-1.amazonaws.com,photos.example.com"
    assert env["BOARDSITE_SSM_PREFIX"] == "/boardsite/prod/"
    assert env["BOARDSITE_FUNCTIONS_FUNCTION"] == "boardsite-functions-functions"
    assert web["snap_start"] == "PublishedVersions"
    # Zappa's handler reads this at import, before it applies environment_variables: it must be on the function.
    assert web["aws_environment_variables"] == {"INSTANTIATE_LAMBDA_HANDLER_ON_IMPORT": "true"}
    assert web["keep_warm"] is False
    assert web["manage_roles"] is False
    assert web["role_arn"] == "arn:aws:iam::111122223333:role/boardsite-web-lambda"
    assert web["vpc_config"] == {"SubnetIds": ["subnet-0a", "subnet-0b"], "SecurityGroupIds": ["sg-0c"]}
    assert web["prebuild_script"] == "deploy.prebuild.web"
    assert {"PIL", "pillow_heif", "boto3"} <= set(web["exclude"])
    assert web["callbacks"] == {"zip": "deploy.prebuild.included"}  # the zip holds the build only (by inclusion)
    assert (web["debug"], web["log_level"]) == (False, "INFO")
    assert "vpc_config" not in build_settings(DeployConfig(account="111122223333", region="eu-west-1"))["web"]


def test_the_functions_stage():
    functions = build_settings(REAL)["functions"]
    assert functions["apigateway_enabled"] is False
    assert functions["keep_warm"] is False
    assert "vpc_config" not in functions
    assert "snap_start" not in functions
    assert functions["manage_roles"] is False
    assert functions["prebuild_script"] == "deploy.prebuild.functions"
    assert {"django", "boardsite", "staticfiles", "celery", "kombu", "psycopg"} <= set(functions["exclude"])
    # Every offload job, in the registry's order (process_image and send_email among them).
    # (A job that answers requests has no event: its function URL, when it runs on lambda.)
    offload = [
        job.handler
        for job in registry.JOBS.values()
        if job.side == "offload" and not isinstance(job.trigger, registry.HTTPTrigger)
    ]
    assert [e["function"] for e in functions["events"]] == offload
    assert "function_url_enabled" not in functions  # issue_upload_ticket inline: the site answers
    assert {"offload.functions.process_image.handler", "offload.functions.send_email.handler"} <= set(offload)


def test_both_stages_share_one_dict_of_settings():
    settings = build_settings(REAL)
    shared = {name: settings["web"]["environment_variables"][name] for name in lint.SHARED_ENVIRONMENT}
    assert shared == settings["functions"]["environment_variables"]
    assert shared["BOARDSITE_BUCKET"] == "boardsite-media-111122223333-eu-west-1"


def test_no_secret_and_no_password_can_be_configured():
    with pytest.raises(ValueError, match="password"):
        DeployConfig(database_url="postgres://boardsite:hunter2@db/boardsite")
    with pytest.raises(ValueError, match="security-groups"):
        DeployConfig(subnets=("subnet-1",))
    for stage in build_settings(REAL).values():
        assert not any(s in name for name in stage["environment_variables"] for s in ("SECRET", "PASSWORD"))


def test_timeouts_and_visibility_timeouts_are_consistent():
    """AWS's guidance for an SQS trigger: the queue's visibility timeout at least 6x the function's timeout."""
    settings = build_settings(REAL)
    visibility = {spec.name: spec.visibility for spec in resources.queue_specs(REAL.queue_names)}
    checked = 0
    for stage in settings.values():
        for event in stage["events"]:
            arn = event.get("event_source", {}).get("arn", "")
            if arn.startswith("arn:aws:sqs:"):
                assert visibility[arn.rsplit(":", 1)[-1]] >= 6 * stage["timeout_seconds"]
                checked += 1
    assert checked == sum(registry.polled(j) is not None for j in registry.JOBS.values()) > 0
    # Every job fits in its stage's timeout (the stage's function serves all its jobs).
    for job in registry.JOBS.values():
        assert settings[registry.ZAPPA_STAGES[job.side]]["timeout_seconds"] >= job.timeout
    # The local uploads queue (the runner's stand-in for S3 -> Lambda) never redelivers a run still going.
    uploads = next(s for s in resources.queue_specs() if s.local_only)
    assert uploads.visibility > registry.get("process_image").timeout


def test_the_command_writes_the_settings(tmp_path):
    out = tmp_path / "zappa_settings.json"
    argv = ["configure", "--account", "111122223333", "--region", "eu-west-1", "--domain", "photos.example.com"]
    argv += ["--subnets", "subnet-0a,subnet-0b", "--security-groups", "sg-0c", "--architecture", "arm64"]
    argv += ["--database-url", "postgres://boardsite@db.internal.example:5432/boardsite", "-o", str(out)]
    done = subprocess.run([sys.executable, "-m", "deploy", *argv], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = json.loads(out.read_text())
    assert written == build_settings(
        DeployConfig(
            account="111122223333",
            region="eu-west-1",
            domain="photos.example.com",
            subnets=("subnet-0a", "subnet-0b"),
            security_groups=("sg-0c",),
            database_url="postgres://boardsite@db.internal.example:5432/boardsite",
            architecture="arm64",
        )
    )
    assert {stage["architecture"] for stage in written.values()} == {"arm64"}


def test_a_job_named_twice_is_refused(capsys):
    with pytest.raises(SystemExit):
        configure.main(["--mode", "process_image=celery", "--mode", "process_image=lambda", "-o", "-"])
    assert "--mode names process_image twice" in capsys.readouterr().err


def test_the_command_refuses_a_password_in_the_database_url(capsys):
    with pytest.raises(SystemExit):
        configure.main(["--database-url", "postgres://u:pw@h/db", "-o", "-"])
    assert "must not carry a password" in capsys.readouterr().err


def test_static_files_are_linked_under_the_stage_on_api_gateways_own_host():
    without_domain = build_settings(DeployConfig(account="111122223333", region="eu-west-1"))
    assert without_domain["web"]["environment_variables"]["DJANGO_STATIC_URL"] == "/web/static/"
    assert build_settings(REAL)["web"]["environment_variables"]["DJANGO_STATIC_URL"] == "/static/"


def test_a_job_moved_to_celery_loses_its_aws_trigger_and_back():
    to_celery = dataclasses.replace(REAL, modes={"process_image": "celery"}, broker_url="redis://jobs.internal:6379/0")
    settings = build_settings(to_celery)
    assert "process_image=celery" in settings["web"]["environment_variables"]["OFFLOAD_MODES"]
    assert settings["web"]["environment_variables"]["CELERY_BROKER_URL"] == "redis://jobs.internal:6379/0"
    # S3 must not also invoke the function: it would run twice. (The other offload jobs' triggers stay.)
    others = [
        job.handler
        for job in registry.JOBS.values()
        if job.side == "offload" and job.name != "process_image" and not isinstance(job.trigger, registry.HTTPTrigger)
    ]
    assert [e["function"] for e in settings["functions"]["events"]] == others
    assert "offload.functions.send_email.handler" in others
    assert lint.check_zappa_settings(settings) == []
    for name in config.STAGE_NAMES:
        assert check_deployable(name, settings[name]) == []
    assert build_settings(parse.config_from_settings(settings)) == settings, "template and policies read it back"

    # A trigger left behind is caught: both the worker and the Lambda function would process each upload.
    stale = copy.deepcopy(settings)
    stale["functions"]["events"] = build_settings(REAL)["functions"]["events"]
    assert any("process_image runs in celery mode" in p for p in lint.check_zappa_settings(stale))

    back = build_settings(dataclasses.replace(to_celery, modes={"process_image": "lambda"}))
    assert back["functions"]["events"] == build_settings(REAL)["functions"]["events"]


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"modes": {"process_image": "celery"}}, "needs --broker-url"),
        ({"modes": {"process_image": "celery"}, "broker_url": "redis://:pw@jobs:6379/0"}, "must not carry a password"),
        ({"modes": {"resize": "celery"}}, "expected JOB=lambda|celery"),
        ({"modes": {"process_image": "inline"}}, "expected JOB=lambda|celery"),
    ],
)
def test_bad_modes_are_refused(changes, complaint):
    with pytest.raises(ValueError, match=complaint):
        dataclasses.replace(REAL, **changes)


def test_a_custom_domain_with_its_certificate_in_us_east_1_is_deployable():
    certificate = "arn:aws:acm:us-east-1:111122223333:certificate/0a1b2c3d-4e5f"
    settings = build_settings(dataclasses.replace(REAL, certificate_arn=certificate, concurrency=50))
    web = settings["web"]
    assert (web["domain"], web["certificate_arn"], web["lambda_concurrency"]) == (REAL.domain, certificate, 50)
    assert check_deployable("web", web) == []
    assert build_settings(parse.config_from_settings(settings)) == settings, "re-running configure keeps them"
    foreign = dict(web, certificate_arn="arn:aws:acm:us-east-1:999999999999:certificate/0a1b2c3d-4e5f")
    assert any("999999999999" in p for p in check_deployable("web", foreign))


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ({"DATABASE_URL": "postgres://u@db.example/boardsite?password=hunter2"}, "carries a password"),
        ({"CACHE_URL": "redis://:hunter2@cache.example:6379/1"}, "carries a password"),
        ({"CELERY_BROKER_URL": "redis://user:pw@jobs.example:6379/0"}, "carries a password"),
        ({"API_KEY": "abc"}, "looks like a secret"),
        ({"DB_PASS": "abc"}, "looks like a secret"),
        ({"SENTRY_DSN": "https://k@o1.ingest.example/1"}, "looks like a secret"),
        ({"AWS_ACCESS_KEY_ID": "AKIA..."}, "looks like a secret"),
        ({"DJANGO_DEBUG": "true"}, "DJANGO_DEBUG must be false"),
        ({"DJANGO_ALLOWED_HOSTS": "*"}, "must not be '*'"),
    ],
)
def test_hand_edited_secrets_and_unsafe_values_are_refused(variables, complaint):
    web = build_settings(REAL)["web"]
    web["environment_variables"] = {**web["environment_variables"], **variables}
    assert any(complaint in p for p in check_deployable("web", web)), check_deployable("web", web)


def test_a_secret_set_on_the_function_is_refused_too():
    web = build_settings(REAL)["web"]
    web["aws_environment_variables"] = {**web["aws_environment_variables"], "DJANGO_SECRET_KEY": "x"}
    assert any("plain text in the settings file (aws_environment_variables)" in p for p in check_deployable("web", web))


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"account": "1234"}, "12-digit account"),
        ({"region": "moon"}, "12-digit account"),
        ({"certificate_arn": "arn:aws:acm:us-east-1:111122223333:certificate/x", "domain": None}, "give --domain"),
        ({"certificate_arn": "not-an-arn"}, "ACM certificate ARN"),
        ({"certificate_arn": "arn:aws:acm:eu-west-1:111122223333:certificate/x"}, "must be a certificate in us-east-1"),
        ({"concurrency": 0}, "at least 1"),
        # Found by the operator's review: refused here, not by AWS or the site once deployed.
        ({"database_url": "mysql://boardsite@db:3306/boardsite"}, "expected postgres://"),
        ({"domain": "not a domain"}, "expected a hostname"),
        (
            {"modes": {"apply_results": "celery"}, "broker_url": "redis://jobs:6379/0"},
            "apply_results must stay on lambda",
        ),
        # The web stage's queues may hold 7 invocations at once (results 5, feedback 2): a reservation of 7 leaves no
        # page served (wire reports it too, after the fact).
        ({"concurrency": 7}, "leaves no room for pages"),
        (
            {
                "modes": {"process_image": "celery"},
                "broker_url": "redis://jobs:6379/0",
                "subnets": (),
                "security_groups": (),
            },
            "broker's VPC",
        ),
    ],
)
def test_configure_refuses_bad_input(changes, complaint):
    with pytest.raises(ValueError, match=complaint):
        dataclasses.replace(REAL, **changes)


def test_the_prebuild_refuses_a_hand_edited_trigger_and_a_zip_by_exclusion():
    from deploy import prebuild

    settings = build_settings(REAL)
    settings["functions"]["events"][0]["event_source"].pop("prefix")  # would trigger on its own variants
    problems = prebuild.deployability_problems("functions", settings["functions"], settings)
    assert any("event_source.prefix" in p for p in problems), problems

    settings = build_settings(REAL)
    settings["web"].pop("callbacks")  # Zappa would ship the whole project folder beside the build's copy
    problems = prebuild.deployability_problems("web", settings["web"], settings)
    assert any("holds the build only" in p for p in problems), problems


def test_mail_from_and_the_site_url_reach_both_stages():
    default = build_settings(REAL)
    for stage in config.STAGE_NAMES:
        env = default[stage]["environment_variables"]
        assert env["BOARDSITE_MAIL_FROM"] == "boardsite@photos.example.com"
        assert env["BOARDSITE_SITE_URL"] == "https://photos.example.com"
    chosen = build_settings(dataclasses.replace(REAL, sender="news@mail.example.com", site_url="https://p.example/"))
    for stage in config.STAGE_NAMES:
        env = chosen[stage]["environment_variables"]
        assert (env["BOARDSITE_MAIL_FROM"], env["BOARDSITE_SITE_URL"]) == ("news@mail.example.com", "https://p.example")
        assert check_deployable(stage, chosen[stage]) == []
    assert lint.check_zappa_settings(chosen) == []
    assert build_settings(parse.config_from_settings(chosen)) == chosen, "template and policies read it back"
    # The SES identity (template, IAM) is the sender's domain.
    cfg = parse.config_from_settings(chosen)
    assert cfg.mail_identity == "mail.example.com"
    # No domain and no --site-url: nothing is set (DEPLOY.md: set it once API Gateway's URL is known).
    bare = build_settings(DeployConfig(account="111122223333", region="eu-west-1"))
    assert "BOARDSITE_SITE_URL" not in bare["web"]["environment_variables"]


def test_the_command_takes_mail_from_and_refuses_a_plain_http_site_url(capsys):
    configure.main(["--domain", "photos.example.com", "--mail-from", "news@mail.example.com", "-o", "-"])
    written = json.loads(capsys.readouterr().out)
    assert written["web"]["environment_variables"]["BOARDSITE_MAIL_FROM"] == "news@mail.example.com"
    for bad in (["--site-url", "http://photos.example.com"], ["--mail-from", "not an address"]):
        with pytest.raises(SystemExit):
            configure.main([*bad, "-o", "-"])
        assert "expected" in capsys.readouterr().err


def test_a_plain_http_site_url_is_refused_before_deploying():
    web = copy.deepcopy(build_settings(REAL)["web"])
    web["environment_variables"]["BOARDSITE_SITE_URL"] = "http://photos.example.com"
    assert any("BOARDSITE_SITE_URL must be https://" in p for p in check_deployable("web", web))


def test_the_mail_feedback_queue_is_a_web_event_and_in_the_template():
    from deploy import iam, template

    web = build_settings(REAL)["web"]
    feedback = [e for e in web["events"] if e["function"] == "boardsite.mail.feedback.handler"]
    assert [e["event_source"]["arn"] for e in feedback] == [
        "arn:aws:sqs:eu-west-1:111122223333:boardsite-mail-feedback"
    ]
    resources = template.build_template(REAL, ["https://photos.example.com"])["Resources"]
    assert resources["BoardsiteMailFeedback"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["BoardsiteMailFeedbackDlq", "Arn"]
    }
    assert resources["MailFeedbackSubscription"]["Properties"]["Endpoint"] == {
        "Fn::GetAtt": ["BoardsiteMailFeedback", "Arn"]
    }
    (statement,) = resources["MailFeedbackTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    policy = iam.stage_policy(REAL, "web")
    (grant,) = [s for s in policy["Statement"] if s["Sid"] == "ApplyMailFeedbackPoller"]
    assert grant["Resource"] == ["arn:aws:sqs:eu-west-1:111122223333:boardsite-mail-feedback"]


# The optional CloudFront mode for photos (DEPLOY.md "Serving photos through CloudFront").
CDN_CERTIFICATE = "arn:aws:acm:us-east-1:111122223333:certificate/0a1b2c3d-4e5f"
CDN = dataclasses.replace(REAL, cdn_domain="media.photos.example.com", cdn_certificate_arn=CDN_CERTIFICATE)


def test_the_cdn_reaches_the_web_stage_only_and_round_trips():
    settings = build_settings(CDN)
    web, functions = settings["web"], settings["functions"]
    env = web["environment_variables"]
    assert env["BOARDSITE_CDN_URL"] == "https://media.photos.example.com"
    assert env["BOARDSITE_CDN_COOKIE_DOMAIN"] == "photos.example.com"  # default: the site's domain
    # The certificate is for the template only: a key Zappa ignores, never in either function's environment.
    assert web[config.CDN_CERTIFICATE_KEY] == CDN_CERTIFICATE
    for stage in settings.values():
        assert not any(CDN_CERTIFICATE in str(v) for v in stage["environment_variables"].values())
    assert not any(name.startswith("BOARDSITE_CDN") for name in functions["environment_variables"])
    assert config.CDN_CERTIFICATE_KEY not in functions
    for name in config.STAGE_NAMES:
        assert check_deployable(name, settings[name]) == []
    assert lint.check_zappa_settings(settings) == []
    back = parse.config_from_settings(settings)
    assert (back.cdn_domain, back.cdn_certificate_arn, back.cdn_cookie_scope) == (
        "media.photos.example.com",
        CDN_CERTIFICATE,
        "photos.example.com",
    )
    assert build_settings(back) == settings, "template and policies read it back"

    # A parent cookie domain (one cookie for the site and a CDN beside it) round-trips too.
    parent = dataclasses.replace(CDN, cdn_domain="media.example.com", cdn_cookie_domain="example.com")
    written = build_settings(parent)
    assert written["web"]["environment_variables"]["BOARDSITE_CDN_COOKIE_DOMAIN"] == "example.com"
    assert build_settings(parse.config_from_settings(written)) == written

    # Without the CDN nothing of it is written (the committed file is checked byte for byte elsewhere).
    plain = build_settings(REAL)["web"]
    assert not any(name.startswith("BOARDSITE_CDN") for name in plain["environment_variables"])
    assert config.CDN_CERTIFICATE_KEY not in plain
    assert parse.config_from_settings(build_settings(REAL)).cdn_domain is None


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"domain": None}, "--cdn-domain needs --domain"),
        ({"cdn_certificate_arn": None}, "needs --cdn-certificate-arn"),
        (
            {"cdn_certificate_arn": "arn:aws:acm:eu-west-1:111122223333:certificate/0a1b2c3d-4e5f"},
            "must be a certificate in us-east-1",
        ),
        ({"cdn_certificate_arn": "not-an-arn"}, "expected an ACM certificate ARN"),
        (
            {"cdn_certificate_arn": "arn:aws:acm:us-east-1:999999999999:certificate/0a1b2c3d-4e5f"},
            "in the distribution's account 111122223333",
        ),
        ({"cdn_domain": "https://media.photos.example.com"}, "lower-case hostname"),
        ({"cdn_domain": "media.photos.example.com/variants"}, "lower-case hostname"),
        ({"cdn_domain": "media.photos.example.com:443"}, "lower-case hostname"),
        ({"cdn_domain": "Media.photos.example.com"}, "lower-case hostname"),
        ({"cdn_domain": "media_1.photos.example.com"}, "lower-case hostname"),
        ({"cdn_domain": "-media.photos.example.com"}, "lower-case hostname"),
        ({"cdn_domain": "media"}, "lower-case hostname"),
        ({"cdn_domain": "photos.example.com"}, "must differ from --domain"),
        ({"cdn_domain": "media.example.org"}, "must be under the cookie domain 'photos.example.com'"),
        ({"cdn_domain": "media.example.com"}, "must be under the cookie domain"),  # a sibling of the site
        ({"cdn_cookie_domain": "other.example.com"}, "must be the site's domain 'photos.example.com' or a parent"),
        # A suffix is not a parent: "hotos.example.com" does not cover photos.example.com.
        (
            {"cdn_cookie_domain": "hotos.example.com", "cdn_domain": "media.hotos.example.com"},
            "or a parent of it",
        ),
        ({"cdn_cookie_domain": "media.photos.example.com"}, "or a parent of it"),  # narrower than the site
        ({"cdn_cookie_domain": "com"}, "expected a lower-case domain"),
        ({"cdn_cookie_domain": ".example.com"}, "expected a lower-case domain"),
        ({"cdn_domain": None}, "--cdn-certificate-arn belongs to the CloudFront mode: give --cdn-domain"),
        (
            {"cdn_domain": None, "cdn_certificate_arn": None, "cdn_cookie_domain": "photos.example.com"},
            "--cdn-cookie-domain belongs to the CloudFront mode",
        ),
    ],
)
def test_configure_refuses_a_cdn_that_could_not_work(changes, complaint):
    with pytest.raises(ValueError, match=re.escape(complaint)):
        dataclasses.replace(CDN, **changes)


def test_the_placeholder_account_takes_any_cdn_certificate_account():
    # The account check waits for a real account (as the prebuild does for every other ARN).
    cfg = DeployConfig(
        domain="photos.example.com",
        cdn_domain="media.photos.example.com",
        cdn_certificate_arn=("arn:aws:acm:us-east-1:999999999999:certificate/0a1b"),
    )
    assert cfg.cdn_cookie_scope == "photos.example.com"


@pytest.mark.parametrize(
    ("breakage", "complaint"),
    [
        (
            lambda s: s["environment_variables"].update(BOARDSITE_CDN_URL="http://media.photos.example.com"),
            "BOARDSITE_CDN_URL must be https://",
        ),
        (
            lambda s: s.update(boardsite_cdn_certificate_arn="arn:aws:acm:eu-west-1:111122223333:certificate/0a1b"),
            "must be in us-east-1",
        ),
        (
            lambda s: s.update(boardsite_cdn_certificate_arn="arn:aws:acm:us-east-1:999999999999:certificate/0a1b"),
            "not in the stage's region eu-west-1 and account 111122223333",
        ),
    ],
)
def test_a_hand_edited_cdn_is_refused_before_deploying(breakage, complaint):
    web = copy.deepcopy(build_settings(CDN)["web"])
    breakage(web)
    assert any(complaint in p for p in check_deployable("web", web)), check_deployable("web", web)


def test_the_command_takes_the_cdn_flags(capsys):
    base = ["--account", "111122223333", "--region", "eu-west-1", "--domain", "photos.example.com", "-o", "-"]
    cdn = ["--cdn-domain", "Media.Photos.example.com", "--cdn-certificate-arn", CDN_CERTIFICATE]
    configure.main([*base, *cdn, "--cdn-cookie-domain", "Photos.Example.com"])
    written = json.loads(capsys.readouterr().out)
    assert written == build_settings(
        dataclasses.replace(
            CDN,
            subnets=(),
            security_groups=(),
            database_url=config.PLACEHOLDER_DATABASE_URL,
            cdn_cookie_domain="photos.example.com",
        )
    )
    assert written["web"]["environment_variables"]["BOARDSITE_CDN_URL"] == "https://media.photos.example.com"
    with pytest.raises(SystemExit):
        configure.main([*base, "--cdn-domain", "media.photos.example.com"])
    assert "needs --cdn-certificate-arn" in capsys.readouterr().err
    help_text = configure.parser().format_help()
    assert "us-east-1" in help_text
    assert "--cdn-cookie-domain" in help_text


def _names(cfg: DeployConfig) -> dict[str, set[str]]:
    """Every name a configuration gives AWS resources: in its settings, its template and its policies."""
    from deploy import template

    settings = build_settings(cfg)
    tpl = template.build_template(cfg, ["https://photos.example.com"])
    names: dict[str, set[str]] = {"functions": {cfg.function_name(s) for s in config.STAGE_NAMES}}
    names["settings"] = {settings[s][key] for s in config.STAGE_NAMES for key in ("s3_bucket", "role_arn")}
    names["settings"] |= {
        e["event_source"]["arn"] for s in settings.values() for e in s["events"] if "event_source" in e
    }
    names["settings"] |= {
        settings["functions"]["dead_letter_arn"],
        settings["web"]["environment_variables"]["BOARDSITE_SSM_PREFIX"],
    }
    names["settings"] |= {
        v for s in settings.values() for k, v in s["environment_variables"].items() if k in NAMED_VARIABLES
    }
    for resource in tpl["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("QueueName", "TopicName", "RoleName", "BucketName"):
            if key in props:
                names.setdefault(key, set()).add(props[key])
        for policy in props.get("Policies", []):
            names.setdefault("PolicyName", set()).add(policy["PolicyName"])
    return names


# Variables naming a resource (the rest are limits and formats, the same for every installation).
NAMED_VARIABLES = {
    "BOARDSITE_BUCKET",
    "BOARDSITE_RESULTS_QUEUE",
    "BOARDSITE_FUNCTIONS_FUNCTION",
    "BOARDSITE_MAIL_TOPIC_ARN",
}


def test_two_installations_share_an_account_under_two_name_prefixes():
    staging = dataclasses.replace(
        REAL, name_prefix="boardsite-staging", domain="staging.photos.example.com", ssm_prefix=""
    )  # ssm_prefix "": the default for the prefix (REAL holds its own, computed)
    production = _names(REAL)
    ours = _names(staging)
    assert set(ours) == set(production) >= {"QueueName", "TopicName", "RoleName", "BucketName", "PolicyName"}
    for kind in ours:
        assert not ours[kind] & production[kind], kind
        for name in ours[kind]:
            assert "boardsite-staging" in name, (kind, name)
    assert staging.ssm_prefix == "/boardsite-staging/"
    assert staging.function_name("web") == "boardsite-staging-web"
    assert staging.function_name("functions") == "boardsite-staging-functions-functions"
    # The settings say it all: read back, checked against the registry, deployable.
    settings = build_settings(staging)
    assert build_settings(parse.config_from_settings(settings)) == settings
    assert lint.check_settings(settings) == []
    assert all(check_deployable(name, settings[name]) == [] for name in config.STAGE_NAMES)
    # ... and a hand-edited queue of another installation is refused.
    broken = copy.deepcopy(settings)
    broken["functions"]["dead_letter_arn"] = REAL.sqs_arn("boardsite-process-image-dlq")
    assert any("dead_letter_arn must be" in p for p in lint.check_settings(broken))


def test_the_default_prefix_keeps_todays_names_and_a_bad_prefix_is_refused(capsys):
    assert REAL.function_name("web") == "boardsite-web"
    assert REAL.role_name("web") == "boardsite-web-lambda"
    assert REAL.queue_names == {setting: queue.name for setting, queue in registry.queues().items()}
    assert {
        "BOARDSITE_UPLOADS_QUEUE": "boardsite-uploads",
        "BOARDSITE_RESULTS_QUEUE": "boardsite-image-results",
        "BOARDSITE_MAIL_QUEUE": "boardsite-mail",
        "BOARDSITE_MAIL_FEEDBACK_QUEUE": "boardsite-mail-feedback",
        "BOARDSITE_PROCESS_IMAGE_DLQ": "boardsite-process-image-dlq",
    }.items() <= REAL.queue_names.items()
    assert REAL.ssm_prefix == "/boardsite/prod/"
    for bad in ("Boardsite", "staging_", "a--b", "-x", "x" * 25):
        with pytest.raises(SystemExit):
            configure.main(["--name-prefix", bad, "-o", "-"])
        assert "--name-prefix" in capsys.readouterr().err
    assert configure.main(["--name-prefix", "bs-staging", "--ssm-prefix", "/bs/staging/", "-o", "-"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["web"]["project_name"] == "bs-staging"
    assert written["web"]["environment_variables"]["BOARDSITE_SSM_PREFIX"] == "/bs/staging/"


ZAPPA_CLI = Path(__import__("zappa.cli").cli.__file__)


def test_dns_outside_route_53_keeps_zappa_certify_away_from_route_53(capsys):
    # `zappa certify` reads this key (default true: it looks up the domain's hosted zone and fails without one).
    assert 'self.stage_config.get("route53_enabled", True)' in ZAPPA_CLI.read_text()
    certificate = "arn:aws:acm:us-east-1:111122223333:certificate/0a1b2c3d-0000"
    external = dataclasses.replace(REAL, certificate_arn=certificate, dns="external")
    web = build_settings(external)["web"]
    assert web["route53_enabled"] is False
    assert (web["domain"], web["certificate_arn"]) == ("photos.example.com", certificate)
    assert "route53_enabled" not in build_settings(dataclasses.replace(external, dns="route53"))["web"]
    assert parse.config_from_settings(build_settings(external)).dns == "external"  # read back by the tooling
    assert all(check_deployable(name, build_settings(external)[name]) == [] for name in config.STAGE_NAMES)
    flags = ["--account", "111122223333", "--region", "eu-west-1", "--domain", "photos.example.com", "-o", "-"]
    assert configure.main([*flags, "--certificate-arn", certificate, "--dns", "external"]) == 0
    assert json.loads(capsys.readouterr().out)["web"]["route53_enabled"] is False
    with pytest.raises(SystemExit):
        configure.main(["--dns", "external", "-o", "-"])
    assert "--dns is about the custom domain" in capsys.readouterr().err


def test_tickets_from_the_function_get_its_function_url_and_only_then():
    """configure --mode issue_upload_ticket=lambda: the functions stage gets a function URL (CORS for the site's own
    origin, POST only) and the SSM prefix its grant key is under; lint wants it there; it reads back; and the job
    refuses celery."""
    cfg = dataclasses.replace(REAL, modes={"issue_upload_ticket": "lambda"})  # its site: https://photos.example.com
    settings = build_settings(cfg)
    functions = settings["functions"]
    assert functions["function_url_enabled"] is True
    cors = functions["function_url_config"]["cors"]
    assert (cors["allowedOrigins"], cors["allowedMethods"], cors["allowCredentials"]) == (
        ["https://photos.example.com"],
        ["POST"],
        False,
    )
    assert functions["environment_variables"]["BOARDSITE_SSM_PREFIX"] == cfg.ssm_prefix
    assert "issue_upload_ticket=lambda" in functions["environment_variables"]["OFFLOAD_MODES"]
    assert lint.check_zappa_settings(settings) == []
    assert build_settings(parse.config_from_settings(settings)) == settings
    missing = copy.deepcopy(settings)
    del missing["functions"]["function_url_enabled"]
    assert any("needs function_url_enabled" in p for p in lint.check_zappa_settings(missing))
    with pytest.raises(ValueError, match=r"JOB=inline\|lambda"):
        dataclasses.replace(REAL, modes={"issue_upload_ticket": "celery"})
