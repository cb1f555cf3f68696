"""The ``boardsite`` command: login, boards, upload, download (``--json`` on each, for scripts).

stdout carries the result (a table, a summary, or with ``--json`` one JSON document); stderr the progress (bars on
a terminal, JSON lines elsewhere) and errors. Exit codes: errors.py (and the README's "Terminal client").
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from boardsite_client import __version__, config, errors, tokens
from boardsite_client.api import Api, Retry, ScopeError
from boardsite_client.download import Downloader
from boardsite_client.files import discover
from boardsite_client.manifest import Manifest
from boardsite_client.pool import interruptible_sleep
from boardsite_client.progress import Tally, renderer
from boardsite_client.upload import Uploader, manifest_path

EXIT_CODES = f"""exit codes: {errors.OK} all done (every file ready / on disk), {errors.SOME_FAILED} some failed (the
summary says which and why), {errors.USAGE} usage, {errors.AUTH} authentication (no, mistyped, unknown, expired or
revoked token, or one without the scope or role needed), {errors.THROTTLED} throttled out (the site kept answering
429 longer than --max-throttle-wait), {errors.INTERRUPTED} interrupted (Ctrl-C; run the same command again to
resume)"""


def _common(*, defaults: bool) -> argparse.ArgumentParser:
    """``--url`` and ``--json``, before or after the command. After it, they have no default of their own
    (``SUPPRESS``): a subcommand's default must not overwrite what was given before it."""
    common = argparse.ArgumentParser(add_help=False)
    more: dict = {} if defaults else {"default": argparse.SUPPRESS}
    common.add_argument("--url", help="the site's address (else BOARDSITE_URL, else the one you logged in to)", **more)
    common.add_argument("--json", action="store_true", help="print the result as JSON, for scripts", **more)
    return common


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="boardsite", description="boardsite from a terminal.", epilog=EXIT_CODES, parents=[_common(defaults=True)]
    )
    common = _common(defaults=False)
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    login = commands.add_parser("login", parents=[common], help="check a personal access token and keep it")
    login.add_argument("--token", help="the token (else BOARDSITE_TOKEN, else asked for without echo)")

    commands.add_parser("boards", parents=[common], help="the boards you own or are a member of")

    upload = commands.add_parser("upload", parents=[common], help="upload photos and folders of photos to a board")
    upload.add_argument("board", metavar="BOARD", help="board id, or its exact title")
    upload.add_argument("paths", metavar="PATH", nargs="+", help="image files and folders (searched recursively)")
    upload.add_argument("--parallel", type=_count, default=4, help="files in flight at once (default 4)")
    upload.add_argument("--wait", type=float, default=600, help="seconds to wait for processing (default 600)")
    upload.add_argument(
        "--max-throttle-wait", type=float, default=600, help="seconds one request may wait out 429s (default 600)"
    )
    upload.add_argument("--manifest", type=Path, help="the resume manifest (default: in the state folder)")

    download = commands.add_parser("download", parents=[common], help="download a board's photos into a folder")
    download.add_argument("board", metavar="BOARD", help="board id, or its exact title")
    download.add_argument("folder", metavar="DIR", type=Path, help="where to put them (made if missing)")
    download.add_argument("--originals", action="store_true", help="the original files (board owners only)")
    download.add_argument("--parallel", type=_count, default=4, help="files at once (default 4)")
    download.add_argument(
        "--max-throttle-wait", type=float, default=600, help="seconds one request may wait out 429s (default 600)"
    )
    return top


def _count(value: str) -> int:
    n = int(value)
    if not 1 <= n <= 32:
        raise argparse.ArgumentTypeError("between 1 and 32")
    return n


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run(argv))


