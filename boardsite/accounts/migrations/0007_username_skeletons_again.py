"""Every skeleton computed again, for today's ``usernames.username_skeleton``: accents people see no longer fold
(``josé`` and ``jose``, ``hòa`` and ``hoa`` are two names), and look-alikes of ``-``, ``_``, ``.`` and strokes do
(``demoー1`` looks like ``demo-1``, ``paulـ`` like ``paul_``, ``contrib丨`` like ``contrib1``).

The first change only separates skeletons, so it renames nobody. The second can make a later account's name look like
an earlier one's: as in migration 0005, the earliest account (by date joined, then id) keeps its name, the later one
gets the first free ``<name>-2``, ``<name>-3``…, its former name is recorded (``FormerUsername``: that person can still
log in with it and their own password, and is told the new name), and it keeps its id, boards, memberships and photos.

Names that break this release's new rules (left-to-right letters with right-to-left characters, Latin with Hangul or
Bopomofo, no letter or digit) are kept: those rules apply to new names, as the mixed-script rule did.
"""

import importlib
from collections import Counter

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from boardsite.accounts.usernames import username_skeleton

# 0005's helpers (the canonical form as it was then, the visible part of a name, the candidate new names).
_0005 = importlib.import_module("boardsite.accounts.migrations.0005_username_skeletons")
canonical, visible_part, candidates = _0005.canonical, _0005.visible_part, _0005.candidates


def recompute_skeletons(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    User = apps.get_model("auth", "User")
    UsernameKey = apps.get_model("accounts", "UsernameKey")
    FormerUsername = apps.get_model("accounts", "FormerUsername")
    users = list(User.objects.order_by("date_joined", "pk"))
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
    # Written afresh: rewritten one by one, a new skeleton could clash with another row's old one (unique).
    UsernameKey.objects.all().delete()
    UsernameKey.objects.bulk_create(rows)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_usernamekey_skeleton_unique")]

    # Going back keeps the new names and skeletons: the older code compares with whatever skeletons are stored.
    operations = [migrations.RunPython(recompute_skeletons, migrations.RunPython.noop)]
