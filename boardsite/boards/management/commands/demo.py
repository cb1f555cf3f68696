"""Create the demo user and board (idempotent) and print the credentials."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from boardsite.accounts.models import Profile
from boardsite.boards.models import Board
from boardsite.boards.services import board_create

USERNAME = "demo"
PASSWORD = "demo-boardsite-2026"


class Command(BaseCommand):
    help = "Create a demo user and a demo board for local runs."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(username=USERNAME)
        if created:
            user.set_password(PASSWORD)
            user.save()
        if settings.DEBUG and not user.is_staff:
            # Locally the demo person may read /dev/mail/ (staff and DEBUG only); nothing else is staff-only here.
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        Profile.objects.get_or_create(user=user, defaults={"display_name": "Demo Person"})
        if not Board.objects.filter(created_by=user).exists():
            board_create(user=user, title="Demo board", description="Drop some photos here.", visibility="public")
        self.stdout.write(f"demo login: username {USERNAME!r}, password {PASSWORD!r}")