def run(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] = os.environ,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """The command line, as an exit code (``main`` exits with it)."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    args = parser().parse_args(argv)  # bad arguments: argparse exits with 2 (errors.USAGE)
    stop = threading.Event()
    try:
        command = {"login": login, "boards": boards, "upload": upload, "download": download}[args.command]
        return command(args, env, stdout, stderr, stop)
    except errors.ClientError as exc:
        stop.set()
        _say_error(args, stdout, stderr, exc.message, exc.code)
        return exc.code
    except KeyboardInterrupt:
        stop.set()
        _say_error(args, stdout, stderr, "interrupted: run the same command again to resume", errors.INTERRUPTED)
        return errors.INTERRUPTED


def _say_error(args: argparse.Namespace, stdout: IO[str], stderr: IO[str], message: str, code: int) -> None:
    if args.json:
        _json(stdout, {"error": message, "exit_code": code})
    print(f"boardsite: {message}", file=stderr)


def _json(out: IO[str], data: object) -> None:
    out.write(json.dumps(data, indent=None) + "\n")
    out.flush()


def _api(args: argparse.Namespace, env: Mapping[str, str], stop: threading.Event, token: str | None = None) -> Api:
    """The site and a token whose shape was checked offline (a typo is refused before any request)."""
    site = config.resolve(args.url, env)
    token = token or config.require_token(site)
    why = tokens.problem(token)
    if why:
        source = "the token given" if token is not site.token else f"the token from {site.token_from}"
        raise errors.AuthError(f"{source} is not a boardsite token: {why}")
    retry = Retry(max_throttle_wait=getattr(args, "max_throttle_wait", 600.0), sleep=interruptible_sleep(stop))
    return Api(site.url, token.strip(), retry)


def login(args: argparse.Namespace, env: Mapping[str, str], stdout: IO[str], stderr: IO[str], _: Any) -> int:
    token = args.token or env.get("BOARDSITE_TOKEN")
    if not token:
        if sys.stdin.isatty():
            token = getpass.getpass("Personal access token (make one on your profile page): ")
        else:
            token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise errors.UsageError("no token given: pass --token, set BOARDSITE_TOKEN, or type it when asked")
    api = _api(args, env, threading.Event(), token)
    me = api.me()
    path = config.save_login(api.url, api.token, me.get("username", ""), env)
    info = me.get("token") or {}
    if args.json:
        _json(stdout, {"url": api.url, "username": me.get("username"), "token": info, "config": str(path)})
    else:
        scopes = ", ".join(info.get("scopes") or []) or "?"
        print(
            f"Logged in to {api.url} as {me.get('username')} (token {info.get('name', '?')!r}: {scopes}; "
            f"expires {info.get('expires_at', '?')}). Saved in {path}.",
            file=stdout,
        )
    return errors.OK


def boards(args: argparse.Namespace, env: Mapping[str, str], stdout: IO[str], stderr: IO[str], stop: Any) -> int:
    found = _api(args, env, stop).boards()
    if args.json:
        _json(stdout, {"boards": found})
        return errors.OK
    if not found:
        print("You have no boards yet.", file=stdout)
    for b in found:
        print(
            f"{b['id']:>6}  {b['role']:<11} {b['visibility']:<7} {b['photo_count']:>6} photos  {b['title']}",
            file=stdout,
        )
    return errors.OK


def _board(api: Api, ref: str) -> dict[str, Any]:
    """The board by id or title; a token without the read scope can still upload to a board given by id."""
    try:
        return api.board(ref)
    except ScopeError:
        if ref.isdigit():
            return {"id": int(ref), "title": f"board {ref}", "role": None}
        raise


def upload(args: argparse.Namespace, env: Mapping[str, str], stdout: IO[str], stderr: IO[str], stop: Any) -> int:
    files, skipped = discover(args.paths)  # before any request: a wrong path is a usage error
    api = _api(args, env, stop)
    board = _board(api, args.board)
    if board.get("role") == "viewer":
        raise errors.AuthError(f"you are a viewer of {board['title']!r}: uploading needs contributor or owner")
    total = sum(f.size for f in files)
    if not args.json:
        print(
            f"{board['title']} (board {board['id']}): {len(files)} files, {_human(total)}"
            + (f"; {len(skipped)} skipped (not images)" if skipped else ""),
            file=stdout,
        )
        stdout.flush()
    path = args.manifest or manifest_path(config.state_dir(env), config.slug(api.url), board["id"])
    manifest = Manifest(path)
    tally = Tally()
    tally.start_phase("found", len(files), total)
    view = renderer(args.parallel, stderr)
    uploader = Uploader(
        api,
        board["id"],
        manifest,
        tally,
        stop=stop,
        parallel=args.parallel,
        wait=args.wait,
        tick=lambda: view.tick(tally),
    )
    try:
        outcomes = uploader.run(files)
    except BaseException:
        stop.set()
        view.close(tally)
        raise
    finally:
        manifest.flush(force=True)
    view.close(tally)
    by_state: dict[str, int] = {}
    for outcome in outcomes:
        by_state[outcome.state] = by_state.get(outcome.state, 0) + 1
    code = errors.OK if all(o.state in ("ready", "present", "duplicate") for o in outcomes) else errors.SOME_FAILED
    if args.json:
        _json(
            stdout,
            {
                "board": board["id"],
                "files": len(files),
                "bytes": total,
                "counts": by_state,
                "results": [o.as_json() for o in outcomes],
                "skipped": [{"file": str(s.path), "reason": s.reason} for s in skipped],
                "manifest": str(path),
                "exit_code": code,
            },
        )
        return code
    words = {
        "present": "already on the board",
        "duplicate": "duplicates",
        "processing": "still processing",
        "error": "not sent",
    }
    print(
        "Done: " + (", ".join(f"{n} {words.get(s, s)}" for s, n in sorted(by_state.items())) or "nothing to do"),
        file=stdout,
    )
    for o in outcomes:
        if o.state in ("failed", "error", "processing"):
            print(f"  {words.get(o.state, o.state)}: {o.file.path}: {o.error}", file=stdout)
    for s in skipped:
        print(f"  skipped: {s.path}: {s.reason}", file=stdout)
    return code


def download(args: argparse.Namespace, env: Mapping[str, str], stdout: IO[str], stderr: IO[str], stop: Any) -> int:
    api = _api(args, env, stop)
    board = api.board(args.board)
    if args.originals and board.get("role") == "viewer":
        # The site gives originals to the board's owners and each photo's uploader: a viewer is neither.
        raise errors.AuthError("--originals is for the board's owners and the photos' uploaders; you are a viewer")
    tally = Tally()
    view = renderer(args.parallel, stderr)
    downloader = Downloader(
        api, board["id"], args.folder, tally, stop=stop, originals=args.originals, parallel=args.parallel
    )
    try:
        results = downloader.run(tick=lambda: view.tick(tally))
    except BaseException:
        stop.set()
        view.close(tally)
        raise
    view.close(tally)
    by_state: dict[str, int] = {}
    for r in results:
        by_state[r.state] = by_state.get(r.state, 0) + 1
    code = errors.SOME_FAILED if by_state.get("failed") else errors.OK
    if args.json:
        _json(
            stdout,
            {
                "board": board["id"],
                "folder": str(args.folder),
                "counts": by_state,
                "results": [r.as_json() for r in results],
                "exit_code": code,
            },
        )
        return code
    words = {"present": "already there", "skipped": "not ready on the site"}
    print(
        f"{board['title']} -> {args.folder}: "
        + (", ".join(f"{n} {words.get(s, s)}" for s, n in sorted(by_state.items())) or "no photos"),
        file=stdout,
    )
    for r in results:
        if r.state == "failed":
            print(f"  failed: {r.image}: {r.error}", file=stdout)
    return code


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
