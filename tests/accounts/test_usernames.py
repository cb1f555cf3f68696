"""One person per name (issue 7, finding 2): names compared NFKC + casefolded everywhere, enforced by the database."""

from __future__ import annotations

import re

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
from boardsite.accounts.usernames import (
    LOOKS_TAKEN,
    TAKEN,
    UsernameRefused,
    UsernameTaken,
    canonical_username,
    mixed_script_error,
    username_error,
    username_skeleton,
)
from boardsite.boards.models import Membership, Role
from boardsite.boards.services import board_create, board_member_add, board_member_remove
from boardsite.core.errors import Invalid, NotFound

User = get_user_model()
PASSWORD = "a-long-test-password"
FULLWIDTH = "ＣＯＮＴＲＩＢ１"


def signup(client: Client, username: str, **extra: str):
    # A valid address whatever the name (sign-up asks for one; these tests are about the name).
    form = {"username": username, "email": "someone@example.com", "password": PASSWORD, "password_again": PASSWORD}
    return client.post("/signup/", form | extra)


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
    assert "contrib1 is now a contributor" in r.content.decode()
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
    "name",
    # Cyrillic a, Greek Iota, Cyrillic a, Greek omicron, Armenian oh, Armenian oh, Cherokee tli, Cyrillic with Greek
    ["pаypal", "Ιvan", "аdmin_99", "bοb", "cօntrib1", "demօ", "ꮯontrib1", "Ιвaн"],
)
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


# Hindi: कमल, not देवनागरी: Django's own username validator (\w) refuses the vowel signs (Mn, Mc) most Hindi words have.
LEGITIMATE = ["Иван", "Ελένη", "やまだ太郎", "josé_99", "Zoë.Smith", "OBrien", "李小龙", "김민준", "कमल", "محمد"]


@pytest.mark.parametrize("name", [*LEGITIMATE, "देवनागरी", "Владимир", "Αθηνά", "田中さくら", "ひらがなカタカナ"])
def test_our_rules_leave_names_in_other_scripts_alone(name):
    assert username_error(name) is None
    assert username_skeleton(name) not in {username_skeleton(n) for n in LEGITIMATE if n != name}


@pytest.mark.django_db
@pytest.mark.parametrize("name", [*LEGITIMATE, "yamada太郎", "li小龙", "金김민준"])
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


# (existing name, a name that looks the same): the review's examples. The second is refused whatever its letters.
LOOK_ALIKES = [
    ("ABE", "ΑΒΕ"),  # Greek capitals
    ("TOP", "ΤΟΡ"),
    ("coco", "сосо"),  # Cyrillic
    ("pop", "рор"),
    ("LARA", "ᏞᎪᎡᎪ"),  # Cherokee
    ("contrib1", "cօntrib1"),  # Armenian oh among Latin letters
    ("demo", "demօ"),
    ("contrib1", "ꮯontrib1"),  # Cherokee small tli
    ("contrib2", "cᴏntrib2"),  # U+1D0F LATIN LETTER SMALL CAPITAL O
    ("admin", "ɑdmin"),  # U+0251 LATIN SMALL LETTER ALPHA
    ("demo", "ꝺemo"),  # U+A77A LATIN SMALL LETTER INSULAR D
    ("demo", "ɗemo"),  # U+0257 LATIN SMALL LETTER D WITH HOOK
    ("lan", "Ian"),  # in a sans-serif font, capital I is a small l
    ("paul", "pau1"),
    ("bob", "b0b"),
]


@pytest.mark.parametrize(("existing", "look_alike"), LOOK_ALIKES)
def test_names_that_look_the_same_have_one_skeleton(existing, look_alike):
    assert username_skeleton(look_alike) == username_skeleton(existing)
    assert username_skeleton(username_skeleton(look_alike)) == username_skeleton(look_alike)  # a fixed point


@pytest.mark.django_db
@pytest.mark.parametrize(("existing", "look_alike"), LOOK_ALIKES)
def test_a_name_that_looks_like_an_existing_one_is_refused(existing, look_alike):
    user_signup(username=existing, password=PASSWORD)
    with pytest.raises(Invalid, match=r"taken|cannot mix"):
        user_signup(username=look_alike, password=PASSWORD)
    with pytest.raises((UsernameTaken, UsernameRefused)):
        User.objects.create_user(username=look_alike, password=PASSWORD)
    assert list(User.objects.values_list("username", flat=True)) == [existing]


