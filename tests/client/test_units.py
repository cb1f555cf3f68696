"""The client's parts that need no server: the token's checksum, the config's file modes, the manifest's resume
decisions, finding the files, JSON progress timing, exit codes and the retry policy."""

from __future__ import annotations

import email.utils
import io
import itertools
import json
import os
import random
import stat
import string
import zlib
from pathlib import Path

import pytest
import requests
from boardsite_client import config, errors, tokens
from boardsite_client.api import Retry, TransientError, retry_after_seconds
from boardsite_client.files import LocalFile, discover
from boardsite_client.manifest import Manifest, next_step
from boardsite_client.progress import JsonProgress, Tally

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def test_token_checksum_vector_from_zlib_crc32():
    body = "0123456789ABCDEFGHIJabcdefghij"
    crc = zlib.crc32(body.encode())
    digits = []
    for _ in range(6):
        crc, d = divmod(crc, 62)
        digits.append(BASE62[d])
    expected = "".join(reversed(digits))
    assert tokens.checksum(body) == expected
    assert tokens.problem(f"bst_{body}{expected}") is None


def test_token_checksum_is_big_endian_and_zero_padded():
    assert tokens.base62(0, 6) == "000000"
    assert tokens.base62(61, 6) == "00000z"
    assert tokens.base62(62, 6) == "000010"
    assert tokens.base62(2**32 - 1, 6) == "4gfFC3"  # the largest CRC-32 still fits in 6 digits


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "empty"),
        ("ghp_0123456789ABCDEFGHIJabcdefghij000000", "starts with 'bst_'"),
        ("bst_0123456789ABCDEFGHIJabcdefghij", "cut short"),
        ("bst_0123456789ABCDEFGHIJabcdefgh-j" + "000000", "only letters and digits"),
    ],
)
def test_malformed_tokens_are_told_apart(token, why):
    assert why in tokens.problem(token)


def test_a_single_mistyped_character_fails_the_checksum():
    body = "".join(random.Random(1).choice(BASE62) for _ in range(30))
    good = "bst_" + body + tokens.checksum(body)
    assert tokens.problem(good) is None
    for i in range(4, len(good)):
        typo = good[:i] + ("a" if good[i] != "a" else "b") + good[i + 1 :]
        assert "checksum" in tokens.problem(typo), typo


def test_config_is_0600_in_a_0700_folder(home, tmp_path):
    folder = tmp_path / "config" / "boardsite"
    folder.mkdir(parents=True, mode=0o755)  # an existing, too open folder is tightened
    path = config.save_login("http://127.0.0.1:8000", "bst_x", "owner", os.environ)
    assert path == folder / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["sites"]["http://127.0.0.1:8000"]["token"] == "bst_x"
    assert not [p for p in folder.iterdir() if p.name != "config.json"], "no temporary file left"


def test_config_falls_back_to_home_dot_config(tmp_path):
    env = {"HOME": str(tmp_path)}
    assert config.config_path(env) == tmp_path / ".config" / "boardsite" / "config.json"
    assert config.state_dir(env) == tmp_path / ".local" / "state" / "boardsite"


def test_a_stored_token_is_only_sent_to_its_own_site(home):
    config.save_login("https://boards.example.com", "bst_stored", "owner", os.environ)
    assert config.resolve(None, os.environ) == config.Site(
        "https://boards.example.com", "bst_stored", config.config_path(os.environ).as_posix()
    )
    other = config.resolve("https://evil.example.net/", os.environ)
    assert other.url == "https://evil.example.net"
    assert other.token is None
    env = {**os.environ, "BOARDSITE_URL": "http://127.0.0.1:9", "BOARDSITE_TOKEN": "bst_env"}
    assert config.resolve(None, env) == config.Site("http://127.0.0.1:9", "bst_env", "BOARDSITE_TOKEN")
    assert config.resolve("https://boards.example.com", env).url == "https://boards.example.com", "--url first"
    with pytest.raises(errors.UsageError):
        config.resolve("ftp://x", os.environ)


def test_manifest_next_steps():
    assert next_step(None) == "send"
    assert next_step({"state": "hashed", "sha256": "a"}) == "send"
    assert next_step({"state": "error", "error": "timeout"}) == "send", "the client gave up: try again"
    assert next_step({"state": "ticketed", "image": "i"}) == "confirm", "bytes may be in storage: ask first"
    assert next_step({"state": "sent", "image": "i"}) == "confirm"
    assert next_step({"state": "completed", "image": "i"}) == "follow"
    assert next_step({"state": "ready", "image": "i"}) == "done"
    assert next_step({"state": "present", "image": "i"}) == "done"
    assert next_step({"state": "failed", "error": "not a JPEG"}) == "failed", "the site said no: do not resend"


