"""One person per name (issue 7, finding 2): names compared NFKC + casefolded everywhere, enforced by the database."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models.signals import pre_save
from django.test import Client
from django.utils import timezone

from boardsite.accounts import services as account_services
from boardsite.accounts import signals
from boardsite.accounts.models import FormerUsername, UsernameKey
from boardsite.accounts.services import profile_update, user_signup
from boardsite.accounts.usernames import TAKEN, UsernameTaken, canonical_username, mixed_script_error
from boardsite.boards.models import Membership, Role
from boardsite.boards.services import board_create, board_member_add, board_member_remove
from boardsite.core.errors import Invalid, NotFound

User = get_user_model()
PASSWORD = "a-long-test-password"
FULLWIDTH = "ＣＯＮＴＲＩＢ１"


def signup(client: Client, username: str, **extra: str):
    form = {"username": username, "password": PASSWORD, "password_again": PASSWORD, **extra}
    return client.post("/signup/", form)


def test_canonical_form():
    assert canonical_username(FULLWIDTH) == canonical_username("CONTRIB1") == canonical_username("contrib1")
    assert canonical_username("Straße") == canonical_username("STRASSE")
    assert canonical_username("contrib1") != canonical_username("contrib2")


@pytest.mark.django_db
@pytest.mark.parametrize("twin", [FULLWIDTH, "CONTRIB1", "Contrib1", " contrib1 "])
def test_a_look_alike_of_an_existing_name_is_refused_as_taken(twin):
    assert signup(Client(), "contrib1").status_code == 302
    r = signup(Client(), twin)
    assert r.status_code == 200
    assert TAKEN in r.content.decode()
    assert list(User.objects.values_list("username", flat=True)) == ["contrib1"]


@pytest.mark.django_db
def test_member_add_and_remove_find_exactly_the_named_person():
    owner = User.objects.create_user(username="owner", password=PASSWORD)
    contrib1 = User.objects.create_user(username="contrib1", password=PASSWORD)
    other = User.objects.create_user(username="contrib10", password=PASSWORD)
    board = board_create(user=owner, title="Holiday")
    Membership.objects.create(board=board, user=other, role=Role.VIEWER)
    with pytest.raises(Invalid, match="taken"):
        user_signup(username=FULLWIDTH, password=PASSWORD)

    assert board_member_add(board=board, user=owner, username="contrib1", role=Role.CONTRIBUTOR).user == contrib1
    # Any spelling of the name is the same person: no second membership, no MultipleObjectsReturned.
    assert board_member_add(board=board, user=owner, username=FULLWIDTH, role=Role.CONTRIBUTOR).user == contrib1
    assert board.memberships.filter(user=contrib1).count() == 1

    board_member_remove(board=board, user=owner, username="CONTRIB1")
    assert not board.memberships.filter(user=contrib1).exists()
    assert set(board.memberships.values_list("user__username", flat=True)) == {"owner", "contrib10"}
    with pytest.raises(NotFound, match="not a member"):
        board_member_remove(board=board, user=owner, username="contrib1")
    with pytest.raises(NotFound, match="No user called 'nobody'"):
        board_member_add(board=board, user=owner, username="nobody", role=Role.VIEWER)


@pytest.mark.django_db
def test_member_pages_answer_with_a_message_never_a_500():
    owner = User.objects.create_user(username="owner", password=PASSWORD)
    contrib1 = User.objects.create_user(username="contrib1", password=PASSWORD)
    board = board_create(user=owner, title="Holiday")
    c = Client()
    c.force_login(owner)
    r = c.post(f"/boards/{board.pk}/members/", {"username": FULLWIDTH, "role": "contributor"}, follow=True)
    assert r.status_code == 200
    assert "contrib1 is now contributor" in r.content.decode()
    r = c.post(f"/boards/{board.pk}/members/", {"username": "nobody", "role": "viewer"}, follow=True)
    assert r.status_code == 200
    assert "No user called" in r.content.decode()
    r = c.post(f"/boards/{board.pk}/members/remove/", {"username": "CONTRIB1"}, follow=True)
    assert r.status_code == 200
    assert "Member removed." in r.content.decode()
    assert not board.memberships.filter(user=contrib1).exists()


@pytest.mark.django_db
def test_every_way_of_creating_a_user_gets_a_key_and_refuses_look_alikes(monkeypatch, capsys):
    User.objects.create_user(username="grace", password=PASSWORD)
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com")
    call_command("demo")
    assert dict(UsernameKey.objects.values_list("user__username", "key")) == {
        "grace": "grace",
        "admin": "admin",
        "demo": "demo",
    }
    with pytest.raises(UsernameTaken, match="taken"):
        User.objects.create_user(username="GRACE", password=PASSWORD)
    with pytest.raises(CommandError, match="That username is taken"):
        call_command("createsuperuser", "--noinput", "--username", "Ａｄｍｉｎ", "--email", "b@example.com")
    assert User.objects.count() == 3
    # A rename follows: the old key is freed, the new one taken.
    grace = User.objects.get(username="grace")
    grace.username = "Grace2"
    grace.save()
    assert UsernameKey.objects.get(user=grace).key == "grace2"
    User.objects.create_user(username="grace", password=PASSWORD)


@pytest.mark.django_db
def test_under_a_race_the_unique_constraint_decides(monkeypatch):
    """Both checks before the write said "free" (as when two look-alikes sign up at the same moment)."""
    user_signup(username="contrib1", password=PASSWORD)
    monkeypatch.setattr(account_services, "_name_taken", lambda username: False)
    assert pre_save.disconnect(sender=User, dispatch_uid="accounts.check_username_key")
    try:
        with pytest.raises(Invalid, match=r"^That username is taken\.$"):
            user_signup(username="CONTRIB1", password=PASSWORD)
        with pytest.raises(UsernameTaken):
            User.objects.create_user(username="Contrib1", password=PASSWORD)
    finally:
        pre_save.connect(signals.check_username_key, sender=User, dispatch_uid="accounts.check_username_key")
    assert list(User.objects.values_list("username", flat=True)) == ["contrib1"]


@pytest.mark.parametrize(
    "name", ["pаypal", "Ιvan", "аdmin_99", "bοb"]
)  # Cyrillic a, Greek Iota, Cyrillic a, Greek omicron
def test_names_mixing_confusable_scripts_are_refused(name):
    error = mixed_script_error(name)
    assert error is not None
    assert "cannot mix" in error
    assert "U+" in error


@pytest.mark.django_db
def test_a_mixed_script_name_gets_the_sentence_on_the_sign_up_page():
    r = signup(Client(), "pаypal")
    assert r.status_code == 200
    assert "cannot mix Latin and Cyrillic letters" in r.content.decode()
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["Иван", "Ελένη", "やまだ太郎", "josé_99", "Zoë.Smith", "OBrien"])
def test_legitimate_names_in_any_one_script_are_welcome(name):
    assert mixed_script_error(name) is None
    user = user_signup(username=name, password=PASSWORD)
    assert UsernameKey.objects.get(user=user).key == canonical_username(name)
    c = Client()
    assert c.post("/login/", {"username": name.upper(), "password": PASSWORD}).status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["contrib1", "CONTRIB1", FULLWIDTH, "Contrib1"])
def test_log_in_with_any_spelling_of_the_name(spelling):
    user = user_signup(username="contrib1", password=PASSWORD)
    c = Client()
    assert c.post("/login/", {"username": spelling, "password": PASSWORD}).status_code == 302
    assert c.session["_auth_user_id"] == str(user.pk)
    r = Client().post("/login/", {"username": spelling, "password": "wrong-password"})
    assert r.status_code == 200
    assert "_auth_user_id" not in r.client.session


@pytest.mark.django_db
def test_hidden_characters_in_profile_text_get_a_sentence_not_a_500():
    user = user_signup(username="grace", password=PASSWORD)
    c = Client()
    c.force_login(user)
    r = c.post("/profile/", {"display_name": "evil\u202egpj.exe", "bio": "fine"})
    assert r.status_code == 200
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in r.content.decode()
    r = c.post("/profile/", {"display_name": "Grace", "bio": "line one\nline two\u200b"})
    assert r.status_code == 200
    assert "The bio contains" in r.content.decode()
    assert c.post("/profile/", {"display_name": "Grace", "bio": "line one\nline two"}).status_code == 302
    with pytest.raises(Invalid, match="display name contains"):
        profile_update(user=user, display_name="a\u0000b", bio="")

    r = signup(Client(), "ada", display_name="Ada\u2066")
    assert r.status_code == 200
    assert "U+2066" in r.content.decode()
    assert not User.objects.filter(username="ada").exists()


MIGRATE_FROM = [("accounts", "0002_usernames_and_throttling")]


@pytest.mark.django_db(transaction=True)
def test_migration_renames_later_look_alikes_and_keeps_their_data():
    executor = MigrationExecutor(connection)
    executor.migrate(MIGRATE_FROM)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "accounts"]
    apps = executor.loader.project_state(others + MIGRATE_FROM).apps
    OldUser = apps.get_model("auth", "User")
    Board = apps.get_model("boards", "Board")
    OldMembership = apps.get_model("boards", "Membership")
    Image = apps.get_model("images", "Image")
    start = timezone.now() - timezone.timedelta(days=30)

    def old_user(name: str, days: int, password: str):
        return OldUser.objects.create(
            username=name, password=make_password(password), date_joined=start + timezone.timedelta(days=days)
        )

    # As the finding left things: the real contrib1 first, look-alikes after; "contrib1-2" is someone else's name.
    real = old_user("contrib1", 0, "real-persons-password")
    other = old_user("contrib1-2", 1, "other-persons-password")
    twin = old_user("CONTRIB1", 2, "twins-own-password")
    third = old_user("Contrib1", 3, "thirds-own-password")
    grace = old_user("grace", 4, "graces-password")
    board = Board.objects.create(title="Twin's board", created_by=twin)
    OldMembership.objects.create(board=board, user=twin, role="owner")
    OldMembership.objects.create(board=board, user=real, role="viewer")
    Image.objects.create(
        board=board,
        uploaded_by=twin,
        original_key="originals/x.jpg",
        filename="x.jpg",
        content_type="image/jpeg",
        declared_size=1000,
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    names = dict(User.objects.values_list("pk", "username"))
    assert names == {
        real.pk: "contrib1",
        other.pk: "contrib1-2",
        twin.pk: "CONTRIB1-3",
        third.pk: "Contrib1-4",
        grace.pk: "grace",
    }
    assert dict(UsernameKey.objects.values_list("user_id", "key")) == {
        pk: canonical_username(name) for pk, name in names.items()
    }
    assert set(FormerUsername.objects.values_list("user_id", "name", "key")) == {
        (twin.pk, "CONTRIB1", "contrib1"),
        (third.pk, "Contrib1", "contrib1"),
    }
    # Nothing of the renamed account moved: its board, memberships and photo are still its own.
    assert set(Membership.objects.filter(board_id=board.pk).values_list("user_id", "role")) == {
        (twin.pk, "owner"),
        (real.pk, "viewer"),
    }
    assert Image.objects.get().uploaded_by_id == twin.pk

    # The name's holder is tried first; a renamed person still gets in with their old name and own password, and the
    # page after logging in tells them their new name.
    def log_in(name: str, password: str) -> tuple[Client, str]:
        c = Client()
        r = c.post("/login/", {"username": name, "password": password}, follow=True)
        assert r.status_code == 200
        return c, r.content.decode()

    c, page = log_in("CONTRIB1", "real-persons-password")
    assert c.session["_auth_user_id"] == str(real.pk)
    assert "Your username is now" not in page
    c, page = log_in("CONTRIB1", "twins-own-password")
    assert c.session["_auth_user_id"] == str(twin.pk)
    assert "Your username is now “CONTRIB1-3”" in page
    c, page = log_in("contrib1", "thirds-own-password")
    assert c.session["_auth_user_id"] == str(third.pk)
    assert "Your username is now “Contrib1-4”" in page
    c, _ = log_in("CONTRIB1-3", "twins-own-password")
    assert c.session["_auth_user_id"] == str(twin.pk)
    c, _ = log_in("contrib1", "wrong-password")
    assert "_auth_user_id" not in c.session