@pytest.mark.django_db
def test_a_look_alike_gets_a_sentence_saying_so_on_the_sign_up_page():
    assert signup(Client(), "ABE").status_code == 302
    r = signup(Client(), "ΑΒΕ")
    assert r.status_code == 200
    assert LOOKS_TAKEN in r.content.decode()
    assert not User.objects.filter(username="ΑΒΕ").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", LEGITIMATE)
def test_different_names_in_other_scripts_do_not_collide(name):
    """Legitimate names of every script live side by side with Latin ones and with each other."""
    for other in ["contrib1", "demo", "admin", *[n for n in LEGITIMATE if n != name]]:
        user_signup(username=other, password=PASSWORD)
    assert user_signup(username=name, password=PASSWORD).username == name


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "character", "stored"),
    [
        ("contrib1\u3164", "U+3164 (HANGUL FILLER)", "U+1160"),
        ("\u3164", "U+3164 (HANGUL FILLER)", "U+1160"),
        ("\u115f\u115f", "U+115F", "U+115F"),
        ("ann\u2800", "U+2800", "U+2800"),
    ],
)
def test_names_with_invisible_or_blank_characters_are_refused(name, character, stored):
    """U+3164 HANGUL FILLER is stored as U+1160 (Django's NFKC): both are invisible; U+2800 is a blank braille cell.
    The sign-up sentence names the character typed; ``create_user`` (no one typed) the one it would store."""
    user_signup(username="contrib1", password=PASSWORD)
    with pytest.raises(Invalid, match=re.escape(f"username contains an invisible or control character, {character}")):
        user_signup(username=name, password=PASSWORD)
    with pytest.raises(UsernameRefused, match=re.escape(stored)):
        User.objects.create_user(username=name, password=PASSWORD)
    r = signup(Client(), name)
    assert r.status_code == 200
    assert character in r.content.decode()
    assert list(User.objects.values_list("username", flat=True)) == ["contrib1"]


@pytest.mark.django_db
def test_an_old_name_is_not_checked_again_on_save_but_a_new_one_is():
    legacy = User.objects.create_user(username="legacy", password=PASSWORD)
    User.objects.filter(pk=legacy.pk).update(username="pаypal")  # a name from before the rule (a Cyrillic a)
    legacy.refresh_from_db()
    legacy.first_name = "Lee"
    legacy.save()  # a full save: the name is unchanged, so it is not refused now
    legacy.username = "bοb"  # Greek omicron
    with pytest.raises(UsernameRefused, match="cannot mix Latin and Greek"):
        legacy.save()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("twin", ["b0b", "BOB"])
def test_a_rename_to_another_s_look_alike_outside_a_transaction_leaves_the_row_as_it_was(twin):
    """In autocommit (a script, the shell) the user-save signal's check before the write is what keeps the row: the
    keys' unique constraint only fails after the renamed row is committed."""
    User.objects.create_user(username="bob", password=PASSWORD)
    grace = User.objects.create_user(username="grace", password=PASSWORD)
    grace.username = twin
    with pytest.raises(UsernameTaken):
        grace.save()
    assert User.objects.get(pk=grace.pk).username == "grace"
    assert UsernameKey.objects.get(user=grace).key == "grace"


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