def test_manifest_survives_a_restart_and_forgets_changed_files(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"\xff\xd8\xff one")
    st = photo.stat()
    file = LocalFile(photo.absolute(), st.st_size, st.st_mtime_ns)
    manifest = Manifest(tmp_path / "state" / "m.json", every=3600)
    manifest.update(file, state="hashed", sha256="ab")
    manifest.update(file, state="ticketed", image="img-1")
    manifest.flush(force=True)
    manifest.update(file, state="sent")
    manifest.flush()  # within `every` of the last write: not written yet
    assert Manifest(manifest.path).get(file)["state"] == "ticketed"
    manifest.flush(force=True)
    again = Manifest(manifest.path).get(file)
    assert again == {"path": str(file.path), "sha256": "ab", "image": "img-1", "state": "sent"}
    assert stat.S_IMODE(manifest.path.stat().st_mode) == 0o600
    edited = LocalFile(file.path, file.size + 1, file.mtime_ns + 1)
    assert Manifest(manifest.path).get(edited) is None, "an edited file is a new file"
    manifest.path.write_text("{not json")
    assert Manifest(manifest.path).get(file) is None, "a broken manifest is started afresh"


def test_discover_finds_images_recursively_and_lists_the_rest(tmp_path):
    (tmp_path / "trip" / "day 2").mkdir(parents=True)
    for name in ("trip/a.jpg", "trip/B.JPEG", "trip/day 2/c.png", "trip/day 2/d.heic", "trip/e.webp", "trip/f.gif"):
        (tmp_path / name).write_bytes(b"x" * 10)
    (tmp_path / "trip" / "notes.txt").write_text("hello")
    (tmp_path / "trip" / "empty.jpg").write_bytes(b"")
    (tmp_path / "single.heif").write_bytes(b"y" * 3)
    files, skipped = discover([tmp_path / "trip", tmp_path / "single.heif", tmp_path / "trip" / "a.jpg"])
    names = [f.path.relative_to(tmp_path).as_posix() for f in files]
    assert names == [
        "trip/B.JPEG",
        "trip/a.jpg",
        "trip/e.webp",
        "trip/f.gif",
        "trip/day 2/c.png",
        "trip/day 2/d.heic",
        "single.heif",
    ]
    assert sum(f.size for f in files) == 63
    assert {f.content_type for f in files} == {
        "image/jpeg",
        "image/png",
        "image/heic",
        "image/webp",
        "image/gif",
        "image/heif",
    }
    reasons = {s.path.name: s.reason for s in skipped}
    assert reasons == {"notes.txt": "not an image type the site takes (.txt)", "empty.jpg": "empty"}
    with pytest.raises(errors.UsageError, match="nope: no such file or folder"):
        discover([tmp_path / "trip", "nope"])


def test_json_progress_every_interval_and_each_finished_file_at_once():
    now = [0.0]
    out = io.StringIO()
    view = JsonProgress(out, interval=1.0, clock=lambda: now[0])
    tally = Tally()
    tally.start_phase("uploading", 3, 3000)
    times = []
    for step in range(51):  # ten seconds of the main loop's ticks, every 0.2 s
        now[0] = step * 0.2
        if step == 12:
            tally.begin(0, "a.jpg", 1000)
            tally.advance(0, 400)
        if step == 13:
            tally.finish(0)
            tally.event({"file": "a.jpg", "outcome": "ready"})
        before = out.getvalue().count("\n")
        view.tick(tally)
        lines = [json.loads(x) for x in out.getvalue().splitlines()[before:]]
        times += [(now[0], line) for line in lines]
    progress = [t for t, line in times if line["event"] == "progress"]
    assert progress[0] == 0.0
    assert max(b - a for a, b in itertools.pairwise(progress)) <= 2.0
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(progress)), "not more than asked"
    files = [(t, line) for t, line in times if line["event"] == "file"]
    assert [(round(t, 1), line["file"]) for t, line in files] == [(2.6, "a.jpg")], "a finished file is said at once"
    last = [line for _, line in times if line["event"] == "progress"][-1]
    assert (last["files_done"], last["files"], last["bytes_done"], last["bytes"]) == (1, 3, 1000, 3000)


