"""Run the real Zappa CLI, or ``python -m deploy``, against moto's server: the played deploy's only stand-in.

    AWS_ENDPOINT_URL=http://127.0.0.1:PORT python -m tests.zappa_on_moto zappa update web -s zappa_settings.json
    AWS_ENDPOINT_URL=http://127.0.0.1:PORT python -m tests.zappa_on_moto deploy rollback web -s zappa_settings.json

botocore honours ``AWS_ENDPOINT_URL`` for every service, so Zappa's own code runs unmodified and its calls reach
moto over HTTP. What this module changes is confined to this process and covers gaps of moto 5.2.5, not of Zappa
nor of our code (each checked here by running the command without the patch):

1. ``ListFunctionUrlConfigs``: moto has no route for it and answers 404; ``zappa update`` calls it on every run
   (``delete_lambda_function_url``). The 404 is answered as "no function URLs", which is what real AWS says for ours.
2. ``GetFunction(FunctionName="function:NAME:N")``: ``zappa rollback`` names the version inside the function name;
   moto does not parse it (real AWS does). It is sent as ``FunctionName=NAME, Qualifier=N``.
3. A version's ``Code.Location``: moto points every version at the latest upload, under an address nobody can
   fetch. Every zip sent to CreateFunction/UpdateFunctionCode is kept in a bucket of moto's S3 under its sha256, and
   ``Code.Location`` answers with that object's address for the version's own ``CodeSha256`` (real AWS answers a
   presigned URL of the version's own code). ``zappa rollback`` and ``python -m deploy rollback`` download it.
4. ``AddPermission``: moto answers 200 where AWS answers 201 Created; Zappa then logs "Problem creating permission"
   although the statement was added. 200 is reported as 201.

Not patched, but set in the played settings for moto: ``num_retained_versions`` is kept high, because moto numbers
a new version ``len(versions) + 1`` and so reuses numbers after Zappa prunes old ones (real AWS never does).

Every call that changes something is appended to ``$ZAPPA_ON_MOTO_LOG`` (JSON lines, code bytes left out): moto
does not store SnapStart, ``DeadLetterConfig`` nor API Gateway's integration credentials, so the played deploy
checks what Zappa asked AWS for instead.

``deploy`` and ``update`` without ``--zip`` are packaged first by ``tests.lambda_env.package`` (the real ``zappa
package`` with the prebuild script, cached by its inputs) and then given ``--zip``: the suite runs the played
sequence twice in CI, and packaging is what takes the time. Only the upload of the zip to Zappa's bucket is skipped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CODE_BUCKET = "zappa-on-moto-code"
READ_PREFIXES = ("Get", "List", "Describe", "Head")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _endpoint() -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if urlsplit(endpoint).hostname not in LOCAL_HOSTS:
        raise SystemExit(f"tests.zappa_on_moto plays against a local moto server only; AWS_ENDPOINT_URL={endpoint!r}")
    return endpoint


def _code_store() -> Any:
    import boto3
    from botocore.config import Config

    s3 = boto3.client("s3", endpoint_url=_endpoint(), region_name="us-east-1", config=Config(signature_version="s3v4"))
    try:
        s3.create_bucket(Bucket=CODE_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    return s3


def _hex_of(code_sha256: str) -> str:
    return base64.b64decode(code_sha256).hex()


def _keep_code(params: dict[str, Any]) -> None:
    """Gap 3: keep the zip of every upload, by its sha256 (what Lambda reports base64-encoded as CodeSha256)."""
    s3 = _code_store()
    code = params.get("Code", params)  # CreateFunction's Code, or UpdateFunctionCode's own parameters
    if "ZipFile" in code:
        data = code["ZipFile"]
    elif "S3Bucket" in code and "S3Key" in code:
        data = s3.get_object(Bucket=code["S3Bucket"], Key=code["S3Key"])["Body"].read()
    else:
        return
    s3.put_object(Bucket=CODE_BUCKET, Key=hashlib.sha256(data).hexdigest(), Body=data)


def _split_qualifier(params: dict[str, Any]) -> dict[str, Any]:
    """Gap 2: ``function:NAME:N`` (or ``NAME:N``) as a name plus a qualifier."""
    name = str(params.get("FunctionName", ""))
    if name.startswith("arn:") or "Qualifier" in params:
        return params
    parts = name.removeprefix("function:").split(":")
    if len(parts) == 2:
        return {**params, "FunctionName": parts[0], "Qualifier": parts[1]}
    return params


def _serve_code(response: dict[str, Any]) -> dict[str, Any]:
    """Gap 3: point ``Code.Location`` at the kept zip of the version's own code (presigned, as AWS's is)."""
    sha = response.get("Configuration", {}).get("CodeSha256")
    if sha and "Code" in response:
        params = {"Bucket": CODE_BUCKET, "Key": _hex_of(sha)}
        response["Code"]["Location"] = _code_store().generate_presigned_url("get_object", Params=params)
    return response


def _loggable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {k: _loggable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_loggable(v) for v in value]
    return value


def _record(service: str, operation: str, params: dict[str, Any]) -> None:
    path = os.environ.get("ZAPPA_ON_MOTO_LOG")
    if not path or operation.startswith(READ_PREFIXES):
        return
    line = {"service": service, "operation": operation, "params": _loggable(params), "argv": sys.argv[1:3]}
    with open(path, "a") as log:
        log.write(json.dumps(line, default=str) + "\n")


def install() -> None:
    """Wrap botocore's one door for every API call (every client Zappa or our code makes goes through it)."""
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    original = BaseClient._make_api_call

    def make_api_call(self: BaseClient, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        service = self.meta.service_model.service_name
        if service == "lambda" and operation == "GetFunction":
            params = _split_qualifier(params)
        if service == "lambda" and operation in ("CreateFunction", "UpdateFunctionCode"):
            _keep_code(params)
        if params.get("Bucket") != CODE_BUCKET:  # the harness's own store is not Zappa's doing
            _record(service, operation, params)
        try:
            response = original(self, operation, params)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if (service, operation, status) == ("lambda", "ListFunctionUrlConfigs", 404):  # gap 1
                return {"FunctionUrlConfigs": [], "ResponseMetadata": {"HTTPStatusCode": 200}}
            raise
        if service == "lambda" and operation == "GetFunction":
            response = _serve_code(response)
        if service == "lambda" and operation == "AddPermission":  # gap 4
            meta = response.get("ResponseMetadata", {})
            if meta.get("HTTPStatusCode") == 200:
                meta["HTTPStatusCode"] = 201
        return response

    BaseClient._make_api_call = make_api_call


def _settings_file(args: list[str]) -> Path:
    for i, arg in enumerate(args):
        if arg in ("-s", "--settings_file") and i + 1 < len(args):
            return Path(args[i + 1])
    return Path("zappa_settings.json")


def with_package(args: list[str]) -> list[str]:
    """``deploy|update STAGE`` without ``--zip``: the stage packaged by the real ``zappa package`` (cached), as
    ``--zip``. Everything else as given."""
    if len(args) < 2 or args[0] not in ("deploy", "update") or "--zip" in args or "-z" in args:
        return args
    from tests import lambda_env

    artifact = lambda_env.package(args[1], _settings_file(args))
    return [*args, "--zip", str(artifact.zip_path)]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("zappa", "deploy"):
        print(__doc__, file=sys.stderr)
        return 2
    _endpoint()
    install()
    if argv[0] == "deploy":
        from deploy.__main__ import main as deploy_main

        return deploy_main(argv[1:])
    from zappa.cli import handle

    sys.argv = ["zappa", *with_package(argv[1:])]
    handle()  # exits
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
