"""A skeleton for every user; names that look like an earlier account's name, or hold invisible characters, are
renamed, keeping everything else.

As migration 0003 does for the canonical key: the earliest account (by date joined, then id) keeps its name. A later
account whose name looks the same (``ABE`` in Greek capitals beside ``ABE``, ``admin`` with U+0251 LATIN SMALL
LETTER ALPHA beside ``admin``) gets the first free
``<name>-2``, ``<name>-3``…; a name with invisible characters (``contrib1ㅤ``, ``ㅤ``) loses them (``contrib1ㅤ`` becomes
``contrib1`` if that is free, else ``contrib1-2``…; a name of nothing but them becomes ``user-2``…). No new name looks
like any other account's name. The former name is recorded (``FormerUsername``), so that person can still log in with
it and their own password and is told the new name; the account keeps its id, so its boards, memberships and photos
stay its own.

The skeleton is today's ``usernames.username_skeleton`` (imported, not copied: the stored skeletons must be what the
code compares with; a later change to that function needs a migration that computes them again).
"""

import unicodedata
from collections import Counter
from collections.abc import Iterator

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from boardsite.accounts.usernames import username_skeleton
from boardsite.core.text import refused_character


def canonical(name: str) -> str:
    # A copy of boardsite.accounts.usernames.canonical_username as it was when this migration was written.
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def visible_part(name: str) -> str:
    return "".join(ch for ch in name if refused_character(ch, strict=True) is None).strip()


def candidates(name: str) -> Iterator[str]:
    visible = unicodedata.normalize("NFKC", visible_part(name))
    if visible and visible != name:
        yield visible[:150]
    base = visible or "user"
    n = 2
    while True:
        suffix = f"-{n}"
        yield base[: 150 - len(suffix)] + suffix
        n += 1


def fill_skeletons(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    User = apps.get_model("auth", "User")
    UsernameKey = apps.get_model("accounts", "UsernameKey")
    FormerUsername = apps.get_model("accounts", "FormerUsername")
    users = list(User.objects.order_by("date_joined", "pk"))
    # Names of accounts not reached yet: a new name must not look like any of them either.
    later_keys = Counter(canonical(u.username) for u in users)
    later_skeletons = Counter(username_skeleton(u.username) for u in users)
    kept_keys: set[str] = set()
    kept_skeletons: set[str] = set()

    def free(name: str) -> bool:
        key, skeleton = canonical(name), username_skeleton(name)
        return (
            key not in kept_keys
            and skeleton not in kept_skeletons
            and later_keys[key] <= 0
            and later_skeletons[skeleton] <= 0
        )

    rows = []
    for user in users:
        name = user.username
        key, skeleton = canonical(name), username_skeleton(name)
        later_keys[key] -= 1
        later_skeletons[skeleton] -= 1
        if visible_part(name) != name or key in kept_keys or skeleton in kept_skeletons:
            FormerUsername.objects.create(user=user, name=name, key=key)
            user.username = next(c for c in candidates(name) if free(c))
            user.save(update_fields=["username"])
            key, skeleton = canonical(user.username), username_skeleton(user.username)
        rows.append(UsernameKey(user=user, key=key, skeleton=skeleton))
        kept_keys.add(key)
        kept_skeletons.add(skeleton)
    # Written afresh: rewritten one by one, a new skeleton could clash with another row's old one (0007 reruns this
    # once the skeleton is unique).
    UsernameKey.objects.all().delete()
    UsernameKey.objects.bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_usernamekey_skeleton"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    # Going back keeps the new names (and the FormerUsername rows that still let people log in with the old ones);
    # 0003's reverse gives every former name back.
    operations = [migrations.RunPython(fill_skeletons, migrations.RunPython.noop)]