@pytest.mark.django_db(transaction=True)
def test_migration_fills_skeletons_and_renames_later_look_alikes_and_invisible_names():
    before = [("accounts", "0004_usernamekey_skeleton")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "accounts"]
    apps = executor.loader.project_state(others + before).apps
    OldUser = apps.get_model("auth", "User")
    OldKey = apps.get_model("accounts", "UsernameKey")
    Board = apps.get_model("boards", "Board")
    OldMembership = apps.get_model("boards", "Membership")
    start = timezone.now() - timezone.timedelta(days=30)
    people = {}

    # As the review left things (names as Django stored them: U+3164 is kept as U+1160), in the order they joined.
    names = [
        "contrib1",
        "ABE",
        "ΑΒΕ",  # Greek: looks like ABE
        "contrib1\u1160",  # contrib1 and an invisible filler
        "alice\u1160",  # no one else is called alice: just loses the filler
        "\u1160",  # nothing visible
        "\u115f\u115f",
        "ɑdmin",  # joined before admin: keeps the name, admin is renamed
        "admin",
        "demo",
        "demօ",  # Armenian oh
        "ΑΒΕ-2",  # someone's real name: the Greek twin's new name must not look like it
    ]
    for days, name in enumerate(names):
        user = OldUser.objects.create(
            username=name, password=make_password(f"{name}'s password"), date_joined=start + timezone.timedelta(days)
        )
        if name != "demo":  # one without a key (saved without signals): it gets one
            OldKey.objects.create(user=user, key=canonical_username(name))
        people[name] = user.pk
    board = Board.objects.create(title="Twin's board", created_by_id=people["ΑΒΕ"])
    OldMembership.objects.create(board=board, user_id=people["ΑΒΕ"], role="owner")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    renamed = {
        "ΑΒΕ": "ΑΒΕ-3",
        "contrib1\u1160": "contrib1-2",
        "alice\u1160": "alice",
        "\u1160": "user-2",
        "\u115f\u115f": "user-3",
        "admin": "admin-2",
        "demօ": "demօ-2",
    }
    now = dict(User.objects.values_list("pk", "username"))
    assert now == {pk: renamed.get(name, name) for name, pk in people.items()}
    assert dict(UsernameKey.objects.values_list("user_id", "skeleton")) == {
        pk: username_skeleton(name) for pk, name in now.items()
    }
    assert dict(UsernameKey.objects.values_list("user_id", "key")) == {
        pk: canonical_username(name) for pk, name in now.items()
    }
    assert set(FormerUsername.objects.values_list("user_id", "name")) == {(people[old], old) for old in renamed}
    assert Membership.objects.get(board_id=board.pk).user_id == people["ΑΒΕ"]
    # New look-alikes are refused by the column the migration filled.
    with pytest.raises(Invalid, match="too similar"):
        user_signup(username="\u0410\u0412\u0415", password=PASSWORD)  # ABE in Cyrillic
    with pytest.raises(UsernameTaken):
        User.objects.create_user(username="ABE-3", password=PASSWORD)  # Latin: looks like the Greek one

    # Each renamed person still logs in with the name they knew (as typed: U+3164) and is told the new one.
    for typed, old, new in [("ΑΒΕ", "ΑΒΕ", "ΑΒΕ-3"), ("contrib1\u3164", "contrib1\u1160", "contrib1-2")]:
        c = Client()
        r = c.post("/login/", {"username": typed, "password": f"{old}'s password"}, follow=True)
        assert c.session["_auth_user_id"] == str(people[old])
        assert f"Your username is now “{new}”" in r.content.decode()
    c = Client()
    c.post("/login/", {"username": "ABE", "password": "ABE's password"})
    assert c.session["_auth_user_id"] == str(people["ABE"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("form", "sentence"),
    [
        (
            {"username": "contrib\x001", "role": "viewer"},
            "The username contains an invisible or control character, U+0000",
        ),
        ({"username": "contrib1\u3164", "role": "viewer"}, "invisible or control character, U+3164 (HANGUL FILLER)"),
        ({"username": "x" * 151, "role": "viewer"}, "usernames have at most 150 characters (this one has 151)"),
        ({"username": "", "role": "viewer"}, "Give the username of the person to add."),
        ({"username": "contrib1", "role": "king"}, "Choose a role: owner, contributor or viewer."),
    ],
)
def test_adding_a_member_with_a_malformed_name_says_what_is_wrong(form, sentence):
    owner = User.objects.create_user(username="owner", password=PASSWORD)
    User.objects.create_user(username="contrib1", password=PASSWORD)
    board = board_create(user=owner, title="Holiday")
    c = Client()
    c.force_login(owner)
    r = c.post(f"/boards/{board.pk}/members/", form, follow=True)
    assert r.status_code == 200
    assert sentence in r.content.decode().replace("&#x27;", "'")
    assert board.memberships.count() == 1
    # Removing one by such a name: not a member, never a 500.
    r = c.post(f"/boards/{board.pk}/members/remove/", {"username": form["username"] or " "}, follow=True)
    assert r.status_code == 200
    assert "is not a member of this board" in r.content.decode()


# Second review: look-alikes of "-", "_", "." and of 1/l/I among the letters of allowed scripts.
PUNCTUATION_LOOK_ALIKES = [
    ("demo-1", "demo\u30fc1"),  # KATAKANA-HIRAGANA PROLONGED SOUND MARK
    ("demo-1", "demo\u4e001"),  # CJK ideograph "one"
    ("paul_", "paul\u0640"),  # ARABIC TATWEEL
    ("demo.1", "demo\u4e361"),  # CJK stroke "dot"
    ("demo+1", "demo\u53411"),  # CJK "ten"
    ("contrib1", "contrib\u4e28"),  # CJK vertical stroke
    ("contrib1", "contrib\u3021"),  # HANGZHOU NUMERAL ONE
    ("contrib11", "contrib\u3022"),  # HANGZHOU NUMERAL TWO
]


@pytest.mark.parametrize(("existing", "look_alike"), PUNCTUATION_LOOK_ALIKES)
def test_look_alikes_of_punctuation_and_strokes_have_one_skeleton(existing, look_alike):
    assert username_skeleton(look_alike) == username_skeleton(existing)
    assert username_skeleton(username_skeleton(look_alike)) == username_skeleton(look_alike)


@pytest.mark.django_db
@pytest.mark.parametrize(("existing", "look_alike"), PUNCTUATION_LOOK_ALIKES)
def test_a_look_alike_of_punctuation_or_a_stroke_is_refused(existing, look_alike):
    user_signup(username=existing, password=PASSWORD)
    with pytest.raises(Invalid, match=r"too similar|cannot mix|right-to-left"):
        user_signup(username=look_alike, password=PASSWORD)
    assert list(User.objects.values_list("username", flat=True)) == [existing]


@pytest.mark.parametrize("name", ["demo\u06401", "paul\u0640", "\u0640abc", "\u0640a1"])
def test_left_to_right_letters_with_right_to_left_characters_are_refused(name):
    """Tatweel is right-to-left: demoـ1 displays as demo1_; it belongs to no script, so only its direction tells."""
    error = username_error(name)
    assert error is not None
    assert "right-to-left characters, such as" in error
    assert "ـ (U+0640 ARABIC TATWEEL)" in error


@pytest.mark.parametrize("name", ["abc\u05d0", "x\u0627", "\u0645\u062d\u0645\u062fa", "x\u07fa"])
def test_latin_with_hebrew_or_arabic_letters_is_refused(name):
    assert re.search("cannot mix|right-to-left", username_error(name) or "")


@pytest.mark.parametrize(
    "name", ["\u0640\u0640\u0640\u0640", "___", "-", "...", "\u30fc\u30fc", "\u4e00", "\u3161\u3161"]
)
def test_a_name_of_nothing_but_punctuation_or_its_look_alikes_is_refused(name):
    error = username_error(name)
    assert error is not None
    assert "at least one letter or digit" in error


@pytest.mark.parametrize(
    "name",
    [
        "\u3112OP",  # Bopomofo X beside Latin: looks like TOP
        "\u3108OCO",
        "\u311aES",
        "\u3129ser",
        "dem\u3147",  # Hangul ieung: looks like o
        "contrib\u3163",  # Hangul i: looks like l
        "demo\u31611",  # Hangul eu: looks like -
        "kim\uae40\ubbfc\uc900",
    ],
)
def test_latin_with_bopomofo_or_hangul_is_refused(name):
    error = mixed_script_error(name)
    assert error is not None
    assert "cannot mix" in error


@pytest.mark.parametrize(
    "name", ["李小龙", "김민준", "金김민준", "ㄅㄆ李", "yamada太郎", "ラーメン", "demo-1", "paul_", "محمد_1"]
)
def test_the_allowed_mixes_and_punctuation_stay_welcome(name):
    assert username_error(name) is None


# Marks people see are a different name; marks hard to see at a glance (below the letter, hooks) are not.
DIFFERENT_NAMES = [("jose", "josé"), ("hoa", "hòa"), ("hoa", "hóa"), ("muller", "Müller"), ("nino", "niño")]
DIFFERENT_NAMES += [("cech", "čech"), ("zlut", "žlut"), ("o", "ö"), ("o", "ő"), ("a", "ā"), ("a", "ă"), ("a", "å")]
DIFFERENT_NAMES += [("a", "â"), ("a", "à"), ("ho", "hộ"), ("ho", "hô")]
SAME_LOOK = [("hoa", "họa"), ("ana", "aṇa"), ("sa", "şa"), ("a", "ą"), ("a", "ḁ"), ("sa", "șa"), ("b", "ḇ"), ("c", "ç")]
SAME_LOOK += [("demo", "ɗemo"), ("admin", "ɑdmin"), ("contrib2", "cᴏntrib2"), ("hô", "hộ"), ("Ø", "Ǿ")]


@pytest.mark.parametrize(("one", "other"), DIFFERENT_NAMES)
def test_visible_accents_make_a_different_name(one, other):
    assert username_skeleton(one) != username_skeleton(other)


@pytest.mark.parametrize(("one", "other"), SAME_LOOK)
def test_marks_hard_to_see_and_hook_letters_are_folded(one, other):
    if one == "Ø":  # Ǿ is Ø with an acute: the acute stays
        assert username_skeleton(other) == username_skeleton("Ó")
        return
    assert username_skeleton(one) == username_skeleton(other)


@pytest.mark.django_db
def test_a_name_with_a_visible_accent_can_sign_up_beside_the_plain_one():
    for name in ["jose", "josé", "hoa", "hòa", "hóa", "muller", "Müller"]:
        assert user_signup(username=name, password=PASSWORD).username == name
    with pytest.raises(Invalid, match=re.escape("it is too similar to the name of an existing account.")):
        user_signup(username="họa", password=PASSWORD)


def test_the_look_alike_sentence_says_similar_not_the_same():
    assert LOOKS_TAKEN == "That username is taken: it is too similar to the name of an existing account."


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("typed", "character"),
    [("\u03f2at", "U+03F2 GREEK LUNATE SIGMA SYMBOL"), ("\u03f2\u03b1t", "U+0074 LATIN SMALL LETTER T")],
)
def test_the_mixed_script_sentence_names_the_typed_character_once_parenthesised(typed, character):
    with pytest.raises(Invalid) as caught:
        user_signup(username=typed, password=PASSWORD)
    message = caught.value.message
    assert character in message
    assert "U+03C2" not in message
    assert "((" not in message
    assert "))" not in message
    assert not re.search(r"U\+[0-9A-F]{4} \(", message)


