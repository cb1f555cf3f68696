"""Many photos at once (boardsite/images/bulk.py): deleting and moving a selection with the single delete's rules,
hidden at once and undoable for a few seconds, then removed from storage and the CDN as a single delete is; the sweep
finishes what a dead process left. Real parts throughout: the database, moto's S3 and CloudFront."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import requests
from django.test import Client
from django.utils import timezone

from boardsite.api.services import boards_of
from boardsite.boards.models import Board, Role
from boardsite.core.errors import Forbidden, Invalid, NotFound
from boardsite.images import bulk, services
from boardsite.images.cleanup import storage_cleanup_run
from boardsite.images.models import DeletedImage, Image, PhotoBatch, Status, StorageCleanup
from boardsite.images.selectors import board_cards, board_tiles_page
from boardsite.images.sweep import image_sweep_stale
from offload.results import variants_prefix
from tests.factories import add_member, make_board, make_image, stored_image
from tests.images.cdn_setup import invalidated_paths

pytestmark = pytest.mark.django_db


def keys(s3, bucket: str, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


@pytest.fixture
def bucket(settings) -> str:
    return settings.BOARDSITE_BUCKET


@pytest.fixture
def photos(s3, bucket, board, people) -> list[Image]:
    """Three of the owner's photos and one of the contributor's, all stored."""
    owner, contributor = people["owner"], people["contributor"]
    return [stored_image(s3, bucket, board, owner) for _ in range(3)] + [stored_image(s3, bucket, board, contributor)]


@pytest.fixture
def other(people) -> Board:
    """Another board of the owner's (where the contributor contributes too)."""
    return make_board(people["owner"], title="Other", members={people["contributor"]: Role.CONTRIBUTOR})


def ids(images: list[Image]) -> list[str]:
    return [str(i.pk) for i in images]


def later(seconds: float = 60) -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=seconds)


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_deleted_photos_vanish_everywhere_at_once_and_go_with_their_objects_after_the_window(
    s3, bucket, board, people, photos, django_capture_on_commit_callbacks
):
    owner = people["owner"]
    gone, kept = photos[:2], photos[2:]
    batch = bulk.photos_delete(user=owner, board_id=board.pk, image_ids=ids(gone))
    assert sorted(batch.image_ids) == sorted(ids(gone))

    # Hidden from the board page, its tiles, the JSON API, the cards' counts; the rows and objects wait.
    web = client_for(owner)
    page = web.get(f"/boards/{board.pk}/").content.decode()
    tiles = web.get(f"/boards/{board.pk}/tiles").json()["html"]
    api_list = web.get(f"/api/boards/{board.pk}/images").json()["images"]
    for image in gone:
        assert str(image.pk) not in page
        assert str(image.pk) not in tiles
        assert web.get(f"/api/images/{image.pk}").status_code == 404
        assert str(image.pk) not in [i["id"] for i in api_list]
        assert web.get(f"/images/{image.pk}/").status_code == 404
    assert web.get(f"/api/images?ids={','.join(ids(gone))}").json()["missing"] == ids(gone)
    for image in kept:
        assert str(image.pk) in page
    shown = board_tiles_page(board=board, user=owner, role=Role.OWNER).images
    assert {i.pk for i in shown} == {i.pk for i in kept}
    assert board_cards(Board.objects.filter(pk=board.pk))[0]["count"] == 2
    assert dict((b.pk, n) for b, _, n in boards_of(user=owner))[board.pk] == 2
    assert Image.objects.filter(pk__in=ids(gone)).count() == 2
    assert keys(s3, bucket, gone[0].original_key) == [gone[0].original_key]

    # Within the window nothing is deleted; after it, rows and objects go as a single delete's do: the first
    # photos' objects right after the commit, the rest (over the request's share) by the sweep's cleanup.
    assert bulk.photos_deleting_finish() == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert bulk.photos_deleting_finish(now=later(), run_now_max=1) == 2
    assert not Image.objects.filter(pk__in=ids(gone)).exists()
    assert DeletedImage.objects.filter(pk__in=ids(gone)).count() == 2
    left = [i for i in gone if keys(s3, bucket, i.original_key)]
    assert len(left) == 1
    assert StorageCleanup.objects.count() == 1
    image_sweep_stale(now=later())
    for image in gone:
        assert keys(s3, bucket, image.original_key) == []
        assert keys(s3, bucket, variants_prefix(image.original_key)) == []
    for image in kept:
        assert keys(s3, bucket, image.original_key) == [image.original_key]


