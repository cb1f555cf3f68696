"""Boards at any size (issue 10): what a board page, an image URL and the home page cost, against baselines in the
same run.

    .venv/bin/python bench/board.py [--sizes 50,500,5000] [--repeat 5] [--check]

No network: a temporary SQLite database, and S3 URLs presigned for a local endpoint (signing needs none). CPU time
(``time.process_time``), medians of ``--repeat`` runs, through Django's test client (the whole middleware stack).

  board page    the first page at each size; baseline: the page as it was (every tile, each URL by botocore's
                ``generate_presigned_url``, the src signed twice), rendered in the same run
  signing       our SigV4 presigner against botocore's ``generate_presigned_url``, per URL
  cache         two renders of a page a minute apart (inside one URL window): the share of identical image URLs
  home          1,000 owned + 1,000 shared boards against 10 + 10
  cloudfront    the first page at 500 images in the CloudFront mode (plain URLs + the board's signed cookies, a
                throwaway key pair) against the presigned S3 page; and one board's cookies, one cover's signed URL

Goals (``--check`` exits 1 when one is missed): the first page costs the same at every size (largest / smallest
CPU <= 1.5, noise included); at 500 images it costs at most 1/5 of the baseline's full page; signing >= 20x cheaper;
all URLs identical a minute apart; home at 1,000 + 1,000 <= 1.5x its cost at 10 + 10; the CloudFront page costs at
most 1.2x the presigned S3 page.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOALS = {"flat": 1.5, "vs_baseline_500": 0.2, "signing": 20.0, "home": 1.5, "cdn": 1.2}


def setup(tmp: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="boardsite.settings",
        BOARDSITE_LOCAL_DIR=str(tmp),
        DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # never contacted: presigning is local
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        DJANGO_DEBUG="true",
        DJANGO_ALLOWED_HOSTS="testserver",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def cpu(fn: Callable[[], Any], repeat: int) -> float:
    """Median CPU seconds of ``fn`` over ``repeat`` runs (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        samples.append(time.process_time() - t0)
    return statistics.median(samples)


def make_board(owner: Any, n: int) -> Any:
    from django.utils import timezone

    from boardsite.boards.services import board_create
    from boardsite.images.models import Image, Variant

    board = board_create(user=owner, title=f"{n} photos", visibility="private")
    start = timezone.now()
    images = [
        Image(
            id=uuid.uuid4(),
            board=board,
            uploaded_by=owner,
            original_key=f"originals/{board.pk}/{uuid.uuid4()}.jpg",
            filename=f"IMG_{i:05}.jpg",
            content_type="image/jpeg",
            declared_size=3_000_000,
            status="ready",
            width=4032,
            height=3024,
            dominant_color="#6a7b8c",
            placeholder="data:image/webp;base64," + "A" * 200,
        )
        for i in range(n)
    ]
    Image.objects.bulk_create(images, batch_size=500)
    Image.objects.filter(board=board).update(created_at=start)
    variants = [
        Variant(
            image=image,
            name=name,
            key=f"variants/{board.pk}/{image.pk}/{name}.{fmt}",
            width=size,
            height=size if name == "thumb" else size * 3 // 4,
            format=fmt,
            content_type=f"image/{fmt}",
            bytes=1000,
        )
        for image in images
        for name, size in (("thumb", 320), ("medium", 960), ("large", 1920))
        for fmt in ("webp", "jpeg")
    ]
    Variant.objects.bulk_create(variants, batch_size=2000)
    return board


def baseline_page(client: Any, board: Any) -> Callable[[], Any]:
    """The board page as it was before keyset pages and the fast signer: every tile, botocore for each URL."""
    from unittest import mock

    from django.conf import settings

    from boardsite import aws
    from boardsite.images import selectors

    def botocore_get(key: str) -> str:
        return aws.client("s3").generate_presigned_url(
            "get_object", Params={"Bucket": settings.BOARDSITE_BUCKET, "Key": key}, ExpiresIn=settings.IMAGE_URL_SECONDS
        )

    def render() -> Any:
        with (
            mock.patch.object(selectors, "presigned_get", botocore_get),
            mock.patch.object(selectors, "BOARD_PAGE_SIZE", 10**9),
        ):
            return client.get(f"/boards/{board.pk}/")

    return render


def cloudfront(client: Any, board: Any, repeat: int) -> list[str]:
    """The board's first page with variants through CloudFront, against the same page presigned from S3."""
    from django.conf import settings

    from boardsite.images import cdn
    from devstack.cdn import new_key_pair

    page = lambda: client.get(f"/boards/{board.pk}/")  # noqa: E731
    s3_cpu, s3_html = cpu(page, repeat), page().content
    _, pem, _ = new_key_pair()
    os.environ.update(BOARDSITE_CDN_KEY_ID="KBENCH", BOARDSITE_CDN_PRIVATE_KEY=pem)
    settings.BOARDSITE_CDN_URL = "https://media.bench.example"
    try:
        cdn._signer.cache_clear()
        response = page()
        assert response.cookies.get("CloudFront-Signature"), "no CloudFront cookies on the board page"
        cdn_cpu, cdn_html = cpu(page, repeat), response.content
        signer = cdn.signer()
        t0 = time.process_time()
        for i in range(20):
            signer._made.clear()
            signer.board_cookies(i)
        cookie_ms = (time.process_time() - t0) / 20 * 1000
        t0 = time.process_time()
        for _ in range(20):
            signer.signed_url(f"variants/1/{uuid.uuid4()}/thumb.webp")
        url_ms = (time.process_time() - t0) / 20 * 1000
    finally:
        settings.BOARDSITE_CDN_URL = ""
        cdn._signer.cache_clear()
    ratio = cdn_cpu / s3_cpu
    print(f"cloudfront mode ({board.title}; first page, CPU ms, KB of HTML)")
    print(
        f"  presigned S3 {s3_cpu * 1000:6.1f} ms {len(s3_html) / 1024:6.1f} KB   CloudFront {cdn_cpu * 1000:6.1f} ms"
        f" {len(cdn_html) / 1024:6.1f} KB   ratio {ratio:.2f} (goal <= {GOALS['cdn']})"
    )
    print(f"  signing, once per board and window: cookies {cookie_ms:.2f} ms   a cover's signed URL {url_ms:.2f} ms")
    return [f"the CloudFront page costs {ratio:.2f}x the S3 page"] if ratio > GOALS["cdn"] else []


def urls_in(html: str) -> list[str]:
    return re.findall(r"https?://[^\s\"',]+X-Amz-Signature=[0-9a-f]+", html.replace("&amp;", "&"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,500,5000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-board-") as tmp:
        setup(Path(tmp))
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.test import Client

        from boardsite import aws
        from boardsite.boards.models import Board, Membership, Role
        from boardsite.images import selectors

        owner = get_user_model().objects.create_user("bench", password="bench-password-1")
        client = Client()
        client.force_login(owner)
        missed: list[str] = []

        print("board page (first page; CPU ms, KB of HTML / gzipped)")
        first: dict[int, float] = {}
        baseline_500 = None
        for n in sizes:
            board = make_board(owner, n)
            page = lambda b=board: client.get(f"/boards/{b.pk}/")  # noqa: E731
            first[n] = cpu(page, args.repeat)
            html = page().content
            packed = len(gzip.compress(html)) / 1024
            line = f"  {n:>5} images: {first[n] * 1000:7.1f} ms  {len(html) / 1024:7.1f} KB / {packed:5.1f} KB"
            if n == 500 or (baseline_500 is None and n == sizes[-1] and 500 not in sizes):
                base = baseline_page(client, board)
                baseline_500 = cpu(base, max(1, args.repeat // 2))
                base_html = base().content
                line += (
                    f"   baseline (all {n} tiles, botocore): {baseline_500 * 1000:7.1f} ms"
                    f" {len(base_html) / 1024:7.1f} KB   ratio {first[n] / baseline_500:.3f}"
                )
            print(line)
        flat = max(first.values()) / min(first.values())
        print(f"  largest / smallest first page: {flat:.2f} (goal <= {GOALS['flat']})")
        if flat > GOALS["flat"]:
            missed.append(f"first page not flat: {flat:.2f}")
        if baseline_500 is not None and 500 in first and first[500] / baseline_500 > GOALS["vs_baseline_500"]:
            missed.append(f"first page at 500 is {first[500] / baseline_500:.3f} of the baseline")

        print("signing (µs CPU per URL)")
        s3 = aws.client("s3")
        signer = selectors._signer(s3, settings.BOARDSITE_BUCKET, settings.IMAGE_URL_SECONDS, 300)
        keys = [f"variants/1/{uuid.uuid4()}/thumb.webp" for _ in range(2000)]

        def ours() -> None:
            for k in keys:
                signer.url(k)

        def botocore() -> None:
            for k in keys:
                s3.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": k}, ExpiresIn=900)

        t_ours, t_boto = cpu(ours, args.repeat) / len(keys), cpu(botocore, args.repeat) / len(keys)
        print(
            f"  ours {t_ours * 1e6:6.1f}   botocore {t_boto * 1e6:6.1f}   {t_boto / t_ours:5.1f}x cheaper (goal >= 20)"
        )
        if t_boto / t_ours < GOALS["signing"]:
            missed.append(f"signing only {t_boto / t_ours:.1f}x cheaper")

        print("browser cache (two renders of the 50-image page a minute apart)")
        board = Board.objects.get(title=f"{sizes[0]} photos")
        start = (time.time() // 300) * 300 + 10
        signer._clock = lambda: start
        before = urls_in(client.get(f"/boards/{board.pk}/").content.decode())
        signer._clock = lambda: start + 60
        after = urls_in(client.get(f"/boards/{board.pk}/").content.decode())
        signer._clock = time.time
        same = sum(a == b for a, b in zip(before, after, strict=False)) / max(len(before), 1)
        print(f"  {len(before)} URLs, {same:.0%} identical (goal: all)")
        if not before or same < 1:
            missed.append(f"only {same:.0%} of the URLs repeat")

        missed += cloudfront(client, Board.objects.get(title=f"{sizes[len(sizes) // 2]} photos"), args.repeat)

        print("home page (CPU ms)")
        other = get_user_model().objects.create_user("other", password="bench-password-1")

        def boards_for(n: int) -> None:
            made = Board.objects.bulk_create([Board(title=f"h{i}", created_by=owner) for i in range(2 * n)])
            Membership.objects.bulk_create(
                [Membership(board=b, user=owner, role=Role.OWNER) for b in made[:n]]
                + [Membership(board=b, user=other, role=Role.OWNER) for b in made[n:]]
                + [Membership(board=b, user=owner, role=Role.VIEWER) for b in made[n:]]
            )

        Board.objects.all().delete()
        boards_for(10)
        small = cpu(lambda: client.get("/"), args.repeat)
        boards_for(990)
        large = cpu(lambda: client.get("/"), args.repeat)
        print(f"  10 + 10: {small * 1000:6.1f}   1,000 + 1,000: {large * 1000:6.1f}   ratio {large / small:.2f}")
        if large / small > GOALS["home"]:
            missed.append(f"home page grows with the boards: {large / small:.2f}")

    if missed:
        print("missed: " + "; ".join(missed))
    return 1 if (args.check and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