@pytest.mark.django_db(transaction=True)
def test_migration_0007_recomputes_skeletons_and_renames_only_new_look_alikes():
    """Narrower accent folding frees names (josé, hòa) and renames nobody; the new folds (ー, ـ, 丨) can make a later
    name look like an earlier one: that one is renamed as 0005 does, and can still log in with its old name."""
    before = [("accounts", "0006_usernamekey_skeleton_unique")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "accounts"]
    apps = executor.loader.project_state(others + before).apps
    OldUser = apps.get_model("auth", "User")
    OldKey = apps.get_model("accounts", "UsernameKey")
    start = timezone.now() - timezone.timedelta(days=30)
    # (name, skeleton as the previous code stored it), in the order they joined.
    stored = [
        ("josé", "jose"),
        ("hòa", "hoa"),
        ("Müller", "muller"),
        ("demo-1", "demo-l"),
        ("demo\u30fc1", "demo\u30fcl"),
        ("paul_", "paul_"),
        ("paul\u0640", "paul\u0640"),
        ("contrib1", "contrlbl"),
        ("contrib\u4e28", "contrlb\u4e28"),
        ("\u4e28contrib", "\u4e28contrlb"),  # looks like no one's
    ]
    people = {}
    for days, (name, skeleton) in enumerate(stored):
        user = OldUser.objects.create(
            username=name, password=make_password(f"{name}'s password"), date_joined=start + timezone.timedelta(days)
        )
        OldKey.objects.create(user=user, key=canonical_username(name), skeleton=skeleton)
        people[name] = user.pk

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    renamed = {"demo\u30fc1": "demo\u30fc1-2", "paul\u0640": "paul\u0640-2", "contrib\u4e28": "contrib\u4e28-2"}
    now = dict(User.objects.values_list("pk", "username"))
    assert now == {pk: renamed.get(name, name) for name, pk in people.items()}
    assert dict(UsernameKey.objects.values_list("user_id", "skeleton")) == {
        pk: username_skeleton(name) for pk, name in now.items()
    }
    assert dict(UsernameKey.objects.values_list("user_id", "key")) == {
        pk: canonical_username(name) for pk, name in now.items()
    }
    assert set(FormerUsername.objects.values_list("user_id", "name")) == {(people[old], old) for old in renamed}
    # The plain spellings of the accented names are free now; the punctuation look-alikes are not.
    for name in ["jose", "hoa", "muller"]:
        assert user_signup(username=name, password=PASSWORD).username == name
    with pytest.raises(Invalid, match="too similar"):
        user_signup(username="demo\u4e001", password=PASSWORD)
    c = Client()
    r = c.post("/login/", {"username": "contrib\u4e28", "password": "contrib\u4e28's password"}, follow=True)
    assert c.session["_auth_user_id"] == str(people["contrib\u4e28"])
    assert "Your username is now “contrib\u4e28-2”" in r.content.decode()
