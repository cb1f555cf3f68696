"""A key for every existing user; look-alike names of earlier accounts are renamed, keeping everything else.

The earliest account (by date joined, then id) keeps its name. Each later account whose name compares equal to it
(a fullwidth ``CONTRIB1`` beside ``contrib1``) gets the first free ``<name>-2``, ``<name>-3``…; its former name is recorded
(``FormerUsername``), so that person can still log in with it and their own password and is told the new name. The
account keeps its id, so its boards, memberships and photos stay its own.
"""

import unicodedata

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def canonical(name: str) -> str:
    # A copy of boardsite.accounts.usernames.canonical_username as it was when this migration was written.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def free_name(name: str, unavailable_keys: set[str]) -> str:
    base = unicodedata.normalize("NFKC", name)
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[: 150 - len(suffix)] + suffix
        if canonical(candidate) not in unavailable_keys:
            return candidate
        n += 1


def create_keys(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    User = apps.get_model("auth", "User")
    UsernameKey = apps.get_model("accounts", "UsernameKey")
    FormerUsername = apps.get_model("accounts", "FormerUsername")
    taken = set(UsernameKey.objects.values_list("key", flat=True))
    with_key = set(UsernameKey.objects.values_list("user_id", flat=True))
    # A new name must not look like anyone's current name either, including accounts not reached yet.
    everyone = {canonical(name) for name in User.objects.values_list("username", flat=True)}
    for user in User.objects.exclude(pk__in=with_key).order_by("date_joined", "pk").iterator():
        key = canonical(user.username)
        if key in taken:
            FormerUsername.objects.create(user=user, name=user.username, key=key)
            user.username = free_name(user.username, taken | everyone)
            user.save(update_fields=["username"])
            key = canonical(user.username)
        UsernameKey.objects.create(user=user, key=key)
        taken.add(key)


def remove_keys(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # Back to the names people had (exact names never collided: auth.User's own constraint saw to that).
    User = apps.get_model("auth", "User")
    FormerUsername = apps.get_model("accounts", "FormerUsername")
    for former in FormerUsername.objects.order_by("-renamed_at", "-pk"):
        User.objects.filter(pk=former.user_id).update(username=former.name)
    FormerUsername.objects.all().delete()
    apps.get_model("accounts", "UsernameKey").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_usernames_and_throttling"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_keys, remove_keys)]
