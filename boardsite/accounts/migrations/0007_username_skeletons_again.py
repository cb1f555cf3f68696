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

from django.db import migrations

# The same pass as 0005 (rename later look-alikes, write every key afresh), with today's skeleton.
recompute_skeletons = importlib.import_module("boardsite.accounts.migrations.0005_username_skeletons").fill_skeletons


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_usernamekey_skeleton_unique")]

    # Going back keeps the new names and skeletons: the older code compares with whatever skeletons are stored.
    operations = [migrations.RunPython(recompute_skeletons, migrations.RunPython.noop)]