def test_undo_within_the_window_brings_them_back_and_nothing_is_deleted(s3, bucket, board, people, photos):
    owner = people["owner"]
    batch = bulk.photos_delete(user=owner, board_id=board.pk, image_ids=ids(photos[:3]))
    undone, restored = bulk.photos_undo(user=owner, batch_id=batch.pk)
    assert restored == 3
    assert undone.undone_at is not None
    assert bulk.photos_undo(user=owner, batch_id=batch.pk)[1] == 0  # twice: nothing more
    assert bulk.photos_deleting_finish(now=later()) == 0
    assert len(board_tiles_page(board=board, user=owner, role=Role.OWNER).images) == 4
    assert keys(s3, bucket, photos[0].original_key) == [photos[0].original_key]


def test_undo_is_refused_after_the_window_and_for_someone_else(settings, board, people, photos):
    batch = bulk.photos_delete(user=people["owner"], board_id=board.pk, image_ids=ids(photos[:1]))
    with pytest.raises(NotFound):
        bulk.photos_undo(user=people["contributor"], batch_id=batch.pk)
    PhotoBatch.objects.filter(pk=batch.pk).update(undo_until=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(Invalid, match="Too late to undo"):
        bulk.photos_undo(user=people["owner"], batch_id=batch.pk)
    assert Image.objects.get(pk=photos[0].pk).deleting_until is not None


def test_a_contributor_deletes_only_their_own_and_cannot_move(board, other, people, photos):
    contributor = people["contributor"]
    batch = bulk.photos_delete(user=contributor, board_id=board.pk, image_ids=ids(photos))
    assert batch.image_ids == [str(photos[3].pk)]  # the owner's three are left alone
    assert Image.objects.filter(deleting_until__isnull=False).count() == 1
    with pytest.raises(Invalid, match="None of the chosen photos"):
        bulk.photos_delete(user=contributor, board_id=board.pk, image_ids=ids(photos[:3]))
    with pytest.raises(Forbidden, match="owns both boards"):
        bulk.photos_move(user=contributor, board_id=board.pk, image_ids=ids(photos[3:]), target_id=other.pk)
    viewer = people["viewer"]
    with pytest.raises(Invalid):
        bulk.photos_delete(user=viewer, board_id=board.pk, image_ids=ids(photos))


def test_a_strangers_ids_are_ignored_not_revealed_and_not_deleted(s3, bucket, board, people, photos):
    stranger = people["stranger"]
    elsewhere = make_board(stranger, title="Theirs")
    theirs = stored_image(s3, bucket, elsewhere, stranger)
    private = make_board(stranger, title="Private")
    hidden = make_image(private, stranger)
    owner = people["owner"]
    # The owner names photos of other boards along with their own: only their board's are touched.
    batch = bulk.photos_delete(
        user=owner, board_id=board.pk, image_ids=[*ids(photos[:1]), str(theirs.pk), str(hidden.pk), "junk"]
    )
    assert batch.image_ids == [str(photos[0].pk)]
    assert Image.objects.get(pk=theirs.pk).deleting_until is None
    assert Image.objects.get(pk=hidden.pk).deleting_until is None
    # Only others' ids: the same sentence as for one's own photos one may not delete.
    with pytest.raises(Invalid, match="None of the chosen photos"):
        bulk.photos_delete(user=owner, board_id=board.pk, image_ids=[str(theirs.pk), str(uuid.uuid4())])
    # A stranger to a private board: as if it did not exist.
    with pytest.raises(NotFound):
        bulk.photos_delete(user=stranger, board_id=board.pk, image_ids=ids(photos))
    assert not Image.objects.filter(board=board, deleting_until__isnull=False).exclude(pk=photos[0].pk).exists()


def test_more_ids_than_the_limit_are_refused_with_a_clear_sentence(settings, board, people, photos):
    settings.BULK_MAX_PHOTOS = 3
    with pytest.raises(Invalid, match="At most 3 photos at once: you chose 4"):
        bulk.photos_delete(user=people["owner"], board_id=board.pk, image_ids=ids(photos))
    assert not Image.objects.filter(deleting_until__isnull=False).exists()
    with pytest.raises(Invalid, match="at least one"):
        bulk.photos_delete(user=people["owner"], board_id=board.pk, image_ids=[])


def test_the_sweep_finishes_a_delete_whose_process_died_and_invalidates_the_cdn(
    s3, bucket, board, people, photos, distribution_id
):
    bulk.photos_delete(user=people["owner"], board_id=board.pk, image_ids=ids(photos[:2]))
    # The process died here: no toast closed, no finish. The next sweep after the window does it all.
    image_sweep_stale(now=later(10))
    assert not Image.objects.filter(pk__in=ids(photos[:2])).exists()
    for image in photos[:2]:
        assert keys(s3, bucket, variants_prefix(image.original_key)) == []
        assert keys(s3, bucket, image.original_key) == []
    assert invalidated_paths(distribution_id) == sorted(f"/variants/{board.pk}/{i.pk}/*" for i in photos[:2])
    assert Image.objects.filter(board=board).count() == 2


def test_the_sweep_leaves_photos_whose_window_is_still_open(board, people, photos):
    bulk.photos_delete(user=people["owner"], board_id=board.pk, image_ids=ids(photos[:2]))
    image_sweep_stale()
    assert Image.objects.filter(pk__in=ids(photos[:2])).count() == 2


def test_an_owner_moves_photos_with_their_objects_and_undo_moves_them_back(
    s3, bucket, board, other, people, photos, distribution_id, django_capture_on_commit_callbacks
):
    owner = people["owner"]
    moving = photos[:2]
    before = {i.pk: (i.original_key, sorted(v.key for v in i.variants.all())) for i in moving}
    with django_capture_on_commit_callbacks(execute=True):
        batch = bulk.photos_move(user=owner, board_id=board.pk, image_ids=ids(moving), target_id=other.pk)
    assert sorted(batch.image_ids) == sorted(ids(moving))
    for image in moving:
        row = Image.objects.get(pk=image.pk)
        assert row.board_id == other.pk
        assert row.original_key == f"originals/{other.pk}/{image.pk}.jpg"
        new_prefix = f"variants/{other.pk}/{image.pk}/"
        assert all(v.key.startswith(new_prefix) for v in row.variants.all())
        assert keys(s3, bucket, new_prefix) == sorted(
            [*(v.key for v in row.variants.all()), new_prefix + "result.json"]
        )
        assert keys(s3, bucket, row.original_key) == [row.original_key]
        # The old objects went as a delete's do, and so did the CDN's copies of the old URLs.
        assert keys(s3, bucket, before[image.pk][0]) == []
        assert keys(s3, bucket, f"variants/{board.pk}/{image.pk}/") == []
        # The original is still the processed one: its download link works.
        link = services.image_original_link(user=owner, image_id=image.pk)
        assert requests.get(link["url"], timeout=10).content == b"original " + image.pk.bytes
    assert invalidated_paths(distribution_id) == sorted(f"/variants/{board.pk}/{i.pk}/*" for i in moving)
    assert {i.pk for i in board_tiles_page(board=other, user=owner, role=Role.OWNER).images} == {i.pk for i in moving}

    with django_capture_on_commit_callbacks(execute=True):
        assert bulk.photos_undo(user=owner, batch_id=batch.pk)[1] == 2
    for image in moving:
        row = Image.objects.get(pk=image.pk)
        assert row.board_id == board.pk
        assert keys(s3, bucket, row.original_key) == [row.original_key]
        assert sorted(v.key for v in row.variants.all()) == before[image.pk][1]
        assert keys(s3, bucket, f"variants/{other.pk}/{image.pk}/") == []
    assert len(board_tiles_page(board=board, user=owner, role=Role.OWNER).images) == 4


def test_moving_needs_both_boards_owned_and_leaves_unprocessed_photos(s3, bucket, board, people, photos):
    owner, contributor = people["owner"], people["contributor"]
    theirs = make_board(contributor, title="Contributor's")
    add_member(theirs, owner, Role.CONTRIBUTOR)
    with pytest.raises(Forbidden, match="owns both boards"):
        bulk.photos_move(user=owner, board_id=board.pk, image_ids=ids(photos), target_id=theirs.pk)
    with pytest.raises(Forbidden, match="owns both boards"):  # a board one cannot see: the same answer
        bulk.photos_move(user=owner, board_id=board.pk, image_ids=ids(photos), target_id=999999)
    assert not Image.objects.filter(board=theirs).exists()
    mine = make_board(owner, title="Mine too")
    processing = make_image(board, owner, status=Status.PROCESSING)
    batch = bulk.photos_move(
        user=owner, board_id=board.pk, image_ids=[str(processing.pk), *ids(photos[:1])], target_id=mine.pk
    )
    assert batch.image_ids == [str(photos[0].pk)]
    assert Image.objects.get(pk=processing.pk).board_id == board.pk


def test_moving_refuses_to_fill_a_board_past_its_limit(settings, s3, bucket, board, other, people, photos):
    settings.BOARD_MAX_PHOTOS = 3
    with pytest.raises(Forbidden, match="would go over"):
        bulk.photos_move(user=people["owner"], board_id=board.pk, image_ids=ids(photos), target_id=other.pk)
    assert Image.objects.filter(board=board).count() == 4


def test_copies_of_a_move_that_never_finished_are_orphans(s3, bucket, board, other, people, photos, settings):
    from boardsite.images.cleanup import storage_sweep_orphans

    image = photos[0]
    # The copy happened, the row was never repointed (the process died): what sits under the other board is garbage.
    bulk._copy_objects(s3, image, bulk.moved_key(image.original_key, other.pk))
    copied = keys(s3, bucket, f"variants/{other.pk}/{image.pk}/")
    assert copied
    storage_sweep_orphans(now=later(3 * 86400))
    assert keys(s3, bucket, f"variants/{other.pk}/{image.pk}/") == []
    assert keys(s3, bucket, f"originals/{other.pk}/") == []
    assert keys(s3, bucket, variants_prefix(image.original_key))  # the live photo's own objects stay


def test_a_failed_photo_being_deleted_is_not_offered_for_processing_again(local_aws, board, people):
    from boardsite.images.services import image_process_again

    failed = make_image(board, people["owner"], status=Status.FAILED, error="x", retryable_until=later(3600), size=None)
    staff = client_for(people["owner"])
    people["owner"].is_staff = True
    people["owner"].save(update_fields=["is_staff"])
    assert str(failed.pk) in staff.get("/control/dead-letters/").content.decode()
    bulk.photos_delete(user=people["owner"], board_id=board.pk, image_ids=[str(failed.pk)])
    assert str(failed.pk) not in staff.get("/control/dead-letters/").content.decode()
    with pytest.raises(Invalid, match="Only a photo that failed"):
        image_process_again(image_id=failed.pk)


def test_a_moves_cleanup_left_for_the_sweep_never_deletes_what_its_undo_put_back(
    s3, bucket, board, other, people, photos
):
    """The first attempt at a move's cleanup runs after the commit; here it never ran (no commit callbacks), as when
    S3 did not answer, so the sweep would retry it. The undo writes the very places it names again."""
    owner, image = people["owner"], photos[0]
    old_variants = variants_prefix(image.original_key)
    batch = bulk.photos_move(user=owner, board_id=board.pk, image_ids=ids([image]), target_id=other.pk)
    assert any(old_variants in row.prefixes for row in StorageCleanup.objects.all())
    assert bulk.photos_undo(user=owner, batch_id=batch.pk)[1] == 1
    storage_cleanup_run(now=later())  # the sweep's retry of everything still recorded
    row = Image.objects.get(pk=image.pk)
    assert row.board_id == board.pk
    assert keys(s3, bucket, row.original_key) == [row.original_key]
    assert keys(s3, bucket, old_variants) == sorted(
        [*(v.key for v in row.variants.all()), old_variants + "result.json"]
    )


def test_someone_removed_from_the_board_can_no_longer_undo_their_delete(board, people, photos):
    contributor = people["contributor"]
    batch = bulk.photos_delete(user=contributor, board_id=board.pk, image_ids=ids(photos[3:]))
    board.memberships.filter(user=contributor).delete()
    with pytest.raises(Forbidden):
        bulk.photos_undo(user=contributor, batch_id=batch.pk)
    assert Image.objects.get(pk=photos[3].pk).deleting_until is not None