def test_exit_codes_are_fixed():
    assert (errors.OK, errors.SOME_FAILED, errors.USAGE, errors.AUTH, errors.THROTTLED, errors.INTERRUPTED) == (
        0,
        1,
        2,
        3,
        4,
        130,
    )
    assert errors.exit_code(errors.UsageError("x")) == 2
    assert errors.exit_code(errors.AuthError("x")) == 3
    assert errors.exit_code(errors.ThrottledOut("x")) == 4
    assert errors.exit_code(KeyboardInterrupt()) == 130
    assert errors.exit_code(TransientError("x")) == 1


class Answers:
    """``send`` for Retry.call: answers (or raises) the given things in turn."""

    def __init__(self, *items):
        self.items = list(items)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        status, headers = item if isinstance(item, tuple) else (item, {})
        r = requests.Response()
        r.status_code, r.headers, r._content = status, requests.structures.CaseInsensitiveDict(headers), b"{}"
        return r


def test_backoff_is_capped_exponential_with_full_jitter():
    retry = Retry(base=0.5, cap=8, rng=random.Random(3))
    for attempt in range(10):
        waits = [retry.backoff(attempt) for _ in range(200)]
        bound = min(8, 0.5 * 2**attempt)
        assert all(0 <= w <= bound for w in waits)
        assert max(waits) > bound * 0.8, "jitter spreads over the whole range"


def test_429_is_waited_out_per_retry_after_without_using_up_retries():
    slept = []
    retry = Retry(attempts=2, sleep=slept.append, rng=random.Random(0))
    send = Answers((429, {"Retry-After": "7"}), (429, {"Retry-After": "3"}), (429, {}), 201)
    assert retry.call(send).status_code == 201
    assert 7 <= slept[0] <= 7.8, slept
    assert 3 <= slept[1] <= 3.4, slept
    assert slept[2] >= 1, "no Retry-After: back off anyway"


def test_retry_after_as_an_http_date():
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds(when, now=lambda: 1_000_000) == pytest.approx(30)
    assert retry_after_seconds("soon") is None


def test_429s_for_too_long_throttle_out():
    slept = []
    retry = Retry(max_throttle_wait=100, sleep=slept.append)
    with pytest.raises(errors.ThrottledOut, match="429"):
        retry.call(Answers(*[(429, {"Retry-After": "40"})] * 5))
    assert 80 <= sum(slept) <= 100


def test_transient_failures_are_retried_then_given_up():
    slept = []
    retry = Retry(attempts=3, base=1, cap=2, sleep=slept.append, rng=random.Random(1))
    assert retry.call(Answers(requests.ConnectionError("reset"), 503, 200)).status_code == 200
    assert len(slept) == 2
    assert all(0 <= s <= 2 for s in slept)
    with pytest.raises(TransientError, match="failed 3 times, last: HTTP 502"):
        retry.call(Answers(503, requests.Timeout("slow"), 502))
    assert retry.call(Answers(404)).status_code == 404, "a 4xx is the caller's to handle"


def test_local_file_key_is_path_size_and_mtime(tmp_path):
    f = LocalFile(Path("/x/a.jpg"), 10, 123)
    assert f.key == "/x/a.jpg|10|123"


def test_url_and_json_count_before_or_after_the_command():
    from boardsite_client.cli import parser

    before = parser().parse_args(["--url", "http://a.example", "--json", "boards"])
    after = parser().parse_args(["boards", "--url", "http://b.example", "--json"])
    neither = parser().parse_args(["boards"])
    assert (before.url, before.json) == ("http://a.example", True)
    assert (after.url, after.json) == ("http://b.example", True)
    assert (neither.url, neither.json) == (None, False)


def test_a_retry_after_longer_than_allowed_says_so_not_that_it_waited():
    slept = []
    retry = Retry(max_throttle_wait=3, sleep=slept.append)
    with pytest.raises(errors.ThrottledOut) as exc:
        retry.call(Answers((429, {"Retry-After": "544"})), what="a ticket")
    assert slept == [], "nothing waited"
    message = exc.value.message
    assert "asked to wait 544 s" in message, message
    assert "more than --max-throttle-wait (3 s) allows" in message, message
    assert "for 0 s" not in message
    # When it did wait, it says so as before.
    retry = Retry(max_throttle_wait=10, sleep=slept.append)
    with pytest.raises(errors.ThrottledOut, match=r"kept answering 429 \(too many requests\) to a ticket for [4-9] s"):
        retry.call(Answers(*[(429, {"Retry-After": "4"})] * 5), what="a ticket")
